"""Serving the Streamlit app: the command line, a background server for `vitalwatch run` and
the tests, and the local demo user."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vitalwatch.config import Settings, project_root
from vitalwatch.infra import webapp


def app_path() -> Path:
    return project_root() / "dashboards" / "app.py"


def tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """(certificate, key) Streamlit serves HTTPS with — ``dashboard.tls_cert_file``/``_key_file``,
    else the local CA's ``dashboard`` certificate — or None when ``dashboard.tls`` is off."""
    d = settings.dashboard
    if not d.tls:
        return None
    if d.tls_cert_file and d.tls_key_file:
        return Path(d.tls_cert_file), Path(d.tls_key_file)
    from vitalwatch.infra.manager import InfraManager

    ca = InfraManager(settings).ca()
    ca.ensure()
    return ca.path("dashboard", "crt"), ca.path("dashboard", "key")


def ca_file(settings: Settings) -> Path | None:
    """The CA a client checks the dashboard's certificate with (None: plain HTTP)."""
    if not settings.dashboard.tls:
        return None
    from vitalwatch.infra.manager import InfraManager

    return InfraManager(settings).ca().path("ca", "crt")


def command(settings: Settings, port: int | None = None) -> list[str]:
    d = settings.dashboard
    tls = tls_files(settings)
    return [sys.executable, "-m", "streamlit", "run", str(app_path()),
            "--server.address", d.host, "--server.port", str(d.port if port is None else port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
            *(["--server.sslCertFile", str(tls[0]), "--server.sslKeyFile", str(tls[1])] if tls else [])]


def url(settings: Settings, port: int | None = None) -> str:
    scheme = "https" if settings.dashboard.tls else "http"
    return f"{scheme}://{settings.dashboard.host}:{settings.dashboard.port if port is None else port}"


def start(settings: Settings, port: int | None = None, env: dict[str, str] | None = None,
          log: Path | None = None, timeout_s: float = 60) -> subprocess.Popen:
    """Start the app in the background and wait until it answers its health check."""
    return webapp.start(command(settings, port), f"{url(settings, port)}/_stcore/health", name="dashboard",
                        verify=str(ca_file(settings)) if settings.dashboard.tls else True,
                        env=env, log=log, timeout_s=timeout_s)


stop = webapp.stop


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    file: Path
    created: bool  # now: the only time its password is printed


def ensure_demo_user(settings: Settings, admin_db) -> DemoUser | None:
    """Local profile only: when nobody can log in yet, create ``dashboard.local_demo_user``
    (clinician) with a generated password, kept 0600 beside the local MongoDB secrets.
    Returns it when it was created now or already exists with that file."""
    import secrets

    from vitalwatch.dashboard import auth

    name = settings.dashboard.local_demo_user
    if settings.profile != "local" or not name:
        return None
    f = settings.path(settings.infra.work_dir) / "dashboard" / f"{name}.secret"
    if admin_db[auth.USERS].count_documents({}, limit=1) and not f.exists():
        return None  # real users exist: no demo account next to them
    if f.exists() and admin_db[auth.USERS].count_documents({"_id": name}, limit=1):
        return DemoUser(name, f.read_text().strip(), f, created=False)
    pw = secrets.token_urlsafe(15)
    auth.create_user(admin_db, settings, name, pw, "clinician", "Demo clinician", replace=True)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.unlink(missing_ok=True)
    f.touch(mode=0o600)
    f.write_text(pw)
    return DemoUser(name, pw, f, created=True)
