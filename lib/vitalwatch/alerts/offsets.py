"""Which Kafka offsets of ``vitals.alerts`` the notifier may commit.

Why not auto-commit: an offset committed before its deliveries are final would lose them in a
crash. Events finish out of order (a black-holed webhook holds one alert while others are
delivered), so per partition the commit point is just past the longest run of finished
events from the front: a restart re-reads at most the unfinished ones, and the delivery
records (:mod:`vitalwatch.alerts.deliveries`) make re-reading a finished one a no-op."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

TopicPart = tuple[str, int]


@dataclass(eq=False)
class EventRef:
    """One consumed message and the deliveries (keys) it still waits for."""

    topic: str
    partition: int
    offset: int
    waiting: set[str] = field(default_factory=set)
    done: bool = False


class OffsetTracker:
    """Thread-safe: events are added by the consumer, finished by channel workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[TopicPart, OrderedDict[int, EventRef]] = {}
        self._ready: dict[TopicPart, int] = {}       # commit points reached
        self._committed: dict[TopicPart, int] = {}   # commit points the broker accepted

    def add(self, topic: str, partition: int, offset: int) -> EventRef:
        ref = EventRef(topic, partition, offset)
        with self._lock:
            self._open.setdefault((topic, partition), OrderedDict())[offset] = ref
        return ref

    def finish(self, ref: EventRef) -> None:
        """Mark an event finished (idempotent; unknown or forgotten events are ignored)."""
        with self._lock:
            ref.done = True

    def pending(self) -> int:
        with self._lock:
            return sum(1 for q in self._open.values() for r in q.values() if not r.done)

    def committable(self, only: set[TopicPart] | None = None) -> dict[TopicPart, int]:
        """``{(topic, partition): next offset}`` that may be committed and is not yet known to be."""
        with self._lock:
            for tp, q in self._open.items():
                last = None
                while q and next(iter(q.values())).done:
                    last, _ = q.popitem(last=False)
                if last is not None:
                    self._ready[tp] = last + 1
            return {tp: off for tp, off in self._ready.items()
                    if off > self._committed.get(tp, -1) and (only is None or tp in only)}

    def committed(self, positions: dict[TopicPart, int]) -> None:
        """The broker accepted these positions."""
        with self._lock:
            for tp, off in positions.items():
                self._committed[tp] = max(off, self._committed.get(tp, -1))

    def forget(self, parts: set[TopicPart]) -> None:
        """Partitions this consumer no longer owns (a rebalance): their events are re-read by
        the new owner, which finds their delivery records."""
        with self._lock:
            for tp in parts:
                self._open.pop(tp, None)
                self._ready.pop(tp, None)
                self._committed.pop(tp, None)
