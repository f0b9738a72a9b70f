"""``vitalwatch pipeline``, ``notify`` and ``show``: one application's queries in this process,
the webhook notifier, and what the lake holds."""

from __future__ import annotations

import sys
import threading
from typing import Annotated

import typer

from vitalwatch.cli._common import best_effort, ensure_topics, mongo_init, print_app_health, table
from vitalwatch.cli._console import console, fail, print_out, settings
from vitalwatch.pipeline import APPS, STAGES


def pipeline(
    app_name: Annotated[str | None, typer.Option("--app", help="one application: " + ", ".join(APPS))] = None,
    stages: Annotated[str | None, typer.Option(help="comma-separated, of: " + ",".join(STAGES)
                                               + " (default: the app's, else all)")] = None,
    available_now: Annotated[bool, typer.Option(help="process what is available, then stop")] = False,
    duration: Annotated[float, typer.Option(help="stop after S seconds (0: until Ctrl-C or SIGTERM)")] = 0,
) -> None:
    """Run one application's streaming stages in this process (local Spark; on a cluster use
    spark-submit.sh jobs/pipeline.py --app NAME). A failing stage is retried forever and
    reported degraded; only a lost Spark context ends the process (exit 3)."""
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.logs import ProgressLog
    from vitalwatch.pipeline.runner import run_available_now, run_continuous
    from vitalwatch.pipeline.supervisor import SparkContextLost, backoff_s
    from vitalwatch.spark import build_session

    s = settings()
    if app_name is not None and app_name not in APPS:
        raise typer.BadParameter(f"unknown app {app_name!r}; apps: {', '.join(APPS)}", param_hint="--app")
    chosen = ([x.strip() for x in stages.split(",") if x.strip()] if stages
              else list(APPS[app_name]) if app_name else list(STAGES))
    label = app_name or "pipeline"
    with console.status("starting Spark (connectors resolve from Maven Central on first use)"):
        spark = build_session(s, app_name=f"vitalwatch-{label}")
    ep = resolve(s, ("kafka",))
    best_effort("Kafka topics", lambda: ensure_topics(s, ep))
    if {"gold", "serve_scores", "serve_alerts"} & set(chosen) and "mongo" in s.gold.sinks:
        best_effort("MongoDB roles and users", lambda: mongo_init(s))
    if available_now:
        console.log(run_available_now(spark, s, ep, chosen))
        return
    stop = _stop_on_sigterm()
    console.log(f"{label}: running {', '.join(chosen)}")
    progress = ProgressLog(console.log, tty=sys.stdout.isatty())
    try:
        run_continuous(spark, s, ep, chosen, app=label, duration_s=duration or None, on_tick=progress.tick,
                       should_stop=stop.is_set,
                       on_failure=lambda h: console.log(f"[yellow]{h.line()}[/yellow] (retry in "
                                                        f"{backoff_s(s, h.failures):.0f} s)"))
    except SparkContextLost as e:
        fail(f"{label}: {e}; exiting so that it is started again", 3)


def _stop_on_sigterm() -> threading.Event:
    """An event SIGTERM sets: a container's stop ends the loop and its queries cleanly."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def notify() -> None:
    """Deliver webhooks for the alerts on the alert topic (the outbox notifier: its own process
    and consumer group; signed, retried, each (alert, webhook) once — docs/notifications.md).
    Runs until Ctrl-C or SIGTERM."""
    from vitalwatch.alerts.notifier import run_notifier
    from vitalwatch.infra.endpoints import resolve

    s = settings()
    stop = _stop_on_sigterm()
    try:
        run_notifier(s, resolve(s, ("kafka", "mongo")), should_stop=stop.is_set, log_line=console.log)
    except KeyboardInterrupt:
        stop.set()


def show(sample: Annotated[int, typer.Option(help="latest silver rows to print")] = 8) -> None:
    """The applications' health, counts of bronze, silver and quarantine, quarantine reasons, a
    Bundle's non-vital resources by type, dead letters per store, and the latest values."""
    from vitalwatch.pipeline.report import lake_summary
    from vitalwatch.spark import build_session

    s = settings()
    with console.status("reading the lake"):
        spark = build_session(s, app_name="vitalwatch-show")
        summ = lake_summary(spark, s, sample)
    print_app_health(s)
    for t in (
        table(f"lake at {s.path(s.lake.root)}", ("table", "rows"), [
            ("bronze/observations_raw (messages)", str(summ["bronze_messages"])),
            ("silver/vital_signs (values)", str(summ["silver_values"])),
            ("silver/vital_signs (patients)", str(summ["silver_patients"])),
            ("silver/quarantine", str(summ["quarantined"]))]),
        table(None, ("vital", "values"), [(k, str(v)) for k, v in summ["by_vital"].items()]),
        table(None, ("quarantine reason", "rows"), [(k, str(v)) for k, v in summ["by_reason"].items()]),
        table("Bundle resources that are not vital signs (counted, not quarantined)",
               ("resource type", "resources"), [(k, str(v)) for k, v in summ["ignored_by_type"].items()]),
        table(f"gold/dead_letter: rows a store refused for good ({summ['dead_letters']} in all)",
               ("sink", "rows"), [(k, str(v)) for k, v in summ["dead_letters_by_sink"].items()]),
        table("latest values to arrive", ("patient", "effective (UTC)", "vital", "value", "unit", "device"),
               [(r["patient_id"], str(r["effective_time"]), r["vital"], f"{r['value']:.1f}", r["unit"],
                 r["device_id"] or "") for r in summ["latest"]]),
    ):
        print_out(t)
