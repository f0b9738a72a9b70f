"""FHIR R4 reads: ``RiskAssessment`` (one per scored reading: the 1/6/24 h predictions, the
model as ``method``, the reading as ``basis``) and ``Flag`` (a patient's open alerts).

A RiskAssessment's id is ``<yyyymmdd>-<patient digest>-<observation digest>`` (HMAC under the
API's pseudonym key, so an id tells nothing without it): the date prunes the partitions, the
patient digest is found among the known patients and the observation among that patient's
readings of the day, so a read never scans the table."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Query, Request, Response

from vitalwatch.api import reads
from vitalwatch.api.context import Caller, CallerDep
from vitalwatch.api.paging import conditional, page, records
from vitalwatch.api.patients import history_range, limit_of, seen
from vitalwatch.api.problems import FHIR_JSON, Problem
from vitalwatch.dashboard import rules

router = APIRouter(prefix="/fhir", tags=["fhir"])
CRISIS = {"system": "http://snomed.info/sct", "code": "706882009", "display": "Hypertensive crisis"}
RISK_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
QUALITATIVE = {"LOW": "low", "MEDIUM": "moderate", "HIGH": "high", "CRITICAL": "high"}
MODEL_SYSTEM = "urn:vitalwatch:model"
FLAG_CATEGORY = {"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical",
                 "display": "Clinical"}


def assessment_id(c: Caller, patient_id: str, observation_id: str, effective_time: pd.Timestamp) -> str:
    d = c.ctx.digest
    return f"{effective_time:%Y%m%d}-{d('ra-patient', patient_id)}-{d('ra-observation', observation_id)}"


def _iso(t: Any) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).isoformat().replace("+00:00", "Z")


def risk_assessment(c: Caller, row: dict[str, Any], horizons: list[int]) -> dict[str, Any]:
    """One scored reading as a RiskAssessment (an analyst's: pseudonymous subject, no basis)."""
    t = pd.Timestamp(row["effective_time"])
    level = row.get("level")
    qual = ({"coding": [{"system": RISK_SYSTEM, "code": QUALITATIVE[level]}], "text": level}
            if level in QUALITATIVE else None)
    predictions = []
    for h in horizons:
        p = row.get(f"risk_{h}h")
        if p is None or pd.isna(p):
            continue
        pred = {"outcome": {"coding": [CRISIS], "text": f"hypertensive crisis within {h} h"},
                "probabilityDecimal": round(float(p), 6),
                "whenRange": {"low": {"value": 0, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"},
                              "high": {"value": h, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}}
        if qual:
            pred["qualitativeRisk"] = qual
        predictions.append(pred)
    version = None if pd.isna(row.get("model_version")) else str(row.get("model_version"))
    model = str(row.get("model_name") or "unknown")
    res: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": assessment_id(c, row["patient_id"], row["observation_id"], t),
        "status": "final",
        "code": {"text": "Risk of hypertensive crisis"},
        "subject": {"reference": f"Patient/{c.patient_ref(row['patient_id'])}"},
        "occurrenceDateTime": _iso(t),
        "method": {"coding": [{"system": MODEL_SYSTEM, "code": model, **({"version": version} if version else {})}],
                   "text": f"{model} version {version}" if version else model},
        "prediction": predictions,
    }
    if c.identifiers:
        res["basis"] = [{"reference": f"Observation/{row['observation_id']}"}]
    if level:
        res["note"] = [{"text": f"alert level {level}" + (" (crisis reading)" if row.get("crisis_now") else "")}]
    return res


def flag(c: Caller, row: dict[str, Any]) -> dict[str, Any]:
    reasons = row.get("reasons") or []
    text = f"{row.get('level')} risk of hypertensive crisis" + (f": {', '.join(reasons)}" if reasons else "")
    return {"resourceType": "Flag", "id": c.alert_ref(row["alert_id"]), "status": "active",
            "category": [{"coding": [FLAG_CATEGORY]}], "code": {"coding": [CRISIS], "text": text},
            "subject": {"reference": f"Patient/{c.patient_ref(row['patient_id'])}"},
            "period": {"start": _iso(row.get("raised_time"))}}


def bundle(request: Request, resources: list[dict[str, Any]], total: int, next_cursor: str | None) -> dict:
    base = str(request.base_url).rstrip("/")
    links = [{"relation": "self", "url": str(request.url)}]
    if next_cursor:
        links.append({"relation": "next", "url": str(request.url.include_query_params(_cursor=next_cursor))})
    return {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links,
            "entry": [{"fullUrl": f"{base}/fhir/{r['resourceType']}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def _subject(c: Caller, subject: str | None, patient: str | None) -> str | None:
    """The patient a search names (None: unknown, an empty searchset)."""
    ref = patient or subject
    if not ref:
        raise Problem(400, "search by subject=Patient/<id> (or patient=<id>)")
    return c.patient_id(ref.removeprefix("Patient/"), reads.known_patients(c.ctx))


@router.get("/RiskAssessment", summary="A patient's RiskAssessments (searchset Bundle), newest first",
            response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def search_risk(request: Request, c: CallerDep,
                subject: Annotated[str | None, Query(max_length=300, description="Patient/<id>")] = None,
                patient: Annotated[str | None, Query(max_length=300, description="<id>")] = None,
                count: Annotated[int | None, Query(alias="_count", ge=1)] = None,
                cursor: Annotated[str | None, Query(alias="_cursor", max_length=512)] = None) -> Response:
    c.need("patient")
    pid = _subject(c, subject, patient)
    if pid is None:
        return conditional(request, bundle(request, [], 0, None), [], media_type=FHIR_JSON)
    query = {"p": patient or subject}  # the caller's own reference, never the id behind a pseudonym
    start, end = history_range(c, cursor, query, None, None)  # the first page's window, pinned
    df, snap = reads.scores(c.ctx, pid, start, end)
    df = df[df[f"risk_{c.ctx.s.clinical.horizons_hours[0]}h"].notna()]  # a reading the model did not score is no assessment
    p = page(df.iloc[::-1], limit_of(c, count), cursor, query, records, r=[start.isoformat(), end.isoformat()])
    hz = c.ctx.s.clinical.horizons_hours
    seen(c, "fhir:RiskAssessment", [pid])
    body = bundle(request, [risk_assessment(c, r, hz) for r in p.items], p.total, p.next_cursor)
    return conditional(request, body, [snap], media_type=FHIR_JSON)


@router.get("/RiskAssessment/{id}", summary="One RiskAssessment", response_class=Response,
            responses={200: {"content": {FHIR_JSON: {}}}})
def read_risk(request: Request, c: CallerDep,
              id: Annotated[str, Path(pattern=r"^\d{8}-[0-9a-f]{16}-[0-9a-f]{16}$")]) -> Response:
    c.need("patient")
    day, ph, oh = id.split("-")
    try:
        start = pd.Timestamp(day, tz="UTC")
    except ValueError:
        raise Problem(404, "no such RiskAssessment") from None
    pid = c.ctx.lookup("ra-patient", reads.known_patients(c.ctx), ph)
    if pid is None:
        raise Problem(404, "no such RiskAssessment")
    df, scores = reads.scores(c.ctx, pid, start, start + timedelta(days=1))
    rows = [r for r in records(df) if c.ctx.digest("ra-observation", r["observation_id"]) == oh]
    if not rows:
        raise Problem(404, "no such RiskAssessment")
    seen(c, "fhir:RiskAssessment", [pid], id=id)
    return conditional(request, risk_assessment(c, rows[-1], c.ctx.s.clinical.horizons_hours), [scores],
                       media_type=FHIR_JSON)


@router.get("/Flag", summary="A patient's open alerts as Flags (searchset Bundle)", response_class=Response,
            responses={200: {"content": {FHIR_JSON: {}}}})
def search_flag(request: Request, c: CallerDep,
                patient: Annotated[str | None, Query(max_length=300, description="<id> or Patient/<id>")] = None,
                subject: Annotated[str | None, Query(max_length=300, description="Patient/<id>")] = None) -> Response:
    c.need("alerts")
    pid = _subject(c, subject, patient)
    snap = reads.alerts(c.ctx)
    if pid is None:
        return conditional(request, bundle(request, [], 0, None), [snap], media_type=FHIR_JSON)
    mine = snap.frame[snap.frame["patient_id"] == pid]
    if (mine["kind"] == "resolved").any():  # the patient is back to LOW: what came before is over
        mine = mine[mine["raised_time"] > mine.loc[mine["kind"] == "resolved", "raised_time"].max()]
    df = rules.alert_inbox(mine, reads.acks(c.ctx, mine["alert_id"].tolist()), state="open")
    seen(c, "fhir:Flag", [pid])
    return conditional(request, bundle(request, [flag(c, r) for r in records(df)], len(df), None), [snap],
                       media_type=FHIR_JSON)
