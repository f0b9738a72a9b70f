"""What a notifier run did, counted as it goes (shared by the consumer and the channel workers)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

CHANNEL_COUNTERS = ("delivered", "failed", "retries", "store_errors")


@dataclass
class NotifierReport:
    """Totals of one :func:`vitalwatch.alerts.notifier.run_notifier` run.

    ``events``: alert events read; ``invalid``: messages that were no alert event (logged);
    ``unrouted``: events no webhook takes (their level); ``already_final``: deliveries found
    ``delivered``/``failed`` in MongoDB and not sent again; ``duplicates``: a second event for a
    delivery still in progress (a replayed copy of one alert);
    ``channels``: per webhook, delivered / failed / retries / store_errors."""

    events: int = 0
    invalid: int = 0
    unrouted: int = 0
    already_final: int = 0
    duplicates: int = 0
    commits: int = 0
    reconnects: int = 0  # consumers replaced because they stopped reading (AlertConsumer.stalled)
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, channel: str, counter: str, n: int = 1) -> None:
        with self._lock:
            per = self.channels.setdefault(channel, dict.fromkeys(CHANNEL_COUNTERS, 0))
            per[counter] = per.get(counter, 0) + n

    def total(self, counter: str) -> int:
        with self._lock:
            return sum(c.get(counter, 0) for c in self.channels.values())

    def summary(self) -> str:
        """One line for logs."""
        return (f"{self.events} events read, {self.total('delivered')} delivered, {self.total('failed')} failed, "
                f"{self.total('retries')} retries, {self.already_final} already final, "
                f"{self.duplicates} duplicates, {self.invalid} invalid"
                + (f", {self.reconnects} consumer reconnects" if self.reconnects else ""))
