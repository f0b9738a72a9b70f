"""``vitalwatch dashboard`` and ``api``: the clinicians' Streamlit app and the REST/FHIR API, in
the foreground, or in the background for ``vitalwatch run``."""

from __future__ import annotations

from typing import Annotated

import typer

from vitalwatch.cli._common import admin_db, mongo_init
from vitalwatch.cli._console import console, settings


def dashboard(
    port: Annotated[int | None, typer.Option(help="port (default: conf dashboard.port)")] = None,
) -> None:
    """Serve the clinicians' Streamlit dashboard (ward overview, patient, alert inbox, model,
    pipeline health) on dashboard.host:port until Ctrl-C. Needs the local servers (or a
    cluster's endpoints) and `vitalwatch mongo init`; create users with `vitalwatch users create`."""
    import subprocess

    from vitalwatch.dashboard.launch import command, url

    s = settings()
    mongo_init(s)
    console.log(f"dashboard on {url(s, port)} (Ctrl-C stops)")
    try:
        raise typer.Exit(subprocess.call(command(s, port)))
    except KeyboardInterrupt:
        pass


def api(
    port: Annotated[int | None, typer.Option(help="port (default: conf api.port)")] = None,
) -> None:
    """Serve the REST and FHIR API (/api/v1, /fhir; OpenAPI at /api/v1/openapi.json, docs at
    /api/v1/docs) with uvicorn on api.host:port until Ctrl-C: the dashboard's users and roles,
    bearer tokens from POST /api/v1/token. Needs the local servers and `vitalwatch mongo init`."""
    import os

    from vitalwatch.api.server import ca_file, command, url

    s = settings()
    mongo_init(s)
    trust = "" if s.api.tls_cert_file or not s.api.tls else f" (TLS: trust {ca_file(s)})"
    console.log(f"API on {url(s, port)}/api/v1/docs{trust} (Ctrl-C stops)")
    cmd = command(s, port)
    os.execv(cmd[0], cmd)  # uvicorn takes this process: a container's stop signal reaches it


def start_dashboard(s):
    """The dashboard in the background, with the local demo user when nobody can log in yet."""
    from vitalwatch.dashboard.launch import ensure_demo_user, start, url

    demo = ensure_demo_user(s, admin_db(s))
    log = s.path(s.infra.work_dir) / "dashboard" / "streamlit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = start(s, log=log)
    except (RuntimeError, TimeoutError) as e:  # the pipeline runs without it
        console.print(f"[yellow]dashboard not started:[/yellow] {e}")
        return None
    who = ("; sign in with a `vitalwatch users create` account" if demo is None
           else f"; created demo user {demo.username}, password {demo.password} (shown this once; also in {demo.file})"
           if demo.created else f"; demo user {demo.username} (its password: {demo.file})")
    console.log(f"dashboard: {url(s)}{who} (log: {log})")
    return proc


def start_api(s):
    """The REST/FHIR API in the background (the pipeline runs without it if it fails)."""
    from vitalwatch.api.server import ca_file, start, url

    log = s.path(s.infra.work_dir) / "api" / "uvicorn.log"
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        proc = start(s, log=log)
    except (RuntimeError, TimeoutError) as e:
        console.print(f"[yellow]API not started:[/yellow] {e}")
        return None
    ca = ca_file(s)
    console.log(f"API: {url(s)}/api/v1/docs (the dashboard's users; POST /api/v1/token"
                + (f"; curl --cacert {ca}" if ca else "") + f"; log: {log})")
    return proc


def stop_background(board, api_proc) -> None:
    """Stop what :func:`start_dashboard` and :func:`start_api` started (either may be None)."""
    from vitalwatch.api.server import stop as stop_api
    from vitalwatch.dashboard.launch import stop as stop_dashboard

    for proc, stop_it in ((board, stop_dashboard), (api_proc, stop_api)):
        if proc is not None:
            stop_it(proc)
