"""``vitalwatch infra up|down|status``: the local servers as one unit.

Idempotent: ``up`` leaves healthy servers alone, restarts dead ones on their previous ports
(data kept), and records endpoints in ``<work_dir>/state.json`` (mode 0600: it holds the
mongod admin URI). Jobs on the local profile read their endpoints from that file."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vitalwatch.config import Settings
from vitalwatch.infra.elasticsearch import ElasticsearchServer
from vitalwatch.infra.kafka import KafkaServer
from vitalwatch.infra.mongo import MongoServer
from vitalwatch.infra.process import InfraError, pid_alive, stop_pid, write_private
from vitalwatch.infra.tls import Identity, LocalCA

SERVER_NAMES = ("kafka", "mongo", "elasticsearch")


class Server(Protocol):
    name: str
    log_file: Path

    def prepare(self) -> None: ...
    def start(self, prev: dict[str, Any]) -> dict[str, Any]: ...
    def healthy(self, state: dict[str, Any]) -> bool: ...


@dataclass(frozen=True)
class ServerStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    endpoint: str | None
    server: str | None
    log: str | None


class InfraManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.work = settings.path(settings.infra.work_dir)
        self.state_file = self.work / "state.json"
        self.servers: dict[str, Server] = {
            "kafka": KafkaServer(settings, self.work),
            "mongo": MongoServer(settings, self.work),
            "elasticsearch": ElasticsearchServer(settings, self.work),
        }

    # -- state --------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict[str, Any]) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        write_private(self.state_file, json.dumps(state, indent=2))

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.work.mkdir(parents=True, exist_ok=True)
        with open(self.work / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _names(self, only: list[str] | None) -> list[str]:
        names = only or list(SERVER_NAMES)
        unknown = set(names) - set(SERVER_NAMES)
        if unknown:
            raise InfraError(f"unknown server(s) {sorted(unknown)}; known: {', '.join(SERVER_NAMES)}")
        return names

    # -- commands -----------------------------------------------------------------------
    def up(self, only: list[str] | None = None, progress: Any = None) -> dict[str, Any]:
        """Start what is not running and healthy; return the state."""
        with self._lock():
            state = self.read_state()
            ca = self.ca()
            if ca.ensure():
                _say(progress, f"tls: certificate authority and certificates written under {ca.root}")
            for name in self._names(only):
                srv = self.servers[name]
                prev = state.get(name, {})
                if pid_alive(prev.get("pid")) and _safe_healthy(srv, prev):
                    _say(progress, f"{name}: already running (pid {prev['pid']})")
                    continue
                if pid_alive(prev.get("pid")):
                    _say(progress, f"{name}: running but unhealthy; restarting")
                    stop_pid(prev["pid"])
                _say(progress, f"{name}: fetching artifacts (cached after the first time)")
                srv.prepare()
                _say(progress, f"{name}: starting")
                state[name] = srv.start(prev)
                self._write_state(state)
                _say(progress, f"{name}: healthy at {state[name].get('endpoint')}")
            if "elasticsearch" in self._names(only) and state.get("elasticsearch", {}).get("nodes"):
                search_init(self.settings, state["elasticsearch"]["nodes"], progress)
            return state

    def ca(self) -> LocalCA:
        """The local certificate authority (``infra.tls``) under ``<work_dir>/tls``."""
        t = self.settings.infra.tls
        # each server certificate also names the server itself: its host name in docker/compose.yaml
        ids = [Identity(n, server=True, hosts=tuple(dict.fromkeys([*t.hosts, n]))) for n in t.servers]
        ids += [Identity(n, server=False) for n in t.clients]
        return LocalCA(self.work / "tls", ids, ca_days=t.ca_days, cert_days=t.cert_days,
                       renew_before_days=t.renew_before_days)

    def ensure_ca(self) -> LocalCA:
        """The local CA and certificates, created or renewed now if needed (under the lock
        ``up`` holds): for a client that starts before ``infra up`` (a Spark session)."""
        with self._lock():
            ca = self.ca()
            ca.ensure()
            return ca

    def down(self, only: list[str] | None = None, progress: Any = None) -> None:
        with self._lock():
            state = self.read_state()
            # Stop in reverse dependency order: sinks first, the broker last.
            for name in reversed(self._names(only)):
                pid = state.get(name, {}).get("pid")
                stopped = stop_pid(pid, grace_s=45)
                _say(progress, f"{name}: {'stopped' if stopped else 'not running'}")
                if name in state:
                    state[name]["pid"] = None
            self._write_state(state)

    def status(self) -> list[ServerStatus]:
        state = self.read_state()
        out = []
        for name in SERVER_NAMES:
            st = state.get(name, {})
            running = pid_alive(st.get("pid"))
            healthy = running and _safe_healthy(self.servers[name], st)
            out.append(ServerStatus(name, running, healthy, st.get("pid") if running else None,
                                    st.get("endpoint"), st.get("server"), st.get("log")))
        return out


def _safe_healthy(srv: Server, st: dict[str, Any]) -> bool:
    try:
        return bool(srv.healthy(st))
    except Exception:
        return False


def _say(progress: Any, msg: str) -> None:
    if progress is not None:
        progress(msg)


def search_init(settings: Settings, nodes: str, progress: Any = None, attempts: int = 10,
                wait_s: float = 3.0) -> list[str]:
    """Index templates and indices (``vitalwatch search init``), retried: installed here and
    not by the pipeline, so no application makes a network call at start-up that could take it
    down (idempotent: a template is replaced by itself, an existing index kept)."""
    import time

    import requests

    from vitalwatch.sinks.search import apply_templates

    for attempt in range(1, attempts + 1):
        try:
            done = apply_templates(settings, nodes)
        except requests.RequestException as e:
            if attempt == attempts:
                raise InfraError(f"elasticsearch: index templates not installed after {attempts} tries: {e}") from e
            _say(progress, f"elasticsearch: templates not installed yet ({str(e).splitlines()[0][:120]}); retrying")
            time.sleep(wait_s)
        else:
            _say(progress, f"elasticsearch: templates and indices {', '.join(done)}")
            return done
    return []
