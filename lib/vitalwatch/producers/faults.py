"""Fault injection for any producer's message stream: what real devices and gateways do.

- duplicates: the same message again, up to 10 minutes later (a gateway retrying);
- late / out-of-order: a message held back and sent after later ones (a device reconnecting);
- malformed: an extra message of a known broken kind right after the original, marked
  ``Message.kind = "malformed:<the quarantine reason it must get>"``.
Deterministic given the seed; the order of the output is the order of sending."""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from vitalwatch.producers import fhir
from vitalwatch.producers.fhir import Message

MALFORMED_KINDS = (
    "invalid_json", "missing_subject", "unit_not_convertible", "out_of_physiological_range",
    "status_not_accepted", "unsupported_resource_type", "effective_time_without_timezone",
)


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    duplicate_fraction: float = 0.0
    late_fraction: float = 0.0
    malformed_fraction: float = 0.0
    late_delay: tuple[timedelta, timedelta] = (timedelta(minutes=15), timedelta(minutes=60))

    @property
    def none(self) -> bool:
        return not (self.duplicate_fraction or self.late_fraction or self.malformed_fraction)


def malformed(kind: str, patient_id: str, t: datetime, rng: random.Random) -> bytes:
    """A broken message of ``kind`` for ``patient_id`` at ``t`` (a BP panel gone wrong)."""
    bp = fhir.blood_pressure(patient_id, t, 150, 90, f"device-{patient_id}",
                             obs_id=fhir.stable_id("malformed", kind, patient_id, t.isoformat()))
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
        bp = {"resourceType": "Patient", "id": patient_id, "active": True}
    elif kind == "effective_time_without_timezone":
        bp["effectiveDateTime"] = t.strftime("%Y-%m-%dT%H:%M:%S")
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; kinds: {', '.join(MALFORMED_KINDS)}")
    return json.dumps(bp).encode()


def inject(messages: Iterable[Message], plan: FaultPlan) -> Iterator[Message]:
    """``messages`` (in send order) with the planned faults, still in send order."""
    if plan.none:
        yield from messages
        return
    rng = random.Random(plan.seed * 7919 + 1)
    lo, hi = (d.total_seconds() for d in plan.late_delay)
    pending: list[tuple[datetime, int, Message]] = []
    seq = 0
    for m in messages:
        while pending and pending[0][0] <= m.sim_time:
            yield heapq.heappop(pending)[2]
        if rng.random() < plan.late_fraction:
            send = m.sim_time + timedelta(seconds=rng.uniform(lo, hi))
            seq += 1
            heapq.heappush(pending, (send, seq, Message(m.key, m.value, send, "late")))
        else:
            yield m
        if rng.random() < plan.duplicate_fraction:
            send = m.sim_time + timedelta(seconds=rng.uniform(1, 600))
            seq += 1
            heapq.heappush(pending, (send, seq, Message(m.key, m.value, send, "duplicate")))
        if rng.random() < plan.malformed_fraction:
            kind = rng.choice(MALFORMED_KINDS)
            yield Message(m.key, malformed(kind, m.key, m.sim_time, rng), m.sim_time, f"malformed:{kind}")
    while pending:
        yield heapq.heappop(pending)[2]
