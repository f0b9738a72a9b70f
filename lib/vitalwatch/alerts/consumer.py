"""The notifier's Kafka side: its own consumer group on the alerts topic, manual commits.

Why manual: an offset is committed only past events whose deliveries are all final
(:mod:`vitalwatch.alerts.offsets`), and asynchronously (a broker that is away never blocks
the consumer). Why pause: a receiver down for long keeps its alerts
pending; past ``max_pending_events`` unfinished events the consumer stops fetching (while still
polling, so it stays in the group) until half of them are done, which bounds memory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from vitalwatch.alerts.report import NotifierReport
from vitalwatch.config import Settings
from vitalwatch.infra.process import InfraError

if TYPE_CHECKING:
    from vitalwatch.alerts.notifier import Notifier
    from vitalwatch.infra.kafka_access import KafkaAccess

log = logging.getLogger(__name__)
SUMMARY_EVERY_S = 60.0
REFUSED = {"TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
           "SASL_AUTHENTICATION_FAILED", "_AUTHENTICATION"}
ERROR_LOG_EVERY_S = 30.0


class AlertConsumer:
    """Reads the alerts topic for a :class:`~vitalwatch.alerts.notifier.Notifier`."""

    def __init__(self, settings: Settings, access: KafkaAccess, notifier: Notifier) -> None:
        cfg = settings.alerts.notifier
        self.notifier, self.cfg = notifier, cfg
        self.c = Consumer(access.conf(**{
            "group.id": cfg.consumer_group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "client.id": notifier.owner,
            # a notifier that died holds its partitions until this expires; the
            # restarted one waits that long (librdkafka's default is 45 s)
            "session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000,
            # a topic created after the notifier started is found within seconds
            "topic.metadata.refresh.interval.ms": 10_000,
            "on_commit": self._on_commit}))
        self.c.subscribe([settings.kafka.topics.alerts], on_assign=self._assigned, on_revoke=self._revoked)
        self.paused = False
        self.user = access.user
        self._refused_since: float | None = None
        self._refusal = ""
        self._last_error_log = 0.0
        self.last_read = self._last_check = time.monotonic()  # a message arrived / the lag was looked at

    def _assigned(self, _c: Any, _parts: list[TopicPartition]) -> None:
        self.paused = False  # a new assignment starts fetching
        self._refused_since = None  # the group and the topic were granted

    def _revoked(self, _c: Any, parts: list[TopicPartition]) -> None:
        """Commit what is final in the partitions leaving us, then forget them."""
        owned = {(p.topic, p.partition) for p in parts}
        self.commit(owned)
        self.notifier.tracker.forget(owned)

    def poll_once(self, should_stop: Callable[[], bool]) -> None:
        for msg in self.c.consume(num_messages=200, timeout=0.5):
            if msg.error():
                self._refused(msg.error())
                self._kafka_error(msg.error())
                continue
            self._refused_since = None
            self.notifier.handle(msg, should_stop)
            self.last_read = time.monotonic()  # after handling, which may have waited on MongoDB
            if should_stop():
                return
        self._check_refused()
        self._flow_control()

    def _flow_control(self) -> None:
        pending, limit = self.notifier.tracker.pending(), self.cfg.max_pending_events
        try:
            if not self.paused and pending >= limit:
                self.c.pause(self.c.assignment())
                self.paused = True
                log.warning("notifier: %d alert events unfinished (limit %d): fetching paused", pending, limit)
            elif self.paused and pending < limit / 2:
                self.c.resume(self.c.assignment())
                self.paused = False
                log.info("notifier: fetching resumed (%d unfinished)", pending)
        except KafkaException as e:
            log.warning("notifier: pause/resume failed: %s", e)

    def commit(self, only: set[tuple[str, int]] | None = None) -> int:
        """Commit the finished prefix of each partition, asynchronously; the number of
        partitions sent. Why never synchronously: a synchronous commit while the broker is away
        can block the consumer thread for as long as it is away or longer, and with it every
        later alert's delivery. The broker's answer arrives in :meth:`_on_commit` (during
        ``consume``); until then the same positions are sent again, which is harmless."""
        ready = self.notifier.tracker.committable(only)
        if not ready:
            return 0
        try:
            self.c.commit(offsets=[TopicPartition(t, p, off) for (t, p), off in ready.items()], asynchronous=True)
        except KafkaException as e:
            log.warning("notifier: committing offsets failed (retried later): %s", e)
            return 0
        return len(ready)

    def _on_commit(self, err: Any, parts: list[TopicPartition]) -> None:
        """The broker's answer to a commit: what it accepted is known committed."""
        ok = {(p.topic, p.partition): p.offset for p in parts or [] if not p.error and p.offset >= 0}
        if ok:
            self.notifier.tracker.committed(ok)
            self.notifier.report.commits += 1
        if err is not None:
            self._kafka_error(f"committing offsets failed (sent again later): {err}")

    def flush_commits(self, timeout_s: float = 5.0) -> None:
        """On the way out: send what is final and wait up to ``timeout_s`` for the answer."""
        deadline = time.monotonic() + timeout_s
        while self.commit() and time.monotonic() < deadline:
            for msg in self.c.consume(num_messages=1, timeout=0.2):  # serves the commit callback
                if not msg.error():  # not handled: it stays uncommitted and is read again next time
                    break

    def stalled(self) -> int:
        """Alert events waiting on the topic that this consumer has not read for
        ``stall_s`` while it is not paused (0: not stalled). Why: after a broker restart
        librdkafka's consumer can, now and then, stay in the group and keep polling yet never
        fetch again (confluentinc/librdkafka#5153); only a new consumer recovers, and no alert
        may wait on that. Looked at every ``stall_s / 3`` at most (it asks the broker)."""
        now = time.monotonic()
        if self.paused or now - self.last_read < self.cfg.stall_s or now - self._last_check < self.cfg.stall_s / 3:
            return 0
        self._last_check = now
        try:
            parts = self.c.assignment()
            waiting = 0
            for tp in self.c.position(parts) if parts else []:
                lo, hi = self.c.get_watermark_offsets(tp, timeout=2, cached=False)
                waiting += max(0, hi - (tp.offset if tp.offset >= 0 else lo))
        except KafkaException:  # the broker is away: nothing to judge by yet
            return 0
        return waiting

    def _refused(self, err: Any) -> None:
        """The broker refusing this principal (authentication, or the topic or group not granted:
        ``alerts.notifier.consumer_group`` outside ``kafka.security.acls.notifier``) for
        ``stall_s`` in a row ends the notifier with the reason: idling while delivering nothing
        would hide it. A refusal that clears sooner (a broker still loading its ACLs) does not."""
        if getattr(err, "name", lambda: "")() not in REFUSED:
            return
        self._refused_since = self._refused_since or time.monotonic()
        self._refusal = f"{err.name()}: {err.str()}"

    def _check_refused(self) -> None:
        """Raise once a refusal has not been followed by an assignment or a message for ``stall_s``."""
        if self._refused_since is None:
            return
        waited = time.monotonic() - self._refused_since
        if waited >= self.cfg.stall_s:
            raise InfraError(f"notifier: the Kafka broker refuses {self.user!r} ({self._refusal}), nothing read for "
                             f"{waited:.0f} s; check kafka.security.acls.notifier against "
                             f"alerts.notifier.consumer_group ({self.cfg.consumer_group}) and the credentials")

    def _kafka_error(self, err: Any) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_EVERY_S:
            self._last_error_log = now
            log.warning("notifier: Kafka: %s", err)

    def close(self) -> None:
        self.c.close()


