"""The ``vitalwatch`` command: operational commands for the local stack and the jobs.

Every sub-command has ``--help``. One module per command group (``infra``, ``produce``,
``pipeline``, ``run``, ``models``, ``triage``, ``mongo``, ``patients``, ``users``, ``alerts``,
``search``, ``dashboard``, ``bench``); they share one console and one error handler (``_console``).
Commands read the settings through :func:`get_settings` of this module (``_console.settings``)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from vitalwatch.cli import (
    alerts,
    bench,
    dashboard,
    infra,
    models,
    mongo,
    patients,
    pipeline,
    produce,
    run,
    search,
    triage,
    users,
)
from vitalwatch.cli._console import Group
from vitalwatch.config import get_settings

app = typer.Typer(help="vitalwatch: real-time patient monitoring on Apache Spark.", cls=Group,
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="more detail: debug logs, Spark at INFO")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="warnings and errors only (Spark at ERROR)")] = False,
) -> None:
    from vitalwatch.logs import configure, spark_level

    configure(verbose, quiet)
    if verbose or quiet:  # read by vitalwatch.spark.build_session
        os.environ["VITALWATCH_SPARK_LOG_LEVEL"] = spark_level(verbose, quiet)


# The order here is the order of `vitalwatch --help`.
for _command in (produce.simulate, produce.replay, pipeline.pipeline, pipeline.notify, pipeline.show, run.run,
                 models.train, dashboard.dashboard, dashboard.api):
    app.command()(_command)
for _name, _group in (("infra", infra.app), ("models", models.app), ("triage", triage.app),
                      ("kafka", mongo.kafka_app), ("mongo", mongo.app), ("patients", patients.app),
                      ("alerts", alerts.app), ("search", search.app), ("users", users.app),
                      ("bench", bench.app)):
    app.add_typer(_group, name=_name)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


__all__ = ["app", "get_settings", "main"]
