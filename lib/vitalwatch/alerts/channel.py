"""One webhook channel's delivery workers: a due-time queue and a few threads.

Why per channel: a black-holed receiver ties up only its own workers (each attempt waits at
most ``timeout_s``), never another channel's; and why a due-time queue rather than sleeping
in place: an alert in back-off does not hold up the alerts behind it on the same channel.

A delivery moves in steps (:meth:`ChannelWorker._step`): take the lease and count the attempt
in MongoDB, POST, write the outcome. An outcome that could not be written (MongoDB down) is
kept and written later — the POST is never repeated for it. A delivery becomes final when
``delivered`` or ``failed`` is written; then ``on_final`` releases the Kafka events waiting
for it."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo.errors import PyMongoError

from vitalwatch.alerts.backoff import backoff_delay, retry_delay
from vitalwatch.alerts.deliveries import DELIVERED, FAILED, FINAL, DeliveryStore, aware, now_utc
from vitalwatch.alerts.offsets import EventRef
from vitalwatch.alerts.report import NotifierReport
from vitalwatch.alerts.urls import redact_url
from vitalwatch.alerts.webhook import AttemptResult, WebhookSender
from vitalwatch.config import NotifierConfig, WebhookConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What an attempt's result means for the record: delivered, retry (after ``delay_s``), failed."""

    status: str
    http_status: int | None
    error: str
    delay_s: float = 0.0


@dataclass(eq=False)
class Job:
    """One delivery (alert × channel) in progress, and the Kafka events waiting for it."""

    key: str
    alert_id: str
    body: bytes
    schema_version: str
    published: datetime
    waiters: list[EventRef] = field(default_factory=list)
    attempts: int = 0
    unrecorded: Decision | None = None


