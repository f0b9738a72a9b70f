"""``vitalwatch infra``: the local servers (Kafka, mongod, Elasticsearch) and their certificates."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vitalwatch.cli._common import print_app_health, print_status
from vitalwatch.cli._console import console, print_out, progress, settings

app = typer.Typer(help="Local servers on 127.0.0.1: Kafka (KRaft), mongod --auth, Elasticsearch.",
                  no_args_is_help=True)

Servers = Annotated[list[str] | None, typer.Argument(help="kafka, mongo, elasticsearch (default: all)")]


@app.command("up")
def infra_up(servers: Servers = None) -> None:
    """Start the local servers (idempotent, health-checked); print their endpoints."""
    from vitalwatch.infra.manager import InfraManager

    mgr = InfraManager(settings())
    with progress("starting local infrastructure") as say:
        mgr.up(servers, progress=say)
    print_status(mgr)


@app.command("certs")
def infra_certs(
    rotate: Annotated[bool, typer.Option(help="renew every server and client certificate now")] = False,
    ca: Annotated[bool, typer.Option(help="with --rotate: renew the certificate authority too")] = False,
) -> None:
    """The local certificate authority under <infra.work_dir>/tls: create what is missing or
    expiring (as `infra up` does), or with --rotate renew the set atomically; print each
    certificate's expiry. Restart the servers (`infra down`, `infra up`) to load renewed ones."""
    from vitalwatch.infra.manager import InfraManager

    local_ca = InfraManager(settings()).ca()
    if rotate:
        console.log(f"new certificates in {local_ca.rotate(renew_ca=ca)}")
    elif local_ca.ensure():
        console.log(f"certificates written under {local_ca.root}")
    t = Table("certificate", "valid until", "files")
    for name, until in local_ca.expiry().items():
        t.add_row(name, until, f"{local_ca.root}/{name}.{{crt,key}}")
    print_out(t, width=160)


@app.command("fetch")
def infra_fetch(spark: Annotated[bool, typer.Option(help="also resolve the Spark connectors")] = True,
                compose: Annotated[bool, typer.Option(help="also build docker compose (Go module proxy) if the "
                                                           "docker client has none, to validate docker/")] = False) -> None:
    """Download everything the servers and Spark need (Maven Central), without starting anything."""
    from vitalwatch.infra.manager import InfraManager

    s = settings()
    mgr = InfraManager(s)
    for name, srv in mgr.servers.items():
        with console.status(f"{name}: fetching"):
            srv.prepare()
        console.log(f"{name}: artifacts ready")
    if spark:
        from vitalwatch.spark import build_session

        with console.status("resolving Spark connectors from Maven Central"):
            build_session(s, app_name="vitalwatch-fetch", master="local[1]").stop()
        console.log("Spark connectors ready")
    if compose:
        from vitalwatch.infra.artifacts import compose_command

        with console.status(f"docker compose: the docker client's, or {s.infra.compose_version} built with Go (once)"):
            cmd = compose_command(s, build=True)
        console.log(f"docker compose ready: {' '.join(cmd)}")


@app.command("down")
def infra_down(servers: Servers = None) -> None:
    """Stop the local servers (SIGTERM, then SIGKILL after a grace period); data is kept."""
    from vitalwatch.infra.manager import InfraManager

    InfraManager(settings()).down(servers, progress=console.log)


@app.command("status")
def infra_status() -> None:
    """Show each server: running, healthy, endpoint, what it is, its log; then each pipeline
    application's stages ("degraded: <stage> failing since …"). Exit 1 if any server is down."""
    from vitalwatch.infra.manager import InfraManager

    s = settings()
    ok = print_status(InfraManager(s))
    print_app_health(s)
    if not ok:
        raise typer.Exit(1)
