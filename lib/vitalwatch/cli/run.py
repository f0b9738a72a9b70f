"""``vitalwatch run``: the local main command. The orchestration is :mod:`vitalwatch.localrun`
(shared with the end-to-end benchmark); this module prepares, reports and cleans up."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer

from vitalwatch.cli._common import ensure_topics, mongo_init, table
from vitalwatch.cli._console import console, print_out, progress, settings
from vitalwatch.cli.dashboard import start_api, start_dashboard, stop_background
from vitalwatch.cli.models import champion_unusable, train
from vitalwatch.cli.patients import register_simulated
from vitalwatch.cli.pipeline import show


def run(
    patients: Annotated[int, typer.Option(help="simulated patients")] = 50,
    hours: Annotated[float, typer.Option(help="simulated hours to produce")] = 6.0,
    speedup: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 120.0,
    duration: Annotated[float, typer.Option(help="wall seconds to run once the pipeline is up (0: until the simulation ends)")] = 0,
    malformed: Annotated[float, typer.Option(help="fraction of malformed messages to inject")] = 0.02,
    crisis_prone: Annotated[float, typer.Option(help="share of crisis-prone simulated patients")] = 0.3,
    dashboard: Annotated[bool, typer.Option(help="serve the clinicians' dashboard while it runs")] = True,
    api: Annotated[bool, typer.Option(help="serve the REST and FHIR API while it runs")] = True,
) -> None:
    """The local main command: infra up, MongoDB roles and registry, a champion model (trained
    on the ICU data if the registry has none), the applications as separate processes (the
    alert path first; the lake and serving copies; the notifier), the simulator (as a
    device: readings only), the dashboard, then a summary with the alert latency seen (in a
    terminal the dashboard stays up until Ctrl-C)."""
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.localrun import simulation_plan
    from vitalwatch.spark import build_session

    s = settings()
    with progress("infra up") as say:
        InfraManager(s).up(progress=say)
    ep = resolve(s, ("kafka", "mongo", "elasticsearch"))
    ensure_topics(s, ep)
    mongo_init(s)
    rest = max(0.0, 1.0 - crisis_prone)
    mix = {"crisis_prone": crisis_prone, "hypertensive": rest / 2, "normotensive": rest / 2}
    cfg = s.simulator.model_copy(update=dict(patients=patients, speedup=speedup, malformed_fraction=malformed,
                                             profile_mix=mix))
    if (why := champion_unusable(s)) is not None:
        console.log(f"{why}: training one on the ICU data (about 2 min)")
        train(source="icu", patients=None, sequences=None, num_workers=None, device=None, trees=None,
              random_forest=False)
    board = start_dashboard(s) if dashboard else None
    api_proc = start_api(s) if api else None
    with console.status("starting Spark for the simulation plan and the summary"):
        spark = build_session(s, app_name="vitalwatch-local", master="local[1]")
    plan = simulation_plan(spark, s, hours, cfg, console.log)
    register_simulated(s.model_copy(update={"simulator": plan.cfg}), None, None)
    try:
        _run_and_report(s, ep, plan, speedup, duration, board)
    except KeyboardInterrupt:
        pass
    finally:
        stop_background(board, api_proc)


def _run_and_report(s, ep, plan, speedup: float, duration: float, board) -> None:
    """The applications and the simulator (always stopped), then the summary; in a terminal the
    dashboard stays up until Ctrl-C. Exit 1 when the run failed (``RunFailed``: the CLI's error
    handler says why) or was interrupted."""
    from vitalwatch.localrun import run_apps
    from vitalwatch.pipeline import APPS
    from vitalwatch.pipeline.apps import AppProcesses

    procs = AppProcesses(s, [*APPS, "notifier"], say=console.log)
    try:
        started = run_apps(s, ep, procs, plan, speedup, duration, console.log)
    except KeyboardInterrupt as e:
        console.log("stopping")
        raise typer.Exit(1) from e
    finally:
        with console.status("stopping the applications"):
            procs.stop()
    show(sample=8)
    gold_summary(s, ep, since=started)
    if board is not None and sys.stdin.isatty():
        console.log("the dashboard and API stay up (the pipeline has stopped); Ctrl-C ends them")
        board.wait()


def gold_summary(s, ep, since: datetime) -> None:
    """This run's scores and alerts per level in each store (the stores keep earlier runs'),
    and the event → alert latency on the topic."""
    from vitalwatch.localrun import count_stores, latency

    n = count_stores(s, ep, since=since)
    print_out(table(f"gold, this run (since {since:%H:%M:%S} UTC)", ("store", "risk scores", "alerts"),
                    [(label, str(n[key]["scores"]), str(n[key]["alerts"])) for label, key in
                     (("Delta gold/", "delta"), ("MongoDB", "mongo"), ("Elasticsearch", "elasticsearch"))]))
    print_out(table("alerts by level", ("level", "alerts"),
                    [(level, str(count)) for level, count in n["alerts_by_level"].items()]))
    if q := latency(ep, s, since):
        console.log(f"event → alert on {s.kafka.topics.alerts} (reading's Kafka time → alert's Kafka time), "
                    f"{q['n']:.0f} alerts: p50 {q['p50']:.1f}s, p95 {q['p95']:.1f}s, p99 {q['p99']:.1f}s, "
                    f"max {q['max']:.1f}s")
