"""The device simulator: N patients' monitors publishing FHIR vitals, with optional faults.

Each patient is read every ``cadence_minutes`` (own phase): a blood-pressure panel plus heart
rate, SpO2 and respiratory rate (temperature every fourth reading), sent either as separate
Observations or, for ``bundle_fraction`` of readings, as one batch Bundle. Faults on request:
duplicates (the same message again), late/out-of-order delivery (sent up to an hour after
later readings) and malformed messages of known kinds (``Message.kind`` =
``malformed:<expected quarantine reason>``). Deterministic given the seed."""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from vitalwatch.config import SimulatorConfig
from vitalwatch.producers import fhir
from vitalwatch.producers.fhir import Message
from vitalwatch.producers.physiology import Patient, make_patients

MALFORMED_KINDS = (
    "invalid_json", "missing_subject", "unit_not_convertible", "out_of_physiological_range",
    "status_not_accepted", "unsupported_resource_type", "effective_time_without_timezone",
)


@dataclass(frozen=True)
class SimulationPlan:
    start: datetime
    hours: float
    cfg: SimulatorConfig

    @property
    def steps(self) -> int:
        return max(1, int(self.hours * 60 / self.cfg.cadence_minutes))


def patients_for(plan: SimulationPlan) -> list[Patient]:
    return make_patients(plan.cfg.patients, plan.cfg.seed, plan.cfg.profile_mix, plan.hours)


def _reading(p: Patient, t: datetime, k: int, t_h: float, as_bundle: bool) -> list[dict]:
    v = p.vitals(t, t_h)
    res = [fhir.blood_pressure(p.patient_id, t, v["systolic"], v["diastolic"], p.device_id)]
    for name in ("heart_rate", "spo2", "respiratory_rate"):
        res.append(fhir.vital(p.patient_id, t, name, v[name], p.device_id))
    if k % 4 == 0:
        res.append(fhir.vital(p.patient_id, t, "body_temperature", v["body_temperature"], p.device_id))
    return [fhir.bundle(res)] if as_bundle else res


def _malformed(kind: str, p: Patient, t: datetime, rng: random.Random) -> bytes:
    bp = fhir.blood_pressure(p.patient_id, t, 150, 90, p.device_id,
                             obs_id=fhir.stable_id("malformed", kind, p.patient_id, t.isoformat()))
    if kind == "invalid_json":
        s = json.dumps(bp)
        return s[: rng.randint(10, len(s) - 10)].encode()
    if kind == "missing_subject":
        del bp["subject"]
    elif kind == "unit_not_convertible":
        bp["component"][0]["valueQuantity"].update(code="mm[H2O]", unit="mmH2O")
    elif kind == "out_of_physiological_range":
        bp["component"][0]["valueQuantity"]["value"] = 420.0
    elif kind == "status_not_accepted":
        bp["status"] = "entered-in-error"
    elif kind == "unsupported_resource_type":
        bp = {"resourceType": "Patient", "id": p.patient_id, "active": True}
    elif kind == "effective_time_without_timezone":
        bp["effectiveDateTime"] = t.strftime("%Y-%m-%dT%H:%M:%S")
    return json.dumps(bp).encode()


def simulate(plan: SimulationPlan) -> Iterator[Message]:
    """Messages in send order (by simulated send time)."""
    cfg = plan.cfg
    rng = random.Random(cfg.seed * 7919 + 1)
    patients = patients_for(plan)
    phase = {p.patient_id: rng.uniform(0, cfg.cadence_minutes) for p in patients}
    order = sorted(patients, key=lambda p: phase[p.patient_id])
    pending: list[tuple[datetime, int, Message]] = []  # late and duplicate messages, by send time
    seq = 0
    for k in range(plan.steps):
        for p in order:
            t = plan.start + timedelta(minutes=k * cfg.cadence_minutes + phase[p.patient_id])
            while pending and pending[0][0] <= t:
                yield heapq.heappop(pending)[2]
            t_h = (t - plan.start).total_seconds() / 3600
            for res in _reading(p, t, k, t_h, rng.random() < cfg.bundle_fraction):
                msg = Message.of(p.patient_id, res, t)
                if rng.random() < cfg.late_fraction:
                    send = t + timedelta(minutes=rng.uniform(cfg.cadence_minutes, 60))
                    seq += 1
                    heapq.heappush(pending, (send, seq, Message(msg.key, msg.value, send, "late")))
                else:
                    yield msg
                if rng.random() < cfg.duplicate_fraction:
                    send = t + timedelta(seconds=rng.uniform(1, 600))
                    seq += 1
                    heapq.heappush(pending, (send, seq, Message(msg.key, msg.value, send, "duplicate")))
            if rng.random() < cfg.malformed_fraction:
                kind = rng.choice(MALFORMED_KINDS)
                yield Message(p.patient_id, _malformed(kind, p, t, rng), t, f"malformed:{kind}")
    while pending:
        yield heapq.heappop(pending)[2]
