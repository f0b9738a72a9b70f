"""``vitalwatch simulate`` and ``replay``: FHIR vitals into the observations topic."""

from __future__ import annotations

from typing import Annotated

import typer

from vitalwatch.cli._common import given
from vitalwatch.cli._console import console, settings


def send_with_progress(messages, total: int | None, topic: str, access, speedup: float,
                       rate: float, label: str, should_stop=None):
    """Send with a progress bar, then one line: how many, how fast, by kind."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from vitalwatch.producers.kafka_out import send

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as prog:
        task = prog.add_task(label, total=total)
        rep = send(messages, access, topic, speedup=speedup, rate=rate,
                   on_sent=lambda _m: prog.advance(task), should_stop=should_stop)
    console.log(f"sent {rep.sent} messages to {topic} in {rep.seconds:.1f}s "
                f"({rep.rate:.0f}/s); by kind: {rep.by_kind}")
    return rep


def simulate(
    patients: Annotated[int | None, typer.Option(help="number of simulated patients")] = None,
    hours: Annotated[float, typer.Option(help="simulated hours to produce")] = 24.0,
    speedup: Annotated[float | None, typer.Option(help="simulated seconds per wall second (0: no pacing)")] = None,
    rate: Annotated[float | None, typer.Option(help="cap in messages/s (0: none)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (same seed, same messages)")] = None,
    duplicates: Annotated[float | None, typer.Option(help="fraction of messages sent twice")] = None,
    late: Annotated[float | None, typer.Option(help="fraction delivered late/out of order")] = None,
    malformed: Annotated[float | None, typer.Option(help="fraction of readings followed by a malformed message")] = None,
    start: Annotated[str | None, typer.Option(help="simulated start time (ISO 8601, default: the HOURS ending now; "
                                                 "readings later than their sending are quarantined)")] = None,
) -> None:
    """Simulate bedside monitors: FHIR R4 vitals for N patients into the observations topic."""
    from datetime import datetime

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.producers.simulator import SimulationPlan
    from vitalwatch.producers.simulator import simulate as sim

    s = settings()
    cfg = s.simulator.model_copy(update=given(patients=patients, seed=seed, duplicate_fraction=duplicates,
                                              late_fraction=late, malformed_fraction=malformed,
                                              speedup=speedup, rate=rate))
    plan = SimulationPlan(datetime.fromisoformat(start), hours, cfg) if start else SimulationPlan.until_now(hours, cfg)
    ep = resolve(s, ("kafka",))
    send_with_progress(sim(plan), None, s.kafka.topics.observations, ep.kafka("device"),
                       cfg.speedup, cfg.rate, f"simulating {cfg.patients} patients, {hours} h")


def replay(
    patients: Annotated[int | None, typer.Option(help="replay only the first N patients")] = None,
    max_rows: Annotated[int | None, typer.Option(help="stop after N hourly rows")] = None,
    speedup: Annotated[float, typer.Option(help="simulated seconds per wall second (0: no pacing)")] = 0.0,
    rate: Annotated[float, typer.Option(help="cap in messages/s (0: none)")] = 0.0,
    bundle: Annotated[bool, typer.Option(help="one Bundle per hourly row (else one message per Observation)")] = True,
    seed: Annotated[int, typer.Option(help="random seed of the fault injection")] = 7,
    duplicates: Annotated[float, typer.Option(help="fraction of messages sent twice")] = 0.0,
    late: Annotated[float, typer.Option(help="fraction delivered 1-3 h late (out of order)")] = 0.0,
    malformed: Annotated[float, typer.Option(help="fraction followed by a malformed message")] = 0.0,
) -> None:
    """Replay the real PhysioNet 2019 ICU vitals as FHIR into the observations topic."""
    from datetime import datetime

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.producers.faults import FaultPlan
    from vitalwatch.producers.icu_replay import replay as rp

    s = settings()
    msgs = list(rp(s.path(s.replay.path), datetime.fromisoformat(s.replay.base_time),
                   patients=patients, max_rows=max_rows, as_bundle=bundle,
                   faults=FaultPlan(seed, duplicates, late, malformed)))
    ep = resolve(s, ("kafka",))
    send_with_progress(iter(msgs), len(msgs), s.kafka.topics.observations, ep.kafka("device"),
                       speedup, rate, "replaying ICU data")
