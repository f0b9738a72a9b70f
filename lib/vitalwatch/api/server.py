"""Serving the API with uvicorn: the command line, and a background server for `vitalwatch
run`, the benchmark and the tests. HTTPS with the local CA's ``api`` certificate unless
``api.tls`` is off (or the files named by ``api.tls_cert_file``/``_key_file``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vitalwatch.config import Settings, project_root

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
            "--port", str(a.port if port is None else port), "--no-server-header", "--proxy-headers",
            "--forwarded-allow-ips", "127.0.0.1",
            *(["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])] if tls else [])]


def start(settings: Settings, port: int | None = None, env: dict[str, str] | None = None,
          log: Path | None = None, timeout_s: float = 60) -> subprocess.Popen:
    """Start the API in the background and wait until it serves its OpenAPI schema."""
    import httpx

    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen(command(settings, port), env={**os.environ, **(env or {})}, stdout=out,
                            stderr=subprocess.STDOUT, cwd=project_root(), start_new_session=True)
    probe = f"{url(settings, port)}/api/v1/openapi.json"
    verify = str(ca_file(settings)) if settings.api.tls else True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            if httpx.get(probe, timeout=2, verify=verify).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise TimeoutError(f"the API did not answer {probe} within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
