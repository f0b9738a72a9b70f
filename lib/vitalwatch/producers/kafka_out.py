"""Publishing messages to Kafka, paced by simulated time and/or a message-rate cap.

Idempotent producer (acks=all, enable.idempotence) keyed by patient id, so one patient's
messages stay in order on one partition; every delivery is confirmed before returning."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vitalwatch.producers.fhir import Message

if TYPE_CHECKING:
    from vitalwatch.infra.kafka_access import KafkaAccess


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def producer(access: KafkaAccess, **extra: object):
    """An idempotent producer signed in as ``access``'s principal (``device`` for readings)."""
    from confluent_kafka import Producer

    return Producer(access.conf(**{"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                                   "compression.type": "lz4", "queue.buffering.max.messages": 200000,
                                   **extra}))


def send(messages: Iterable[Message], access: KafkaAccess, topic: str, *, speedup: float = 0.0,
         rate: float = 0.0, on_sent: Callable[[Message], None] | None = None,
         should_stop: Callable[[], bool] | None = None,
         side: Callable[[Message], list[tuple[str, str, bytes]]] | None = None) -> SendReport:
    """Send ``messages`` in order. ``speedup`` > 0 paces by simulated time (that many simulated
    seconds per wall second); ``rate`` > 0 caps messages per second; both 0: as fast as possible."""
    p = producer(access)
    rep = SendReport()

    def delivered(err, _msg) -> None:
        if err is not None:
            rep.failed += 1
            if len(rep.errors) < 10:
                rep.errors.append(str(err))

    t0 = time.monotonic()
    sim0 = None
    for i, m in enumerate(messages):
        if should_stop and should_stop():
            break
        if speedup > 0:
            sim0 = sim0 or m.sim_time
            due = t0 + (m.sim_time - sim0).total_seconds() / speedup
            _sleep_until(due)
        if rate > 0:
            _sleep_until(t0 + i / rate)
        while True:
            try:
                p.produce(topic, key=m.key.encode(), value=m.value, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.1)
        for extra_topic, key, value in (side(m) if side else []):
            p.produce(extra_topic, key=key.encode(), value=value, on_delivery=delivered)
            rep.by_kind["gateway_alert"] = rep.by_kind.get("gateway_alert", 0) + 1
        p.poll(0)
        rep.sent += 1
        rep.by_kind[m.kind] = rep.by_kind.get(m.kind, 0) + 1
        if on_sent:
            on_sent(m)
    remaining = p.flush(60)
    rep.failed += remaining
    rep.seconds = time.monotonic() - t0
    if rep.failed:
        raise RuntimeError(f"{rep.failed} message(s) not delivered to {topic}: {rep.errors}")
    return rep


def _sleep_until(due: float) -> None:
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
