"""The API's response shapes (its OpenAPI schema). Fields a role may not see are left out of
the response, so every identifying field is optional; ``risk_<h>h`` follows
``clinical.horizons_hours``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Level = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]


class ProblemDetails(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI entries for error statuses, all problem details."""
    from http import HTTPStatus

    ref = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    return {s: {"model": ProblemDetails, "description": HTTPStatus(s).phrase,
                "content": {"application/problem+json": ref}} for s in statuses}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    role: str


class Vitals(_Open):
    systolic: float | None = None
    diastolic: float | None = None
    heart_rate: float | None = None
    respiratory_rate: float | None = None
    spo2: float | None = None
    temperature: float | None = None


class PatientSummary(Vitals):
    patient_id: str
    name: str | None = None
    mrn: str | None = None
    birth_date: str | None = None
    ward: str | None = None
    level: str | None = None
    state: str | None = None
    effective_time: datetime | None = None
    minutes_since: float | None = None
    risk_1h: float | None = None
    risk_6h: float | None = None
    risk_24h: float | None = None
    news2: float | None = None
    crisis_now: bool | None = None
    model_name: str | None = None
    model_version: str | None = None


class PatientDetail(PatientSummary):
    device_id: str | None = None
    open_alerts: int


class PatientStatus(PatientSummary):
    observation_id: str | None = None
    updated_time: datetime | None = None


class PatientPage(BaseModel):
    items: list[PatientSummary]
    total: int
    next_cursor: str | None


class Observation(_Open):
    observation_id: str | None = None
    device_id: str | None = None
    effective_time: datetime
    vital: str
    value: float
    unit: str | None = None
    loinc: str | None = None
    status: str | None = None


class ObservationPage(BaseModel):
    patient_id: str
    items: list[Observation]
    total: int
    next_cursor: str | None


class RiskScore(_Open):
    observation_id: str | None = None
    effective_time: datetime
    risk_1h: float | None = None
    risk_6h: float | None = None
    risk_24h: float | None = None
    level: str | None = None
    news2: float | None = None
    crisis_now: bool | None = None
    systolic: float | None = None
    diastolic: float | None = None
    heart_rate: float | None = None
    model_name: str | None = None
    model_version: str | None = None
    score_status: str | None = None


class RiskScorePage(BaseModel):
    patient_id: str
    items: list[RiskScore]
    total: int
    next_cursor: str | None


class Alert(_Open):
    alert_id: str
    kind: str | None = None
    level: str | None = None
    previous_level: str | None = None
    patient_id: str
    observation_id: str | None = None
    effective_time: datetime | None = None
    raised_time: datetime | None = None
    reasons: list[str] | None = None
    ward: str | None = None
    news2: float | None = None
    crisis_now: bool | None = None
    systolic: float | None = None
    diastolic: float | None = None
    heart_rate: float | None = None
    risk_1h: float | None = None
    risk_6h: float | None = None
    risk_24h: float | None = None
    model_name: str | None = None
    model_version: str | None = None
    source: str | None = None
    state: Literal["open", "acknowledged"]
    acknowledged_by: str | None = None
    acknowledged_time: datetime | None = None
    acknowledgement_note: str | None = None


class AlertPage(BaseModel):
    items: list[Alert]
    total: int
    next_cursor: str | None


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = ""


class Acknowledgement(BaseModel):
    alert_id: str
    acknowledged: Literal[True]
    first: bool                       # this request acknowledged it (False: it already was)
    acknowledged_by: str
    acknowledged_time: datetime | None = None


class ModelInfo(BaseModel):
    name: str
    version: str | None
    alias: str
    run_id: str | None = None
    created: datetime | None = None
    tags: dict[str, str] = {}
    metrics: list[dict] = []


class Stage(_Open):
    query: str
    health: str
    degraded: bool
    input_rows_per_s: float | None = None
    processed_rows_per_s: float | None = None
    batch_duration_ms: float | None = None
    kafka_lag: float | None = None
    seconds_since: float | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "unknown"]
    checked_time: datetime
    stages: list[Stage]
