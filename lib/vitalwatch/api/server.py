"""Serving the API with uvicorn: the command line, and a background server for `vitalwatch
run`, the benchmark and the tests. HTTPS with the local CA's ``api`` certificate unless
``api.tls`` is off (or the files named by ``api.tls_cert_file``/``_key_file``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vitalwatch.config import Settings
from vitalwatch.infra import webapp

FACTORY = "vitalwatch.api.app:from_environment"


def tls_files(settings: Settings) -> tuple[Path, Path] | None:
    a = settings.api
    if not a.tls:
        return None
    if a.tls_cert_file and a.tls_key_file:
        return settings.path(a.tls_cert_file), settings.path(a.tls_key_file)
    from vitalwatch.infra.manager import InfraManager

    ca = InfraManager(settings).ensure_ca()
    return ca.path("api", "crt"), ca.path("api", "key")


def ca_file(settings: Settings) -> Path | None:
    """The CA a client checks the API's certificate with (None: plain HTTP)."""
    if not settings.api.tls:
        return None
    from vitalwatch.infra.manager import InfraManager

    return InfraManager(settings).ca().path("ca", "crt")


def url(settings: Settings, port: int | None = None) -> str:
    a = settings.api
    return f"{'https' if a.tls else 'http'}://{a.host}:{a.port if port is None else port}"


def command(settings: Settings, port: int | None = None) -> list[str]:
    a = settings.api
    tls = tls_files(settings)
    return [sys.executable, "-m", "uvicorn", FACTORY, "--factory", "--host", a.host,
            "--port", str(a.port if port is None else port), "--no-server-header",
            # the client's own address, never X-Forwarded-For (any local process could set it: the
            # sign-in throttle and the audit trail key on it); no access log (paths name patients:
            # who read what is in the audit trail)
            "--no-proxy-headers", "--no-access-log",
            *(["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])] if tls else [])]


def start(settings: Settings, port: int | None = None, env: dict[str, str] | None = None,
          log: Path | None = None, timeout_s: float = 60) -> subprocess.Popen:
    """Start the API in the background and wait until it serves its OpenAPI schema."""
    verify = str(ca_file(settings)) if settings.api.tls else True
    return webapp.start(command(settings, port), f"{url(settings, port)}/api/v1/openapi.json", name="API",
                        verify=verify, env=env, log=log, timeout_s=timeout_s)


stop = webapp.stop
