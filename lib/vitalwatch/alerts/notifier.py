"""The notifier (``vitalwatch notify``): an outbox consumer of ``vitals.alerts`` delivering
webhooks, in its own process and Kafka consumer group.

Why outside the scoring batch: a receiver that is slow or black-holed must never delay the
alert topic (docs/requirements.md §5, §7). Here it delays only its own channel's workers.

Per event: route it to every webhook whose ``levels`` include the event's level; per
(alert_id, channel) claim the MongoDB ``deliveries`` record (a final one is skipped: restarts,
rebuilt consumer groups and replays send nothing twice), hand pending
ones to the channel's workers (:mod:`vitalwatch.alerts.channel`), and commit the event's
offset only once all its deliveries are final (:mod:`vitalwatch.alerts.offsets`). See
:mod:`vitalwatch.alerts.deliveries` for the one residual at-least-once window."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from vitalwatch.alerts.backoff import backoff_delay
from vitalwatch.alerts.channel import ChannelWorker, Job
from vitalwatch.alerts.consumer import consume
from vitalwatch.alerts.deliveries import (
    FINAL,
    DeliveryStore,
    aware,
    delivery_id,
    notifier_db,
    now_utc,
)
from vitalwatch.alerts.offsets import EventRef, OffsetTracker
from vitalwatch.alerts.report import NotifierReport
from vitalwatch.alerts.urls import redact_url
from vitalwatch.alerts.webhook import WebhookSender
from vitalwatch.config import Settings, WebhookConfig
from vitalwatch.infra.endpoints import Endpoints

log = logging.getLogger(__name__)
_CONSUMING = "\0consuming"  # holds an event open while its deliveries are being claimed


def parse_event(value: bytes | None) -> dict[str, Any] | None:
    """The alert event in a message, or None if it is not one (no JSON object with a string
    ``alert_id`` and ``level``)."""
    try:
        ev = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(ev, dict) or not isinstance(ev.get("alert_id"), str) or not ev["alert_id"]:
        return None
    return ev if isinstance(ev.get("level"), str) else None


def kafka_time(msg: Any) -> datetime:
    """The broker's time of a message (LogAppendTime on vitalwatch topics), else now."""
    kind, ms = msg.timestamp()
    return datetime.fromtimestamp(ms / 1000, UTC) if kind and ms and ms > 0 else now_utc()


