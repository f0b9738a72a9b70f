"""What a fault-injection run watches the pipeline with: a crisis feed (a new patient in crisis
every few seconds, so every alert is expected), a log of the alert topic, a webhook receiver
that can be black-holed, and readers of the three stores' keys.

Real components only: the feed and the log are Kafka clients, the receiver is an HTTP server
on 127.0.0.1 that checks each request's signature (docs/notifications.md), and the stores are
read as people read them (delta-rs, pymongo, the Elasticsearch REST API)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vitalwatch.producers.fhir import blood_pressure, fhir_instant, stable_id


def now_ms() -> float:
    return time.time() * 1000


# -- the crisis feed ----------------------------------------------------------------------------
class CrisisFeed:
    """Every ``interval_s`` a new patient (``<prefix>00001``…): one normal blood pressure, then
    one in crisis (SBP 205 / DBP 125), both dated now. A first crisis always raises CRITICAL, so
    each patient must get exactly one alert; ``sent`` holds when each crisis was sent (ms)."""

    def __init__(self, access, topic: str, prefix: str, interval_s: float = 2.0) -> None:
        from vitalwatch.producers.kafka_out import producer

        self.topic, self.prefix, self.interval_s = topic, prefix, interval_s
        self.p = producer(access, **{"message.timeout.ms": 600_000})
        self.sent: dict[str, float] = {}
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crisis-feed", daemon=True)

    def start(self) -> CrisisFeed:
        self._thread.start()
        return self

    def _send(self, patient: str, resource: dict[str, Any]) -> None:
        def done(err, _msg) -> None:
            if err is not None:
                self.failed.append(f"{patient}: {err}")

        self.p.produce(self.topic, key=patient.encode(), value=json.dumps(resource).encode(), on_delivery=done)

    def _run(self) -> None:
        k = 0
        while not self._stop.wait(self.interval_s if k else 0):
            k += 1
            patient = f"{self.prefix}{k:05d}"
            t = datetime.now(UTC).replace(microsecond=0)
            self._send(patient, blood_pressure(patient, t - timedelta(seconds=30), 124, 78))
            crisis = blood_pressure(patient, t, 205, 125, obs_id=stable_id(patient, "crisis", fhir_instant(t)))
            self._send(patient, crisis)
            self.sent[patient] = now_ms()
            self.p.poll(0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        left = self.p.flush(120)
        if left:
            self.failed.append(f"{left} messages not delivered")


# -- the alert topic ----------------------------------------------------------------------------
class AlertLog:
    """Every record on the alert topic: the first server copy of each alert (with its reading's
    and its own Kafka time) and how many copies of each alert id the topic holds."""

    def __init__(self, access, topic: str, prefix: str) -> None:
        self.access, self.topic, self.prefix = access, topic, prefix
        self.first: dict[str, dict[str, Any]] = {}
        self.copies: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-log", daemon=True)

    def start(self) -> AlertLog:
        self._thread.start()
        return self

    def _run(self) -> None:
        import uuid

        from confluent_kafka import Consumer

        c = Consumer(self.access.conf(**{"group.id": f"vitalwatch-watch-faults-{uuid.uuid4().hex[:8]}",
                                         "auto.offset.reset": "earliest", "enable.auto.commit": False}))
        c.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                msg = c.poll(0.5)
                if msg is None or msg.error():
                    continue
                ev = json.loads(msg.value())
                if ev.get("source") != "server" or not str(ev.get("patient_id", "")).startswith(self.prefix):
                    continue
                self.copies[ev["alert_id"]] += 1
                if ev["alert_id"] not in self.first:
                    src = datetime.fromisoformat(str(ev["source_kafka_time"]).replace("Z", "+00:00"))
                    src = src if src.tzinfo else src.replace(tzinfo=UTC)
                    self.first[ev["alert_id"]] = {"patient_id": ev["patient_id"], "level": ev["level"],
                                                  "event_ms": src.timestamp() * 1000, "alert_ms": msg.timestamp()[1]}
        finally:
            c.close()

    def patients(self) -> set[str]:
        return {a["patient_id"] for a in self.first.values()}

    def latencies(self, since_ms: float, until_ms: float,
                  exclude: list[tuple[float, float]] | None = None) -> list[float]:
        """Event → alert seconds of the alerts whose reading reached Kafka in [since, until),
        leaving out readings in the ``exclude`` intervals (another fault's)."""
        def kept(t: float) -> bool:
            return since_ms <= t < until_ms and not any(a <= t < b for a, b in exclude or [])

        return sorted((a["alert_ms"] - a["event_ms"]) / 1000 for a in list(self.first.values()) if kept(a["event_ms"]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# -- the webhook receiver -----------------------------------------------------------------------
class Receiver:
    """A webhook receiver on 127.0.0.1: verifies the signature, answers 200 and records the
    alert id — or, black-holed, accepts the request and never answers (nothing recorded: the
    sender never learns it arrived, so it is not a delivery)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.delivered: dict[str, int] = defaultdict(int)
        self.bad_signatures = 0
        self.blackholed = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True).start()

    def _handler(self):
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if rx.blackholed.is_set():
                    while rx.blackholed.is_set():  # hold the connection, answer nothing
                        time.sleep(0.2)
                    self.close_connection = True
                    return
                ts = self.headers.get("X-Vitalwatch-Timestamp", "")
                want = "sha256=" + hmac.new(rx.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, self.headers.get("X-Vitalwatch-Signature", "")):
                    rx.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                rx.delivered[json.loads(body)["alert_id"]] += 1
                self.send_response(200)
                self.end_headers()

        return Handler

    def close(self) -> None:
        self.blackholed.clear()
        self.server.shutdown()


# -- the stores -------------------------------------------------------------------------------
def delta_keys(path: str, column: str, prefix: str = "") -> list[str]:
    """Every value of ``column`` (duplicates kept) of the rows of patients whose id starts with
    ``prefix`` in a Delta table, read with delta-rs (a shared broker's topics may hold other runs'
    patients, which a fresh lake reads from their start)."""
    from deltalake import DeltaTable

    try:
        t = DeltaTable(path).to_pyarrow_table(columns=[column, "patient_id"])
    except Exception:  # not created yet
        return []
    return [str(x) for x, p in zip(t.column(column).to_pylist(), t.column("patient_id").to_pylist(), strict=True)
            if str(p).startswith(prefix)]


def score_keys(path: str, prefix: str = "") -> list[str]:
    """``gold/risk_scores`` readings' keys (:func:`vitalwatch.pipeline.keys.score_key`) of the
    patients whose id starts with ``prefix``."""
    from deltalake import DeltaTable

    try:
        t = DeltaTable(path).to_pyarrow_table(columns=["patient_id", "observation_id", "score_status"])
    except Exception:
        return []
    return [json.dumps([p, o], separators=(",", ":")) for p, o, st in
            zip(*(t.column(c).to_pylist() for c in ("patient_id", "observation_id", "score_status")), strict=True)
            if o is not None and st != "untimely" and str(p).startswith(prefix)]


def mongo_ids(db, collection: str, prefix: str) -> list[str]:
    return [d["_id"] for d in db[collection].find({"patient_id": {"$regex": f"^{prefix}"}}, {"_id": 1})]


def es_ids(base: str, index: str, prefix: str, field: str) -> list[str]:
    """Ids of ``index``'s documents of the run's patients (a point-in-time-free scroll)."""
    import requests

    requests.post(f"{base}/{index}/_refresh", timeout=30)
    q = {"query": {"prefix": {"patient_id": prefix}}, "_source": [field], "size": 10_000}
    hits = requests.get(f"{base}/{index}/_search", json=q, timeout=30).json()["hits"]["hits"]
    return [h["_source"].get(field) or h["_id"] for h in hits]