class ChannelWorker:
    """Delivers the jobs of one webhook (module doc)."""

    def __init__(self, hook: WebhookConfig, cfg: NotifierConfig, store: DeliveryStore, sender: WebhookSender,
                 *, owner: str, on_final: Callable[[Job, str], None], report: NotifierReport,
                 log_line: Callable[[str], None]) -> None:
        self.hook, self.cfg, self.store, self.sender = hook, cfg, store, sender
        self.owner, self.on_final, self.report, self.log_line = owner, on_final, report, log_line
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._loop, name=f"notify-{hook.name}-{i}", daemon=True)
                         for i in range(cfg.workers_per_channel)]

    @property
    def lease_s(self) -> float:
        return 2 * self.hook.timeout_s + self.cfg.lease_margin_s  # connect + read, then the margin

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def submit(self, job: Job, delay_s: float = 0.0) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), next(self._seq), job))
            self._cv.notify()

    def queued(self) -> int:
        with self._cv:
            return len(self._heap)

    def request_stop(self) -> None:
        """No new steps; steps under way finish (an attempt, then its record)."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()

    def join(self, deadline: float) -> None:
        """Wait for the workers until ``deadline`` (``time.monotonic()``)."""
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _next(self) -> Job | None:
        with self._cv:
            while not self._stopping:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                self._cv.wait(self._heap[0][0] - now if self._heap else None)
            return None

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            try:
                delay = self._step(job)
            except Exception:  # a bug must not lose the delivery: log it, try again later
                log.exception("webhook %s: unexpected error delivering alert %s", self.hook.name, job.alert_id)
                delay = backoff_delay(job.attempts + 1, self.cfg.backoff_base_s, self.cfg.backoff_max_s)
            if delay is not None:
                self.submit(job, delay)

    # -- one step of a delivery ----------------------------------------------------------------
    def _step(self, job: Job) -> float | None:
        """Advance ``job`` once; the delay until its next step, or None once it is final."""
        if job.unrecorded is not None:
            return self._record(job)
        if self._exhausted(job, before_attempt=True):
            return self._give_up(job)
        try:
            doc = self.store.begin_attempt(job.key, self.owner, self.lease_s)
        except PyMongoError as e:
            return self._store_error(job, "begin attempt", e)
        if doc is None:
            return self._not_ours(job)
        job.attempts = int(doc.get("attempts", 0))
        result = self.sender.send(self.hook, job.body, job.alert_id, job.attempts, job.schema_version)
        job.unrecorded = self._decide(job, result)
        return self._record(job)

    def _not_ours(self, job: Job) -> float | None:
        """The attempt was not started: the record is final, or another notifier holds its lease."""
        try:
            doc = self.store.get(job.key)
        except PyMongoError as e:
            return self._store_error(job, "read", e)
        if doc is not None and doc.get("status") in FINAL:
            self.on_final(job, str(doc["status"]))
            return None
        if doc is None:  # removed under us: record it again, so the alert is not lost
            log.warning("webhook %s: delivery record of alert %s vanished; recreating it", self.hook.name, job.alert_id)
            self.store.claim(job.alert_id, self.hook.name, level="", patient_id=None, published=job.published)
            return 0.0
        lease_until = aware(doc.get("lease_until"))
        return max(0.2, (lease_until - now_utc()).total_seconds()) if lease_until else 0.2

    def _decide(self, job: Job, r: AttemptResult) -> Decision:
        if r.outcome == "delivered":
            return Decision(DELIVERED, r.http_status, "")
        if r.outcome == "failed":
            return Decision(FAILED, r.http_status, r.error)
        self.report.add(self.hook.name, "retries")
        if self._exhausted(job, before_attempt=False):
            return Decision(FAILED, r.http_status, f"gave up after {job.attempts} attempts; last: {r.error}")
        delay = retry_delay(job.attempts, self.cfg.backoff_base_s, self.cfg.backoff_max_s, r.retry_after_s,
                            self.cfg.retry_after_max_s)
        log.info("webhook %s (%s): alert %s attempt %d: %s; next in %.1f s", self.hook.name,
                 redact_url(self.hook.url), job.alert_id, job.attempts, r.error, delay)
        return Decision("retry", r.http_status, r.error, delay)

    def _exhausted(self, job: Job, *, before_attempt: bool) -> bool:
        """Out of attempts (``max_attempts``) or of time (``max_age_s`` since publication)."""
        limit = self.cfg.max_attempts
        if limit is not None and job.attempts >= limit:
            return True
        age = (now_utc() - job.published).total_seconds()
        return age >= self.cfg.max_age_s if before_attempt else False

    def _record(self, job: Job) -> float | None:
        d = job.unrecorded
        assert d is not None
        try:
            if d.status == DELIVERED:
                self.store.record_delivered(job.key, d.http_status)
            elif d.status == FAILED:
                self.store.record_failed(job.key, d.http_status, d.error)
            else:
                self.store.record_retry(job.key, d.http_status, d.error, now_utc() + timedelta(seconds=d.delay_s))
        except PyMongoError as e:
            return self._store_error(job, f"record {d.status}", e)
        job.unrecorded = None
        if d.status == "retry":
            return d.delay_s
        self.report.add(self.hook.name, d.status)
        if d.status == FAILED:
            self._loud_failure(job, d.error)
        self.on_final(job, d.status)
        return None

    def _give_up(self, job: Job) -> float | None:
        age = (now_utc() - job.published).total_seconds()
        job.unrecorded = Decision(FAILED, None, f"gave up after {job.attempts} attempts, {age:.0f} s after the "
                                                 "alert was published")
        return self._record(job)

    def _loud_failure(self, job: Job, error: str) -> None:
        msg = (f"WEBHOOK DELIVERY FAILED for good: alert {job.alert_id} to {self.hook.name} "
               f"({redact_url(self.hook.url)}) after {job.attempts} attempt(s): {error}; "
               "kept as failed in MongoDB deliveries")
        log.error(msg)
        self.log_line(msg)

    def _store_error(self, job: Job, what: str, e: PyMongoError) -> float:
        self.report.add(self.hook.name, "store_errors")
        delay = backoff_delay(2, self.cfg.backoff_base_s, self.cfg.backoff_max_s)
        log.warning("webhook %s: MongoDB deliveries unavailable (%s for alert %s: %s); again in %.1f s",
                    self.hook.name, what, job.alert_id, type(e).__name__, delay)
        return delay