class Notifier:
    """The consumer side (module doc); :func:`run_notifier` drives it."""

    def __init__(self, settings: Settings, db: Database, hooks: list[WebhookConfig],
                 log_line: Callable[[str], None]) -> None:
        self.s, self.cfg, self.log_line = settings, settings.alerts.notifier, log_line
        self.store = DeliveryStore(db)
        self.tracker = OffsetTracker()
        self.report = NotifierReport()
        self.owner = f"notifier-{uuid.uuid4().hex[:12]}"
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        sender = WebhookSender()
        self.hooks = hooks
        self.workers = {h.name: ChannelWorker(h, self.cfg, self.store, sender, owner=self.owner,
                                              on_final=self._final, report=self.report, log_line=log_line)
                        for h in hooks}

    def start(self) -> None:
        for w in self.workers.values():
            w.start()

    def stop(self) -> None:
        """Stop every channel; an attempt under way may take its connect and read timeouts."""
        for w in self.workers.values():
            w.request_stop()
        deadline = time.monotonic() + max((h.timeout_s for h in self.hooks), default=0) * 2 + 2
        for w in self.workers.values():
            w.join(deadline)

    def in_progress(self) -> int:
        with self._lock:
            return len(self._jobs)

    # -- events ------------------------------------------------------------------------------
    def handle(self, msg: Any, should_stop: Callable[[], bool]) -> None:
        """Route one consumed message; its offset becomes committable once its deliveries are final."""
        ref = self.tracker.add(msg.topic(), msg.partition(), msg.offset())
        ref.waiting.add(_CONSUMING)
        ev = parse_event(msg.value())
        if ev is None:
            self.report.invalid += 1
            log.error("alerts topic %s[%d]@%d: not an alert event (skipped)", msg.topic(), msg.partition(), msg.offset())
        else:
            self.report.events += 1
            hooks = [h for h in self.hooks if ev["level"] in h.levels]
            if not hooks:
                self.report.unrouted += 1
            for hook in hooks:
                if not self._route(ev, msg.value(), hook, ref, kafka_time(msg), should_stop):
                    return  # stopping before the claim was recorded: the event stays uncommitted
        self._release(ref, _CONSUMING)

    def _route(self, ev: dict[str, Any], body: bytes, hook: WebhookConfig, ref: EventRef, published: datetime,
               should_stop: Callable[[], bool]) -> bool:
        """Attach ``ref`` to the delivery (alert, hook): a job in progress, or a new claim.
        ``body``: the event exactly as published, sent as is."""
        key = delivery_id(ev["alert_id"], hook.name)
        with self._lock:
            if (job := self._jobs.get(key)) is not None:
                job.waiters.append(ref)
                ref.waiting.add(key)
                self.report.duplicates += 1
                return True
        doc = self._claim(ev, hook, published, should_stop)
        if doc is None:
            return False
        if doc.get("status") in FINAL:
            self.report.already_final += 1
            return True
        job = Job(key, ev["alert_id"], body, str(ev.get("schema_version", 1)),
                  aware(doc.get("published_time")) or published, attempts=int(doc.get("attempts", 0)))
        with self._lock:  # only this (consumer) thread adds jobs: the key is still free
            self._jobs[key] = job
            job.waiters.append(ref)
            ref.waiting.add(key)
        next_at = aware(doc.get("next_attempt_time"))  # a back-off that outlived a restart
        self.workers[hook.name].submit(job, (next_at - now_utc()).total_seconds() if next_at else 0.0)
        return True

    def _claim(self, ev: dict[str, Any], hook: WebhookConfig, published: datetime,
               should_stop: Callable[[], bool]) -> dict[str, Any] | None:
        """The delivery record, retried while MongoDB is unreachable (None: asked to stop)."""
        attempt = 0
        while not should_stop():
            try:
                return self.store.claim(ev["alert_id"], hook.name, level=ev["level"],
                                        patient_id=ev.get("patient_id"), published=published)
            except PyMongoError as e:
                attempt += 1
                delay = backoff_delay(attempt, self.cfg.backoff_base_s, self.cfg.backoff_max_s)
                self.report.add(hook.name, "store_errors")
                log.warning("MongoDB deliveries unavailable (%s); claiming alert %s again in %.1f s",
                            type(e).__name__, ev["alert_id"], delay)
                _sleep(delay, should_stop)
        return None

    def _final(self, job: Job, _status: str) -> None:
        """A channel worker finished ``job``: release the events waiting for it."""
        with self._lock:
            self._jobs.pop(job.key, None)
            waiters, job.waiters = job.waiters, []
        for ref in waiters:
            self._release(ref, job.key)

    def _release(self, ref: EventRef, key: str) -> None:
        with self._lock:
            ref.waiting.discard(key)
            finished = not ref.waiting
        if finished:
            self.tracker.finish(ref)


def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while not should_stop() and time.monotonic() < end:
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))


def describe_hooks(hooks: list[WebhookConfig]) -> str:
    """The configured webhooks, redacted, for the start-up line."""
    return ", ".join(f"{h.name} → {redact_url(h.url)} [{'/'.join(h.levels)}]" for h in hooks) or "none"


def run_notifier(settings: Settings, endpoints: Endpoints, *, should_stop: Callable[[], bool] | None = None,
                 log_line: Callable[[str], None] = log.info,
                 on_progress: Callable[[NotifierReport], None] | None = None) -> NotifierReport:
    """Deliver the webhooks of ``alerts.webhooks`` for every event on the alerts topic until
    ``should_stop()`` is true (the caller maps SIGTERM/SIGINT to it); then finish the attempts
    under way, commit what is final and return the totals. ``endpoints`` needs Kafka (it reads as ``notifier``)
    and ``mongo_uri`` (the server; the notifier signs in as ``alerts.notifier.mongo_user``).
    ``on_progress`` gets the running totals about every ``commit_interval_s`` (health reporting)."""
    stop = should_stop or (lambda: False)
    hooks = list(settings.alerts.webhooks)
    db = notifier_db(settings, endpoints.mongo_uri or "")
    notifier = Notifier(settings, db, hooks, log_line)
    log_line(f"notifier {notifier.owner}: group {settings.alerts.notifier.consumer_group} on "
             f"{settings.kafka.topics.alerts}; webhooks: {describe_hooks(hooks)}")
    notifier.start()
    try:
        consume(settings, endpoints.kafka("notifier"), notifier, stop, on_progress)
    finally:
        notifier.stop()  # done already unless the consumer could not start
        db.client.close()
    log_line(f"notifier {notifier.owner} stopped: {notifier.report.summary()}")
    return notifier.report
