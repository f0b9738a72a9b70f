"""The fault-injection run (``jobs/benchmark.py --only faults`` and ``tests/faults/``): the
applications as separate processes on the real local servers, a crisis feed, and one outage
after another —

a. Elasticsearch SIGKILLed for ``outage_s``, then restarted;  b. mongod the same;
c. the Kafka broker restarted;  d. the webhook receiver black-holed for ``outage_s``;
e. the alert app SIGKILLed mid-batch ``kills`` times (each time started again by its parent);
f. the lake app stopped for ``lake_stop_s`` — begun with d and held through e (they do not
   touch the lake, and the run stays within CI's time).

The first fault begins once the pipeline is warm (the last alerts came within 15 s of their
readings, or 3 minutes passed): a cold start's slow first batches are not any fault's latency.
For each: event → alert p50/p99 before, during and after it, whether alerts kept arriving
during it, and how long each store (Delta gold, MongoDB, Elasticsearch, the webhook) took,
after it ended, to hold every alert raised until then. At the end: every crisis alerted once,
each store holds exactly the alerts and scores of the topic, no duplicates, and each alert
was delivered to the webhook exactly once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vitalwatch.alerts.feed import percentiles
from vitalwatch.bench.fault_tools import (
    AlertLog,
    CrisisFeed,
    Receiver,
    delta_keys,
    es_ids,
    mongo_ids,
    now_ms,
    score_keys,
)
from vitalwatch.config import Settings
from vitalwatch.infra.manager import InfraManager
from vitalwatch.pipeline.apps import AppProcesses, wait_until
from vitalwatch.pipeline.lake import GOLD_ALERTS, GOLD_SCORES
from vitalwatch.sinks.search import base_url, index_name

STORES = ("delta", "mongo", "elasticsearch", "webhook")
EXCLUDE_BEFORE_MS, EXCLUDE_AFTER_MS = 30_000, 60_000  # around another fault inside this one


@dataclass
class FaultResult:
    name: str
    start_ms: float = 0.0
    end_ms: float = 0.0
    next_ms: float = 0.0
    alerts_during: int = 0
    converge_s: dict[str, float | None] = field(default_factory=dict)
    exclude: list[tuple[float, float]] = field(default_factory=list)  # another fault's time inside this one

    def row(self, log: AlertLog, before_s: float = 30.0, guard_s: float = 30.0) -> dict[str, Any]:
        """Latency before (the ``before_s`` before it), during, and after it — until ``guard_s``
        before the next fault, whose own delay would otherwise be counted as this one's."""
        def q(a: float, b: float) -> dict[str, float]:
            return percentiles(log.latencies(a, b, self.exclude))

        after_end = self.next_ms - guard_s * 1000 if self.next_ms else now_ms()
        return {"fault": self.name, "before": q(self.start_ms - before_s * 1000, self.start_ms),
                "during": q(self.start_ms, self.end_ms), "after": q(self.end_ms, max(after_end, self.end_ms)),
                "alerts_during": self.alerts_during, "converge_s": self.converge_s,
                "excluded_s": [round((b - a) / 1000) for a, b in self.exclude]}


