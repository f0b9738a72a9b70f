"""``/api/v1/patients``: the ward list (highest risk first), one patient, their silver
observations, risk-score history and current status. Roles without ``identifiers`` see
patients under the API's pseudonym, without name, MRN, birth date, device or record ids."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Path, Query, Request, Response

from vitalwatch.api import reads
from vitalwatch.api.context import Caller, CallerDep
from vitalwatch.api.paging import conditional, cursor_state, link_next, page, pinned_range, records
from vitalwatch.api.problems import Problem
from vitalwatch.api.schemas import (
    Level,
    ObservationPage,
    PatientDetail,
    PatientPage,
    PatientStatus,
    RiskScorePage,
)
from vitalwatch.dashboard import rules
from vitalwatch.security import audit

router = APIRouter(prefix="/patients", tags=["patients"])
# What a role without identifiers may see (ids as pseudonyms): no name, MRN, birth date, device,
# observation id, acknowledging user or free-text note
ANALYST_FIELDS = frozenset({
    "patient_id", "alert_id", "ward", "level", "state", "effective_time", "minutes_since", "updated_time",
    "systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2", "temperature", "news2", "crisis_now",
    "model_name", "model_version", "score_status", "open_alerts", "vital", "value", "unit", "loinc", "status",
    "kind", "previous_level", "reasons", "raised_time", "late", "source", "acknowledged_time"})
RISK = re.compile(r"risk_\d+h")
SUMMARY = ["patient_id", "name", "mrn", "birth_date", "ward", "level", "state", "effective_time", "minutes_since",
           "systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2", "temperature", "news2", "crisis_now",
           "model_name", "model_version"]
Limit = Annotated[int | None, Query(ge=1, description="items per page (default api.page_size, at most api.max_page_size)")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
PatientId = Annotated[str, Path(min_length=1, max_length=256, description="patient id (analysts: its pseudonym)")]


def limit_of(c: Caller, limit: int | None) -> int:
    cfg = c.ctx.s.api
    if limit is not None and limit > cfg.max_page_size:
        raise Problem(400, f"limit may be at most {cfg.max_page_size}")
    return limit or cfg.page_size


def shown(c: Caller, items: list[dict], id_fields: tuple[str, ...] = ("patient_id",)) -> list[dict]:
    """Items as the caller may see them. Roles without identifiers get only the fields on
    :data:`ANALYST_FIELDS` (an allow-list: a new column is hidden until listed) and pseudonyms."""
    if c.identifiers:
        return items
    out = []
    for it in items:
        kept = {k: v for k, v in it.items() if k in ANALYST_FIELDS or RISK.fullmatch(k)}
        for k in id_fields:
            if kept.get(k) is not None:
                kept[k] = c.patient_ref(kept[k]) if k == "patient_id" else c.alert_ref(kept[k])
        out.append(kept)
    return out


def resolve(c: Caller, ref: str) -> str:
    """The patient id behind ``ref`` (a pseudonym for analysts), or 404."""
    if (pid := c.patient_id(ref, reads.known_patients(c.ctx))) is None:
        raise Problem(404, "no such patient")
    return pid


def seen(c: Caller, page_name: str, patients, **detail) -> None:
    """The audit record of a patient-level read (real ids; the trail is for administrators), one
    record per ``audit.MAX_PATIENTS`` patients so a full page is named whole."""
    ids = list(dict.fromkeys(patients))
    detail = {k: v for k, v in detail.items() if v is not None}
    for i in range(0, max(len(ids), 1), audit.MAX_PATIENTS):
        audit.record(c.ctx.db, user=c.username, role=c.role, what=audit.VIEW, page=f"api:{page_name}",
                     patients=ids[i:i + audit.MAX_PATIENTS], source=c.source, detail=detail)


def _overview(c: Caller, wards, levels, state) -> tuple[pd.DataFrame, list]:
    snap = reads.status(c.ctx)
    registry = c.ctx.registry.get(c.ctx.db)
    status = snap.frame
    if state == "discharged":
        status = status[status["state"] == "discharged"]
    df = rules.ward_overview(status, registry, wards=wards, levels=levels, include_discharged=state != "active")
    return df, [snap]


@router.get("", response_model=PatientPage, summary="Patients, highest risk first")
def list_patients(request: Request, c: CallerDep,
                  ward: Annotated[list[str] | None, Query(description="only these wards")] = None,
                  level: Annotated[list[Level] | None, Query(description="only these levels")] = None,
                  state: Annotated[Literal["active", "discharged", "all"], Query()] = "active",
                  limit: Limit = None, cursor: Cursor = None) -> Response:
    c.need("ward")
    df, snaps = _overview(c, ward, level, state)
    cols = [x for x in SUMMARY if x in df] + [x for x in df if x.startswith("risk_")]
    query = {"ward": ward, "level": level, "state": state}
    p = page(df[cols], limit_of(c, limit), cursor, query, records)
    seen(c, "patients", [it["patient_id"] for it in p.items], ward=ward, level=level, state=state)
    body = {"items": shown(c, p.items), "total": p.total, "next_cursor": p.next_cursor}
    return conditional(request, body, snaps, headers=link_next(request, p.next_cursor))


def _one(c: Caller, ref: str) -> tuple[str, dict, list]:
    snap = reads.status(c.ctx)
    registry = c.ctx.registry.get(c.ctx.db)
    pid = resolve(c, ref)
    row = rules.ward_overview(snap.frame[snap.frame["patient_id"] == pid], registry, include_discharged=True)
    if row.empty:  # registered, not scored yet
        row = registry[registry["patient_id"] == pid].assign(state="registered")
    return pid, records(row)[0], [snap]


@router.get("/{patient_id}", response_model=PatientDetail, summary="One patient: registry and current risk")
def get_patient(request: Request, c: CallerDep, patient_id: PatientId) -> Response:
    c.need("patient")
    pid, item, snaps = _one(c, patient_id)
    al = reads.alerts(c.ctx)
    mine = al.frame[(al.frame["patient_id"] == pid) & (al.frame["kind"] != "resolved")]
    acked = set(reads.acks(c.ctx, mine["alert_id"].tolist())["alert_id"]) if len(mine) else set()
    item["open_alerts"] = int((~mine["alert_id"].isin(acked)).sum())
    item = {k: v for k, v in item.items() if k in PatientDetail.model_fields or k.startswith("risk_")}
    seen(c, "patient", [pid])
    return conditional(request, shown(c, [item])[0], [*snaps, al])


@router.get("/{patient_id}/status", response_model=PatientStatus, summary="The patient's latest scored reading")
def get_status(request: Request, c: CallerDep, patient_id: PatientId) -> Response:
    c.need("patient")
    snap = reads.status(c.ctx)
    pid = resolve(c, patient_id)
    row = snap.frame[snap.frame["patient_id"] == pid]
    if row.empty:
        raise Problem(404, "this patient has no scored reading yet")
    seen(c, "status", [pid])
    return conditional(request, shown(c, records(row))[0], [snap])


def history_range(c: Caller, cursor: str | None, query: dict, since, until) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The [since, until) of a history read: the first page's (pinned in its cursor), else the request's."""
    pinned = pinned_range(cursor_state(cursor, query))  # re-checked: a cursor is not trusted
    return reads.time_range(c.ctx, *pinned) if pinned else reads.time_range(c.ctx, since, until)


