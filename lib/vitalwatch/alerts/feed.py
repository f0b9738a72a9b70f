"""Following alerts live from ``vitals.alerts`` (the source project's alert consumer).

Delivery on the topic is at-least-once (a replayed micro-batch publishes again), so the
feed yields each ``alert_id`` once; a record that is not an alert event is skipped.
Filters: a ward, or a caregiver (one of the alert's recipients)."""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitalwatch.infra.kafka_access import KafkaAccess


@dataclass(frozen=True)
class AlertFilter:
    ward: str | None = None
    caregiver: str | None = None

    def __call__(self, ev: dict[str, Any]) -> bool:
        if self.ward and ev.get("ward") != self.ward:
            return False
        return not (self.caregiver and self.caregiver not in {r.get("id") for r in ev.get("recipients") or []})


class Deduper:
    """Remembers the last ``capacity`` alert ids (bounded memory for a feed that runs for days)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first(self, alert_id: str) -> bool:
        if alert_id in self._seen:
            return False
        self._seen[alert_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


def follow(access: KafkaAccess, topic: str, *, keep: AlertFilter | None = None, from_beginning: bool = False,
           group: str | None = None, idle_timeout_s: float | None = None,
           should_stop: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """Yield alert events as they arrive, each ``alert_id`` once; stop after ``idle_timeout_s``
    without a message (None: never) or when ``should_stop`` says so."""
    import time

    from confluent_kafka import Consumer

    c = Consumer(access.conf(**{"group.id": group or f"vitalwatch-watch-{uuid.uuid4().hex[:8]}",
                                "auto.offset.reset": "earliest" if from_beginning else "latest",
                                "enable.auto.commit": group is not None}))
    c.subscribe([topic])
    keep = keep or AlertFilter()
    dedupe = Deduper()
    last = time.monotonic()
    try:
        while not (should_stop and should_stop()):
            msg = c.poll(0.5)
            if msg is None:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            if msg.error():
                continue
            try:
                ev = json.loads(msg.value())
            except (TypeError, ValueError):  # a tombstone, not JSON
                continue
            if not isinstance(ev, dict) or not isinstance(ev.get("alert_id"), str):
                continue  # not an alert event: never the end of the feed
            ev["_kafka_timestamp_ms"] = msg.timestamp()[1]
            if keep(ev) and dedupe.first(str(ev.get("alert_id"))):
                yield ev
    finally:
        c.close()


def describe(ev: dict[str, Any]) -> str:
    """One line for a terminal."""
    who = ", ".join(f"{r.get('role')}={r.get('id')}" for r in ev.get("recipients") or [] if isinstance(r, dict)) or "-"
    risk = ev.get("risk_6h")
    risk_s = f"risk6h={risk:.2f}" if isinstance(risk, int | float) else ""
    bp = f"BP {ev.get('systolic') or '?'}/{ev.get('diastolic') or '?'}"
    return (f"{ev.get('level') or '?'!s:8} {ev.get('kind') or ''!s:9} {ev.get('patient_id')} ward={ev.get('ward', '-')} "
            f"{bp} {risk_s} reasons={','.join(ev.get('reasons') or [])} → {who} [{ev.get('source')}] "
            f"{ev.get('effective_time')}")


def _kafka_ms(ts: str) -> float:
    from datetime import UTC, datetime

    t = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() * 1000


def alert_latencies(access: KafkaAccess, topic: str, since_ms: float = 0) -> list[float]:
    """Seconds from each server alert's reading (its Kafka time, ``source_kafka_time``) to the
    alert on ``topic`` (the alert's Kafka time), for alerts published since ``since_ms``; sorted."""
    return sorted((e["_kafka_timestamp_ms"] - _kafka_ms(e["source_kafka_time"])) / 1000
                  for e in follow(access, topic, from_beginning=True, idle_timeout_s=5)
                  if e.get("source") == "server" and e.get("source_kafka_time")
                  and e["_kafka_timestamp_ms"] >= since_ms)


def percentiles(xs: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99, max and count of ``xs`` (empty: {})."""
    import math

    if not xs:
        return {}
    xs = sorted(xs)
    pick = {p: xs[min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1)] for p in (50, 95, 99)}
    return {"p50": pick[50], "p95": pick[95], "p99": pick[99], "max": xs[-1], "n": float(len(xs))}