def consume(settings: Settings, access: KafkaAccess, notifier: Notifier, should_stop: Callable[[], bool],
            on_progress: Callable[[NotifierReport], None] | None = None) -> None:
    """Run until ``should_stop()``; then stop the channel workers (attempts under way finish and
    are recorded), commit what is final and leave the group."""
    ac = AlertConsumer(settings, access, notifier)
    last_commit = last_summary = time.monotonic()
    try:
        while not should_stop():
            ac.poll_once(should_stop)
            if waiting := ac.stalled():
                log.warning("notifier: %d alert events wait on the topic and none was read for %.0f s: "
                            "reconnecting the consumer", waiting, time.monotonic() - ac.last_read)
                notifier.report.reconnects += 1
                ac.close()  # leaves the group (what is final is committed first)
                ac = AlertConsumer(settings, access, notifier)
            now = time.monotonic()
            if now - last_commit >= settings.alerts.notifier.commit_interval_s:
                ac.commit()
                last_commit = now
                if on_progress:
                    on_progress(notifier.report)
            if now - last_summary >= SUMMARY_EVERY_S:
                last_summary = now
                notifier.log_line(f"notifier: {notifier.report.summary()}; {notifier.in_progress()} in progress")
    finally:
        notifier.stop()
        ac.flush_commits()
        ac.close()
