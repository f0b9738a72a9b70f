"""``vitalwatch alerts``: follow alerts live, acknowledge them as a signed-in user."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vitalwatch.cli._common import read_password
from vitalwatch.cli._console import console, fail, settings

app = typer.Typer(help="Alerts: follow them live, acknowledge them.", no_args_is_help=True)


@app.command("watch")
def alerts_watch(
    ward: Annotated[str | None, typer.Option(help="only this ward's alerts")] = None,
    caregiver: Annotated[str | None, typer.Option(help="only alerts routed to this caregiver id")] = None,
    from_beginning: Annotated[bool, typer.Option(help="replay the topic from the start")] = False,
    idle_exit: Annotated[float, typer.Option(help="exit after S seconds without a message (0: never)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON event per line")] = False,
) -> None:
    """Follow alerts live from the alerts topic, each alert once (by alert_id)."""
    import json

    from vitalwatch.alerts.feed import AlertFilter, describe, follow
    from vitalwatch.infra.endpoints import resolve

    s = settings()
    ep = resolve(s, ("kafka",))
    console.log(f"following {s.kafka.topics.alerts}" + (f" for ward {ward}" if ward else "")
                + (f" for caregiver {caregiver}" if caregiver else "") + "; Ctrl-C stops")
    try:
        for ev in follow(ep.kafka("watch"), s.kafka.topics.alerts, keep=AlertFilter(ward, caregiver),
                         from_beginning=from_beginning, idle_timeout_s=idle_exit or None):
            sys.stdout.write((json.dumps(ev, default=str) if as_json else describe(ev)) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="the alert to acknowledge")],
    user: Annotated[str, typer.Option(help="your dashboard username (a role that may acknowledge)")],
    note: Annotated[str, typer.Option(help="a note kept with the acknowledgement")] = "",
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
) -> None:
    """Acknowledge an alert as a signed-in dashboard user: the password is checked (throttled,
    audited) like the dashboard's sign-in, and the acknowledgement records that user and role,
    written through the dashboard's own MongoDB account."""
    import pymongo

    from vitalwatch.dashboard import auth
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.sinks import mongo

    s = settings()
    pw = read_password(password_stdin)
    server = resolve(s, ("mongo",)).mongo_uri or ""
    acct = s.dashboard.mongo_user
    db = pymongo.MongoClient(mongo.user_uri(server, acct, mongo.user_password(s, acct), s.mongo.database),
                             serverSelectionTimeoutMS=5000)[s.mongo.database]
    signed, out = auth.sign_in(db, s, user, pw, source="cli")
    if signed is None:
        fail(f"too many failed sign-ins; try again in {out.retry_after_s:.0f} s"
             if out.reason == "throttled" else "invalid username or password")
    if not auth.allowed(s, signed.role, "acknowledge"):
        fail(f"role {signed.role} may not acknowledge alerts")
    try:
        first = mongo.acknowledge(db, alert_id, signed.username, note, role=signed.role, source="cli")
    except KeyError:
        fail(f"no alert {alert_id!r}")
    console.log("acknowledged" if first else "already acknowledged")