def _history(request: Request, c: Caller, ref: str, name: str, read, since, until, limit, cursor,
             **filters) -> Response:
    """One patient's history (``read(pid, start, end)``), a page of it, audited."""
    c.need("patient")
    pid = resolve(c, ref)
    query = {"p": ref, "since": since, "until": until, **filters}
    start, end = history_range(c, cursor, query, since, until)
    df, snap = read(pid, start, end)
    p = page(df.drop(columns=["patient_id"]), limit_of(c, limit), cursor, query, records,
             r=[start.isoformat(), end.isoformat()])
    seen(c, name, [pid], since=start.isoformat(), until=end.isoformat(), **filters)
    body = {"patient_id": c.patient_ref(pid), "items": shown(c, p.items), "total": p.total,
            "next_cursor": p.next_cursor}
    return conditional(request, body, [snap], headers=link_next(request, p.next_cursor))


Since = Annotated[datetime | None, Query(description="from (default: api.default_hours before until)")]
Until = Annotated[datetime | None, Query(description="before (default: now)")]


@router.get("/{patient_id}/observations", response_model=ObservationPage,
            summary="The patient's accepted vital-sign values (silver), oldest first")
def get_observations(request: Request, c: CallerDep, patient_id: PatientId,
                     vital: Annotated[list[str] | None, Query(description="only these vitals (silver names)")] = None,
                     since: Since = None, until: Until = None, limit: Limit = None, cursor: Cursor = None) -> Response:
    return _history(request, c, patient_id, "observations",
                    lambda pid, start, end: reads.observations(c.ctx, pid, start, end, vital),
                    since, until, limit, cursor, vital=vital)


@router.get("/{patient_id}/risk-scores", response_model=RiskScorePage,
            summary="The patient's risk-score history (gold), oldest first")
def get_risk_scores(request: Request, c: CallerDep, patient_id: PatientId, since: Since = None, until: Until = None,
                    limit: Limit = None, cursor: Cursor = None) -> Response:
    return _history(request, c, patient_id, "risk-scores",
                    lambda pid, start, end: reads.scores(c.ctx, pid, start, end), since, until, limit, cursor)
