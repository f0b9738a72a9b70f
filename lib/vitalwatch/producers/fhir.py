"""Building valid FHIR R4 vital-sign Observations and Bundles (vital-signs profile shapes).

Used by the device simulator and the ICU replay so both emit the same message shapes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITALSIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs", "display": "Vital Signs"}]}

# name -> (LOINC, display, UCUM code, human unit)
VITALS: dict[str, tuple[str, str, str, str]] = {
    "heart_rate": ("8867-4", "Heart rate", "/min", "beats/minute"),
    "respiratory_rate": ("9279-1", "Respiratory rate", "/min", "breaths/minute"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%"),
    "body_temperature": ("8310-5", "Body temperature", "Cel", "C"),
    "mean_arterial_pressure": ("8478-0", "Mean blood pressure", "mm[Hg]", "mmHg"),
}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
SYSTOLIC = ("8480-6", "Systolic blood pressure")
DIASTOLIC = ("8462-4", "Diastolic blood pressure")


def fhir_instant(t: datetime) -> str:
    """A FHIR dateTime in UTC with second precision and an explicit zone."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_id(*parts: object) -> str:
    """Deterministic resource id from its identity (same reading → same id → deduplicable)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "vitalwatch:" + "|".join(map(str, parts))))


def _quantity(value: float, code: str, unit: str) -> dict[str, Any]:
    return {"value": round(float(value), 2), "unit": unit, "system": UCUM, "code": code}


def _base(obs_id: str, patient_id: str, t: datetime, device_id: str | None, code: str, display: str) -> dict[str, Any]:
    o: dict[str, Any] = {
        "resourceType": "Observation", "id": obs_id,
        "meta": {"profile": [VITALSIGNS_PROFILE]},
        "status": "final", "category": [CATEGORY],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": fhir_instant(t),
    }
    if device_id:
        o["device"] = {"reference": f"Device/{device_id}"}
    return o


def blood_pressure(patient_id: str, t: datetime, systolic: float, diastolic: float,
                   device_id: str | None = None, obs_id: str | None = None) -> dict[str, Any]:
    o = _base(obs_id or stable_id(patient_id, "bp", fhir_instant(t)), patient_id, t, device_id, *BP_PANEL)
    o["component"] = [
        {"code": {"coding": [{"system": LOINC, "code": SYSTOLIC[0], "display": SYSTOLIC[1]}]},
         "valueQuantity": _quantity(systolic, "mm[Hg]", "mmHg")},
        {"code": {"coding": [{"system": LOINC, "code": DIASTOLIC[0], "display": DIASTOLIC[1]}]},
         "valueQuantity": _quantity(diastolic, "mm[Hg]", "mmHg")},
    ]
    return o


def vital(patient_id: str, t: datetime, name: str, value: float, device_id: str | None = None,
          obs_id: str | None = None, unit: tuple[str, str] | None = None) -> dict[str, Any]:
    code, display, ucum, human = VITALS[name]
    o = _base(obs_id or stable_id(patient_id, name, fhir_instant(t)), patient_id, t, device_id, code, display)
    ucum, human = unit or (ucum, human)
    o["valueQuantity"] = _quantity(value, ucum, human)
    return o


def bundle(resources: list[dict[str, Any]], bundle_type: str = "batch", bundle_id: str | None = None) -> dict[str, Any]:
    entries = []
    for r in resources:
        e: dict[str, Any] = {"fullUrl": f"urn:uuid:{r['id']}", "resource": r}
        if bundle_type in ("batch", "transaction"):
            e["request"] = {"method": "PUT", "url": f"Observation/{r['id']}"}
        entries.append(e)
    return {"resourceType": "Bundle", "id": bundle_id or stable_id(*(r["id"] for r in resources)),
            "type": bundle_type, "entry": entries}


@dataclass(frozen=True)
class Message:
    """One Kafka message: key = patient id, value = FHIR JSON, and its simulated send time."""

    key: str
    value: bytes
    sim_time: datetime
    kind: str = "reading"  # reading | duplicate | late | malformed

    @staticmethod
    def of(patient_id: str, resource: dict[str, Any], sim_time: datetime, kind: str = "reading") -> Message:
        return Message(patient_id, json.dumps(resource, separators=(",", ":")).encode(), sim_time, kind)
