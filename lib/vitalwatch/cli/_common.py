"""Steps several command groups share: the servers' and applications' status tables, the
administrator's MongoDB URI and set-up, the Kafka topics, best-effort set-up, the options a
user gave, a password from the prompt or standard input."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.table import Table

from vitalwatch.cli._console import console, print_out


def table(title: str | None, head: tuple[str, ...], rows) -> Table:
    """A table of ``head`` columns and ``rows`` (each a tuple of strings)."""
    t = Table(*head, title=title)
    for r in rows:
        t.add_row(*r)
    return t


def print_app_health(s) -> None:
    """Each pipeline application's stages, yellow when degraded or not running."""
    from vitalwatch.pipeline.health import lines

    for line in lines(s) or ["no pipeline application has run here"]:
        colour = "yellow" if "degraded" in line or "not running" in line else "green"
        print_out(f"[{colour}]{line}[/{colour}]")


def print_status(mgr: Any) -> bool:
    """The local servers as a table; True when every one is healthy."""
    t = Table("server", "state", "pid", "endpoint", "what it is", "log")
    ok = True
    for s in mgr.status():
        state = "[green]healthy[/green]" if s.healthy else ("[yellow]unhealthy[/yellow]" if s.running else "[red]down[/red]")
        ok &= s.healthy
        t.add_row(s.name, state, str(s.pid or ""), s.endpoint or "", s.server or "", s.log or "")
    print_out(t)
    return ok


def admin_db(s):
    """The vitalwatch database as administrator (users, the registry, the demo user)."""
    import pymongo

    from vitalwatch.infra.endpoints import admin_mongo_uri

    return pymongo.MongoClient(admin_mongo_uri(s), serverSelectionTimeoutMS=5000)[s.mongo.database]


def mongo_init(s) -> dict:
    """Apply roles/users on the local server (a cluster's are applied by its administrator)."""
    from vitalwatch.infra.endpoints import MONGO_ADMIN_URI_ENV, admin_mongo_uri
    from vitalwatch.sinks import mongo

    if s.mongo.uri and not os.environ.get(MONGO_ADMIN_URI_ENV):
        return {}
    return mongo.init(s, admin_mongo_uri(s))


def best_effort(what: str, fn: Callable[[], Any]) -> None:
    """A set-up step that must not stop an application when a server is down (the stages that
    need it fail, are reported degraded and retried)."""
    try:
        fn()
    except Exception as e:
        console.log(f"[yellow]{what} not set up now ({str(e).splitlines()[0][:200]}); the stages retry[/yellow]")


def ensure_topics(s, ep) -> None:
    """The configured topics exist and their principals may use them (the broker does not
    auto-create; idempotent). Needs the Kafka admin password, which only operators hold: an
    application without it leaves this to ``vitalwatch kafka init`` / ``infra up``."""
    from vitalwatch.infra.kafka import provision
    from vitalwatch.infra.kafka_access import password_env
    from vitalwatch.infra.process import InfraError

    try:
        admin = ep.kafka("admin")
    except InfraError:  # an application's environment: kafka init / infra up provisioned already
        console.log(f"Kafka topics and ACLs: left to `vitalwatch kafka init` (no ${password_env('admin')} here)")
        return
    provision(admin, s)


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave: those left at None keep the settings' value."""
    return {k: v for k, v in options.items() if v is not None}


def read_password(from_stdin: bool, confirm: bool = False) -> str:
    """A password from standard input's first line (``--password-stdin``), else asked for
    without echo (twice with ``confirm``)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=confirm)
