"""``vitalwatch mongo`` and ``vitalwatch kafka``: roles, users, ACLs, collections and topics."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vitalwatch.cli._console import console, settings
from vitalwatch.infra.endpoints import admin_mongo_uri

app = typer.Typer(help="MongoDB roles, users, collections and views (conf: mongo.security).", no_args_is_help=True)
kafka_app = typer.Typer(help="Kafka principals, ACLs and topics (conf: kafka.security, kafka.topics).",
                        no_args_is_help=True)


@app.command("init")
def mongo_init() -> None:
    """Create/update collections, indexes, the analysts' views, roles and users (idempotent).
    Connects as administrator: $VITALWATCH_MONGO_ADMIN_URI, else the local server's admin."""
    from vitalwatch.sinks import mongo

    s = settings()
    done = mongo.init(s, admin_mongo_uri(s))
    for k, v in done.items():
        console.log(f"{k}: {', '.join(v)}")


@app.command("script")
def mongo_script(out: Annotated[str | None, typer.Option(help="write to this file (default: stdout)")] = None) -> None:
    """Render the same roles and users as a mongosh script (docker/mongo/init-security.js)."""
    from pathlib import Path

    from vitalwatch.sinks.mongo import render_script

    text = render_script(settings())
    if out:
        Path(out).write_text(text)
        console.log(f"wrote {out}")
    else:
        sys.stdout.write(text)


@kafka_app.command("init")
def kafka_init() -> None:
    """Create/update the SCRAM users of kafka.security.acls (each role's password from
    $VITALWATCH_KAFKA_<ROLE>_PASSWORD or kafka.security.password_dir), sync their ACLs and
    create the topics (idempotent). Signs in as admin; `infra up` does this for the local broker."""
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.kafka import provision
    from vitalwatch.infra.kafka_acls import ensure_principals, principals

    s = settings()
    ep = resolve(s, ("kafka",))
    sec = s.kafka.security
    roles = principals(s)
    ensure_principals(ep.kafka("admin"), s, {r: ep.kafka(r).password for r in roles})
    provision(ep.kafka("admin"), s)
    console.log(f"kafka: users {', '.join(roles)} ({sec.mechanism}), their ACLs and topics "
                f"{', '.join(s.kafka.topics.model_dump().values())} are in place")


@kafka_app.command("acls")
def kafka_acls() -> None:
    """List what each principal is granted (from conf/, as `kafka init` applies it)."""
    from vitalwatch.infra.kafka_acls import acl_bindings

    for b in acl_bindings(settings()):
        console.print(f"{b.principal:15} {b.operation.name:6} {b.restype.name.lower():6} "
                      f"{b.name}{'*' if b.resource_pattern_type.name == 'PREFIXED' else ''}")