@dataclass
class Run:
    """One fault-injection run's parts; :func:`run_faults` drives it."""

    settings: Settings
    endpoints: Any
    admin_db: Any
    secret: str
    prefix: str
    say: Callable[[str], None] = print
    outage_s: float = 60.0
    lake_stop_s: float = 300.0
    kills: int = 3
    converge_limit_s: float = 300.0
    results: list[FaultResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.infra = InfraManager(self.settings)
        self.receiver = Receiver(self.secret)

    # -- convergence -------------------------------------------------------------------------
    def missing(self, store: str, until_ms: float) -> int:
        """Alerts raised until ``until_ms`` (webhook: CRITICAL/HIGH ones) that ``store`` lacks."""
        want = {a for a, v in list(self.log.first.items()) if v["alert_ms"] <= until_ms}
        if store == "webhook":
            want = {a for a in want if self.log.first[a]["level"] in ("CRITICAL", "HIGH")}
            return len(want - set(self.receiver.delivered))
        try:
            have = set(self.store_alerts(store))
        except Exception:  # the store is still coming back
            return len(want)
        return len(want - have)

    def store_alerts(self, store: str) -> list[str]:
        s = self.settings
        if store == "delta":
            return delta_keys(s.table_path(*GOLD_ALERTS), "alert_id", self.prefix)
        if store == "mongo":
            return mongo_ids(self.admin_db, "alerts", self.prefix)
        return es_ids(base_url(self.endpoints.es_nodes), index_name(s, "alerts"), self.prefix, "alert_id")

    def store_scores(self, store: str) -> list[str]:
        s = self.settings
        if store == "delta":
            return score_keys(s.table_path(*GOLD_SCORES), self.prefix)
        if store == "mongo":
            return mongo_ids(self.admin_db, "risk_scores", self.prefix)
        return es_ids(base_url(self.endpoints.es_nodes), index_name(s, "risk"), self.prefix, "doc_id")

    def converge(self, r: FaultResult, stores: tuple[str, ...] = STORES) -> None:
        """Wait until every store holds every alert raised until the fault ended."""
        left, t0 = set(stores), time.monotonic()
        while left and time.monotonic() - t0 < self.converge_limit_s:
            for st in sorted(left):
                if self.missing(st, r.end_ms) == 0:
                    r.converge_s[st] = round(time.monotonic() - t0, 1)
                    left.discard(st)
            if left:
                self.wait(2)  # supervising meanwhile: an application that exits is started again
        r.converge_s.update(dict.fromkeys(left))
        self.say(f"{r.name}: converged {r.converge_s}")

    def settle(self, feed: CrisisFeed) -> None:
        """After the feed stops: wait until every crisis sent has its alert on the topic."""
        t0 = time.monotonic()
        while self.log.patients() < set(feed.sent) and time.monotonic() - t0 < self.converge_limit_s:
            self.wait(2)

    def converge_scores(self, r: FaultResult, readings: int) -> None:
        """Wait until Delta holds every reading's score and MongoDB and Elasticsearch the same keys."""
        t0, left = time.monotonic(), {"delta", "mongo", "elasticsearch"}
        while left and time.monotonic() - t0 < self.converge_limit_s:
            try:
                delta = set(self.store_scores("delta"))
                done = {st for st in left if (len(delta) >= readings if st == "delta"
                                              else set(self.store_scores(st)) == delta)}
            except Exception:  # a store still coming back
                done = set()
            for st in done:
                r.converge_s[f"scores_{st}"] = round(time.monotonic() - t0, 1)
            left -= done
            if left:
                self.wait(2)
        r.converge_s.update({f"scores_{st}": None for st in left})
        self.say(f"{r.name}: scores converged {r.converge_s}")

    # -- faults ------------------------------------------------------------------------------
    def window(self, name: str, action: Callable[[], None], stores: tuple[str, ...] = STORES) -> FaultResult:
        r = FaultResult(name, start_ms=now_ms())
        if self.results:
            self.results[-1].next_ms = r.start_ms
        n0 = len(self.log.first)
        self.say(f"fault {name}: begins")
        action()
        r.end_ms = now_ms()
        r.alerts_during = len(self.log.first) - n0
        self.say(f"fault {name}: over after {(r.end_ms - r.start_ms) / 1000:.0f} s, {r.alerts_during} alerts meanwhile")
        self.results.append(r)
        self.converge(r, stores)
        return r

    def kill_server(self, name: str) -> None:
        pid = self.infra.read_state().get(name, {}).get("pid")
        if pid:
            import os

            os.killpg(pid, signal.SIGKILL) if _is_group(pid) else os.kill(pid, signal.SIGKILL)
        self.wait(self.outage_s)
        self.infra.up([name])

    def restart_kafka(self) -> None:
        self.infra.down(["kafka"])
        self.infra.up(["kafka"])

    def blackhole(self) -> None:
        self.receiver.blackholed.set()
        self.wait(self.outage_s)
        self.receiver.blackholed.clear()

    def kill_alert_app(self) -> None:
        for i in range(self.kills):
            # keeps supervising while it waits: the killed app is started again by check()
            ready = wait_until(lambda: (self.procs.check(), self.procs.reported("alerts")
                                                 and self._alerts_flowing())[1], 300, poll_s=1)
            pid = self.procs.kill("alerts")
            self.say(f"alert app SIGKILLed ({i + 1}/{self.kills}, pid {pid}, was ready: {ready})")
            self.wait(3)
        last_kill = now_ms()
        wait_until(lambda: (self.procs.check(), self.procs.reported("alerts"))[1], 300)
        # over once the restarted app has worked through its backlog: a reading sent after the last
        # kill has been alerted
        wait_until(lambda: (self.procs.check(), self._alerted_since(last_kill))[1], 300, poll_s=1)

    def warmed_up(self, alerts: int = 10, bound_s: float = 15.0) -> bool:
        """The last ``alerts`` alerts all came within ``bound_s`` of their reading: past the cold
        start (the scoring query's first batches load the model), so a fault's window measures
        the fault, not the warm-up."""
        last = sorted(list(self.log.first.values()), key=lambda a: a["alert_ms"])[-alerts:]
        return len(last) == alerts and max(a["alert_ms"] - a["event_ms"] for a in last) < bound_s * 1000

    def _alerted_since(self, event_ms: float) -> bool:
        return any(a["event_ms"] > event_ms for a in list(self.log.first.values()))

    def _alerts_flowing(self) -> bool:
        return bool(self.log.first) and now_ms() - max(a["alert_ms"] for a in self.log.first.values()) < 10_000

    def wait(self, seconds: float) -> None:
        """Sleep, keeping the application processes supervised."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.procs.check()
            time.sleep(min(1.0, max(end - time.monotonic(), 0)))


def _is_group(pid: int) -> bool:
    import os

    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def run_faults(run: Run, env: dict[str, str], *, only: tuple[str, ...] = ("a", "b", "c", "d", "e", "f")) -> dict:
    """The whole run (module doc); the per-fault rows and the final accounting."""
    s = run.settings
    run.procs = AppProcesses(s, ["alerts", "lake", "serving", "notifier"], overlay=True, env=env, say=run.say)
    run.log = AlertLog(run.endpoints.kafka("watch"), s.kafka.topics.alerts, run.prefix).start()
    feed = CrisisFeed(run.endpoints.kafka("device"), s.kafka.topics.observations, run.prefix)
    try:
        run.procs.start_all()
        if not wait_until(lambda: all(run.procs.reported(a) for a in ("alerts", "lake", "serving")), 600):
            raise RuntimeError(f"the applications did not start; logs in {run.procs.dir}")
        feed.start()
        run.wait(45)
        warm = wait_until(lambda: (run.procs.check(), run.warmed_up())[1], 180, poll_s=1)
        run.say(f"pipeline warm: {warm}")
        steps = {"a": ("a. Elasticsearch SIGKILL", lambda: run.kill_server("elasticsearch")),
                 "b": ("b. mongod SIGKILL", lambda: run.kill_server("mongo")),
                 "c": ("c. Kafka broker restart", run.restart_kafka)}
        for k in [k for k in steps if k in only]:
            run.window(*steps[k])
            run.wait(15)
        if "f" in only:
            run.procs.pause("lake")
            lake_stop = now_ms()
            run.say("fault f. lake app stopped")
        if "d" in only:
            run.window("d. webhook black-holed", run.blackhole, ("webhook",))
        kills = None
        if "e" in only:
            kills = run.window("e. alert app SIGKILL x3", run.kill_alert_app, ("webhook",))
        if "f" in only:
            def rest_of_lake_stop() -> None:
                run.wait(max(0.0, run.lake_stop_s - (now_ms() - lake_stop) / 1000))
                run.procs.resume("lake")

            r = run.window("f. lake app stopped", rest_of_lake_stop)
            r.start_ms = lake_stop  # the whole stop, d and e included (the rest alone may be seconds)
            r.alerts_during = sum(1 for a in list(run.log.first.values()) if lake_stop <= a["alert_ms"] <= r.end_ms)
            if kills is not None:  # the alert app's own outage, and its catch-up, are e's latency, not f's:
                # from a normal latency before the first kill (a reading still in the killed batch) to
                # a minute after the last restart (the backlog it works through)
                r.exclude = [(kills.start_ms - EXCLUDE_BEFORE_MS, kills.end_ms + EXCLUDE_AFTER_MS)]
        run.wait(10)
    finally:
        feed.stop()
    run.settle(feed)
    final = FaultResult("final", start_ms=now_ms(), end_ms=now_ms())
    run.converge(final)
    run.converge_scores(final, 2 * len(feed.sent))
    try:
        return {"faults": [r.row(run.log) for r in run.results], "final": account(run, feed), "settled": final.converge_s,
                "log_tails": {app: log_tail(c.log_file) for app, c in run.procs.children.items()}}
    finally:
        run.procs.stop()
        run.log.stop()
        run.receiver.close()


def log_tail(path: Any, lines: int = 25) -> list[str]:
    """The last ``lines`` lines of an application's log that are not librdkafka's connection
    noise (for a failing run's report: what the application said last)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln[:300] for ln in text if ln.strip() and not ln.startswith("%")][-lines:]


def account(run: Run, feed: CrisisFeed) -> dict[str, Any]:
    """What each store holds against what was sent and published."""
    alerts = set(run.log.first)
    out: dict[str, Any] = {
        "crises_sent": len(feed.sent), "send_failures": feed.failed[:5],
        "patients_alerted": len(run.log.patients() & set(feed.sent)),
        "alerts_on_topic": len(alerts), "topic_copies_max": max(run.log.copies.values(), default=0),
        "webhook_bad_signatures": run.receiver.bad_signatures,
        "webhook_not_once": sorted(a for a in alerts if run.log.first[a]["level"] in ("CRITICAL", "HIGH")
                                   and run.receiver.delivered.get(a) != 1)[:10],
    }
    topic_scores = None
    for st in ("delta", "mongo", "elasticsearch"):
        got_a, got_s = run.store_alerts(st), run.store_scores(st)
        out[st] = {"alerts": len(got_a), "alert_duplicates": len(got_a) - len(set(got_a)),
                   "alerts_missing": len(alerts - set(got_a)), "alerts_extra": len(set(got_a) - alerts),
                   "scores": len(got_s), "score_duplicates": len(got_s) - len(set(got_s))}
        topic_scores = topic_scores if topic_scores is not None else set(got_s)
        out[st]["scores_differ_from_delta"] = len(set(got_s) ^ topic_scores)
    return out
