"""The device simulator: N patients' monitors publishing FHIR vitals, with optional faults.

Each patient is read every ``cadence_minutes`` (own phase): a blood-pressure panel plus heart
rate, SpO2 and respiratory rate (temperature every fourth reading), sent either as separate
Observations or, for ``bundle_fraction`` of readings, as one batch Bundle. Faults on request
(duplicates, late/out-of-order, malformed) come from :mod:`vitalwatch.producers.faults`.
Deterministic given the seed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from vitalwatch.config import ClinicalConfig, SimulatorConfig
from vitalwatch.producers import fhir
from vitalwatch.producers.faults import FaultPlan, inject
from vitalwatch.producers.fhir import Message
from vitalwatch.producers.physiology import Patient, make_patients


@dataclass(frozen=True)
class SimulationPlan:
    start: datetime
    hours: float
    cfg: SimulatorConfig

    @classmethod
    def until_now(cls, hours: float, cfg: SimulatorConfig, now: datetime | None = None) -> SimulationPlan:
        """The ``hours`` ending now. Sent at any speed-up, no reading is then dated after the
        moment it is sent: a device cannot measure the future, and the pipeline quarantines a
        time later than its arrival plus ``fhir.max_clock_skew``."""
        from datetime import UTC

        end = (now or datetime.now(UTC)).replace(microsecond=0)
        return cls(end - timedelta(hours=hours), hours, cfg)

    @property
    def steps(self) -> int:
        return max(1, int(self.hours * 60 / self.cfg.cadence_minutes))


def patients_for(plan: SimulationPlan) -> list[Patient]:
    return make_patients(plan.cfg.patients, plan.cfg.seed, plan.cfg.profile_mix, plan.hours,
                         prefix=plan.cfg.patient_prefix)


def _reading(p: Patient, t: datetime, k: int, t_h: float, as_bundle: bool) -> list[dict]:
    v = p.vitals(t, t_h)
    res = [fhir.blood_pressure(p.patient_id, t, v["systolic"], v["diastolic"], p.device_id)]
    for name in ("heart_rate", "spo2", "respiratory_rate"):
        res.append(fhir.vital(p.patient_id, t, name, v[name], p.device_id))
    if k % 4 == 0:
        res.append(fhir.vital(p.patient_id, t, "body_temperature", v["body_temperature"], p.device_id))
    return [fhir.bundle(res)] if as_bundle else res


def readings(plan: SimulationPlan) -> Iterator[Message]:
    """The devices' messages without faults, in send order."""
    cfg = plan.cfg
    rng = random.Random(cfg.seed * 7919 + 2)
    patients = patients_for(plan)
    phase = {p.patient_id: rng.uniform(0, cfg.cadence_minutes) for p in patients}
    order = sorted(patients, key=lambda p: phase[p.patient_id])
    for k in range(plan.steps):
        for p in order:
            t = plan.start + timedelta(minutes=k * cfg.cadence_minutes + phase[p.patient_id])
            t_h = (t - plan.start).total_seconds() / 3600
            for res in _reading(p, t, k, t_h, rng.random() < cfg.bundle_fraction):
                yield Message.of(p.patient_id, res, t)


def simulate(plan: SimulationPlan) -> Iterator[Message]:
    """Messages in send order (by simulated send time), with the configured faults."""
    cfg = plan.cfg
    faults = FaultPlan(cfg.seed, cfg.duplicate_fraction, cfg.late_fraction, cfg.malformed_fraction,
                       (timedelta(minutes=cfg.cadence_minutes), timedelta(minutes=max(60, 2 * cfg.cadence_minutes))))
    return inject(readings(plan), faults)


def registry_entries(plan: SimulationPlan) -> list[dict]:
    """The simulated patients as the hospital's registry knows them: ward and care team (the
    routing targets), plus the direct identifiers analysts must never see."""
    out = []
    for i, p in enumerate(patients_for(plan)):
        ward = p.ward
        out.append({"_id": p.patient_id, "name": f"Simulated Patient {p.patient_id}", "mrn": f"MRN{i:07d}",
                    "birth_date": f"19{40 + i % 50:02d}-0{1 + i % 9}-1{i % 10}", "ward": ward,
                    "profile": p.profile, "device_id": p.device_id,
                    "care_team": {"physician_on_call": f"dr-oncall-{ward}", "nurse": f"rn-{ward}-{i % 2 + 1}",
                                  "dashboard": f"dashboard-{ward}"}})
    return out


def gateway_alert(m: Message, cfg: ClinicalConfig) -> dict | None:
    """The crisis-now alert event a device gateway could compute at the edge for a message
    carrying a blood-pressure reading that is itself a crisis: ``alert_id`` is the one the server
    computes for that reading at CRITICAL. Devices and gateways may not publish it (Kafka ACLs:
    a predicted id would pre-empt the genuine alert); the tests use it as the forgery to refuse
    and to know which alert ids the server must raise."""
    import json

    from vitalwatch.alerts.policy import alert_id

    if m.kind != "reading":
        return None
    res = json.loads(m.value)
    entries = [e.get("resource", {}) for e in res.get("entry", [])] if res.get("resourceType") == "Bundle" else [res]
    for r in entries:
        if r.get("code", {}).get("coding", [{}])[0].get("code") != fhir.BP_PANEL[0]:
            continue
        comp = {c["code"]["coding"][0]["code"]: c.get("valueQuantity", {}).get("value") for c in r.get("component", [])}
        sbp, dbp = comp.get(fhir.SYSTOLIC[0]), comp.get(fhir.DIASTOLIC[0])
        if (sbp or 0) >= cfg.crisis_systolic or (dbp or 0) >= cfg.crisis_diastolic:
            pid = r["subject"]["reference"].split("/")[-1]
            return {"schema_version": 1, "alert_id": alert_id(pid, r["id"], "CRITICAL"), "kind": "raised",
                    "level": "CRITICAL", "patient_id": pid, "observation_id": r["id"],
                    "effective_time": r["effectiveDateTime"], "reasons": ["crisis_now"], "late": False,
                    "systolic": sbp, "diastolic": dbp, "source": "gateway"}
    return None
