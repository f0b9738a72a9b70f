"""The ``vitalwatch`` command: operational commands for the local stack and the jobs.

Every sub-command has ``--help``. Long-running ones show progress with rich."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalwatch.config import get_settings

console = Console(stderr=True)
app = typer.Typer(help="vitalwatch: real-time patient monitoring on Apache Spark.",
                  no_args_is_help=True, add_completion=False)
infra_app = typer.Typer(help="Local servers on 127.0.0.1: Kafka (KRaft), mongod --auth, Elasticsearch.",
                        no_args_is_help=True)
app.add_typer(infra_app, name="infra")

Servers = Annotated[list[str] | None, typer.Argument(help="kafka, mongo, elasticsearch (default: all)")]


@infra_app.command("up")
def infra_up(servers: Servers = None) -> None:
    """Start the local servers (idempotent, health-checked); print their endpoints."""
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.infra.process import InfraError

    mgr = InfraManager(get_settings())
    try:
        with console.status("starting local infrastructure") as st:
            mgr.up(servers, progress=lambda m: (st.update(m), console.log(m)))
    except InfraError as e:
        console.print(f"[red]infra up failed:[/red] {e}")
        raise typer.Exit(1) from e
    _print_status(mgr)


@infra_app.command("down")
def infra_down(servers: Servers = None) -> None:
    """Stop the local servers (SIGTERM, then SIGKILL after a grace period); data is kept."""
    from vitalwatch.infra.manager import InfraManager

    InfraManager(get_settings()).down(servers, progress=console.log)


@infra_app.command("status")
def infra_status() -> None:
    """Show each server: running, healthy, endpoint, what it is, its log. Exit 1 if any is down."""
    from vitalwatch.infra.manager import InfraManager

    if not _print_status(InfraManager(get_settings())):
        raise typer.Exit(1)


def _print_status(mgr: object) -> bool:
    t = Table("server", "state", "pid", "endpoint", "what it is", "log")
    ok = True
    for s in mgr.status():  # type: ignore[attr-defined]
        state = "[green]healthy[/green]" if s.healthy else ("[yellow]unhealthy[/yellow]" if s.running else "[red]down[/red]")
        ok &= s.healthy
        t.add_row(s.name, state, str(s.pid or ""), s.endpoint or "", s.server or "", s.log or "")
    Console().print(t)
    return ok


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
