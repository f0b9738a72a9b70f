"""``vitalwatch bench``: the benchmarks (docs/benchmarks.md). The same commands are the jobs
``jobs/benchmark.py``, ``jobs/benchmark_parse.py`` and ``jobs/benchmark_train.py`` (for
``spark-submit.sh``), which only call these. Nothing here asserts speed: figures are printed for
the machine they ran on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitalwatch.bench.report import console_for
from vitalwatch.bench.suite import MEASUREMENTS
from vitalwatch.cli._console import settings

app = typer.Typer(help="Benchmarks: parsing, scoring, memory, end to end, the API, outages, training.",
                  no_args_is_help=True)


@app.command("run")
def run(
    only: Annotated[list[str] | None, typer.Option(help=f"run only these: {', '.join(MEASUREMENTS)}")] = None,
    smoke: Annotated[bool, typer.Option(help="tiny sizes, one timed run: checks that it runs, not speed")] = False,
    out: Annotated[Path | None, typer.Option(help="JSON to write (default: conf benchmark.out)")] = None,
    master: Annotated[str, typer.Option(help="Spark master for the Spark engines")] = "local[*]",
) -> None:
    """Every measurement (or ``--only`` some): a table each, all of them as JSON. ``faults``
    (about 15 minutes) runs only when named."""
    from vitalwatch.bench.suite import run_benchmarks

    if unknown := set(only or ()) - set(MEASUREMENTS):
        raise typer.BadParameter(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    run_benchmarks(settings(), only, smoke, out, master)


@app.command("parse")
def parse(patients: Annotated[int, typer.Option(help="simulated patients")] = 500,
          hours: Annotated[float, typer.Option(help="hours of readings per patient")] = 24.0,
          repeat: Annotated[int, typer.Option(help="timed runs")] = 3,
          master: Annotated[str, typer.Option(help="Spark master")] = "local[*]") -> None:
    """The silver parser alone, into ``noop`` and into Delta, on simulator messages."""
    from vitalwatch.bench.parsers import silver_sinks
    from vitalwatch.bench.report import parse_sinks_table

    console = console_for()
    with console.status("silver parser") as st:
        res = silver_sinks(settings(), patients, hours, repeat, master, progress=st.update)
    console.print(parse_sinks_table(res))


@app.command("train-export")
def train_export(out: Annotated[Path, typer.Option(help=".npz file to write")] = Path(".work/bench/train.npz"),
                 patients: Annotated[int | None, typer.Option(help="only the first N ICU patients")] = None) -> None:
    """Build the training benchmark's train/validation vectors with the project's feature builder
    (Spark, the ICU data) and save them, for ``bench train`` here or on a GPU machine."""
    from vitalwatch.bench.train import export_with_spark

    console = console_for()
    with console.status("building the vectors with Spark"):
        counts = export_with_spark(settings(), out, patients)
    console.print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): {counts}")


@app.command("train")
def train(data: Annotated[Path, typer.Option(help="the .npz written by train-export")] = Path(".work/bench/train.npz"),
          device: Annotated[list[str], typer.Option(help="cpu, cuda (repeatable)")] = ["cpu"],  # noqa: B006
          rounds: Annotated[int | None, typer.Option(help="XGBoost rounds (default: conf's n_estimators)")] = None,
          horizon: Annotated[list[int] | None, typer.Option(help="horizons in hours (default: all)")] = None,
          threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores)")] = None,
          json_out: Annotated[Path | None, typer.Option("--json", help="also write the results here")] = None) -> None:
    """Fit one booster per horizon on each device (numpy and xgboost only: no Spark); print fit
    times, rows/s and validation AUPRC."""
    from vitalwatch.bench.train import report, time_training

    console = console_for()
    with console.status("training") as st:
        results, env = time_training(data, device, rounds, horizon, threads, progress=st.update)
    console.print(f"machine: {env['cpu_count']} CPUs, GPU: {env['gpu'] or 'none'}, xgboost {env['xgboost']}")
    console.print(report(results, env, json_out))
