"""The REST API under a real HTTP client: p50/p95/p99 of ``GET /api/v1/patients`` over a ward of
many patients, and of one patient's ``GET /api/v1/patients/{id}/observations`` (the default
window, ``api.default_hours``), as a signed-in clinician.

The ward is :func:`vitalwatch.bench.ward.build` (real Delta tables and MongoDB) in a lake and a
database of the run's own; the API is the uvicorn subprocess of ``vitalwatch api``
(:mod:`vitalwatch.api.server`, HTTPS with the local CA unless ``api.tls`` is off) pointed at
them through the environment, and the client is one ``httpx.Client`` (one kept-alive TLS
connection) sending requests one at a time. Each endpoint's first request after start-up (the
cold read of its tables) is reported apart and then warm-up requests are sent, so the timed
requests are the steady state: the API's caches re-check a table's Delta log and re-read the
registry every ``api.cache_seconds``, and that cost is part of what is timed."""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitalwatch.config import Settings

USER = "bench-api"
ROLE = "clinician"


@dataclass
class EndpointTiming:
    endpoint: str           # the path as requested, the patient id replaced by {id}
    requests: int           # timed requests (after warm-up)
    cold_ms: float          # the first request after the API started
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    items: int              # items in one page
    total: int              # items the query matched (all pages)
    bytes: int              # one response body


@dataclass
class ApiRun:
    patients: int
    featured_hours: float   # the featured patients' history of silver vitals
    build_s: float          # the ward into Delta and MongoDB
    start_s: float          # the API process until it served its OpenAPI schema
    warmup: int             # untimed requests per endpoint before the timed ones
    tls: bool
    endpoints: list[EndpointTiming] = field(default_factory=list)
    load_avg: list[float] = field(default_factory=list)  # the machine's 1-minute load before and after timing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fresh(settings: Settings, work: Path, tag: str | None = None) -> Settings:
    """Settings with a lake, checkpoints and MongoDB database of the run's own (under ``work``)."""
    tag = tag or secrets.token_hex(4)
    return settings.with_updates(
        lake={"root": str(work / "lake"), "checkpoint_root": str(work / "chk")},
        mongo={"database": f"bench_api_{tag}"},
        dashboard={"bcrypt_rounds": 4},  # sign-in is not timed
    )


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def measure(spark, s: Settings, admin_uri: str, patients: int, requests: int, *, warmup: int | None = None,
            log: Path | None = None, stop_spark: bool = False, progress=None) -> ApiRun:
    """Build a ward of ``patients`` in ``s``'s lake and database (both the caller's fresh ones:
    see :func:`fresh`), start the API on them, and time ``requests`` of each endpoint. The API is
    stopped and the database (with its users and roles) dropped whatever happens. ``stop_spark``:
    stop the session once the ward is written, so its JVM is not on the machine while timing."""
    import pymongo

    from vitalwatch.api import server
    from vitalwatch.bench.ward import build
    from vitalwatch.dashboard import auth
    from vitalwatch.sinks import mongo

    say = progress or (lambda _m: None)
    warmup = max(5, requests // 10) if warmup is None else warmup
    hours = s.api.default_hours * 0.98  # the history lies inside the default window all run long
    client = pymongo.MongoClient(admin_uri, serverSelectionTimeoutMS=5000)
    proc = None
    try:
        say(f"api: MongoDB database {s.mongo.database}")
        mongo.init(s, admin_uri)
        admin = client[s.mongo.database]
        say(f"api: a ward of {patients:,} patients ({hours:.1f} h of vitals for the featured ones)")
        t0 = time.monotonic()
        ward = build(spark, s, admin, patients, hours=hours)
        build_s = time.monotonic() - t0
        if stop_spark:
            spark.stop()
        password = secrets.token_urlsafe(18)
        auth.create_user(admin, s, USER, password, ROLE, "API benchmark", replace=True)
        port = free_port(s.api.host)
        env = {"VITALWATCH__LAKE__ROOT": str(s.path(s.lake.root)),
               "VITALWATCH__LAKE__CHECKPOINT_ROOT": str(s.path(s.lake.checkpoint_root)),
               "VITALWATCH__MONGO__DATABASE": s.mongo.database,
               "VITALWATCH__INFRA__WORK_DIR": str(s.path(s.infra.work_dir)),
               "VITALWATCH__DASHBOARD__BCRYPT_ROUNDS": str(s.dashboard.bcrypt_rounds),
               "VITALWATCH__API__PORT": str(port)}
        say(f"api: starting the API on port {port}" + (f" (log: {log})" if log else ""))
        t0 = time.monotonic()
        proc = server.start(s, port=port, env=env, log=log, timeout_s=120)
        start_s = time.monotonic() - t0
        ca = server.ca_file(s)
        run = ApiRun(patients, round(hours, 2), round(build_s, 1), round(start_s, 1), warmup, s.api.tls)
        featured = ward.featured[0]
        run.load_avg.append(os.getloadavg()[0])
        with _client(s, port, ca) as http:
            r = http.post("/api/v1/token", data={"username": USER, "password": password})
            _ok(r)
            http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            for path, name in (("/api/v1/patients", "GET /api/v1/patients"),
                               (f"/api/v1/patients/{featured}/observations",
                                "GET /api/v1/patients/{id}/observations")):
                say(f"api: {name}: cold, {warmup} warm-up, {requests} timed")
                run.endpoints.append(_time(http, path, name, requests, warmup))
        run.load_avg.append(os.getloadavg()[0])
        first = run.endpoints[0]
        if first.total != patients:
            raise AssertionError(f"GET /api/v1/patients counted {first.total} patients, not {patients}")
        return run
    finally:
        if proc is not None:
            server.stop(proc)
        try:
            db = client[s.mongo.database]
            db.command("dropAllUsersFromDatabase")
            db.command("dropAllRolesFromDatabase")
            client.drop_database(s.mongo.database)
        finally:
            client.close()


def _client(s: Settings, port: int, ca: Path | None):
    import httpx

    from vitalwatch.api import server

    return httpx.Client(base_url=server.url(s, port), verify=str(ca) if ca else True, timeout=60)


def _ok(r) -> None:
    if r.status_code != 200:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:500]}")


def _time(http, path: str, name: str, requests: int, warmup: int) -> EndpointTiming:
    t0 = time.perf_counter()
    r = http.get(path)
    cold = time.perf_counter() - t0
    _ok(r)
    for _ in range(warmup):
        _ok(http.get(path))
    seconds = []
    for _ in range(requests):
        t0 = time.perf_counter()
        r = http.get(path)
        seconds.append(time.perf_counter() - t0)
        _ok(r)
    body = r.json()
    if not body["items"]:
        raise AssertionError(f"{name} answered no items")
    return EndpointTiming(name, requests, round(cold * 1000, 1),
                          **{k: round(v, 2) for k, v in percentiles_ms(seconds).items()},
                          items=len(body["items"]), total=int(body["total"]), bytes=len(r.content))
