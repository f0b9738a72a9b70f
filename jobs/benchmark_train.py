"""Benchmark job: crisis-risk training time on CPU vs GPU, on the same real data (not a test).

    .venv/bin/python jobs/benchmark_train.py export --out .work/bench/train.npz   # Spark: build vectors
    .venv/bin/python jobs/benchmark_train.py run --data .work/bench/train.npz --device cpu --device cuda

``export`` needs Spark and the ICU data; ``run`` needs only numpy and xgboost, so the matrices
can be copied to a GPU machine that has neither Spark nor a JVM (:mod:`vitalwatch.bench.train`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitalwatch.bench.report import console_for

app = typer.Typer(help=__doc__.split("\n")[0], no_args_is_help=True)
console = console_for()


@app.command()
def export(out: Annotated[Path, typer.Option(help=".npz file to write")] = Path(".work/bench/train.npz"),
           patients: Annotated[int | None, typer.Option(help="only the first N ICU patients")] = None) -> None:
    """Build the train/validation vectors with the project's feature builder and save them."""
    from vitalwatch.bench.train import export_with_spark
    from vitalwatch.config import get_settings

    with console.status("building the vectors with Spark"):
        counts = export_with_spark(get_settings(), out, patients)
    console.print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): {counts}")


@app.command()
def run(data: Annotated[Path, typer.Option(help="the .npz written by export")] = Path(".work/bench/train.npz"),
        device: Annotated[list[str], typer.Option(help="cpu, cuda (repeatable)")] = ["cpu"],  # noqa: B006
        rounds: Annotated[int | None, typer.Option(help="XGBoost rounds (default: conf's n_estimators)")] = None,
        horizon: Annotated[list[int] | None, typer.Option(help="horizons in hours (default: all)")] = None,
        threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores)")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="also write the results here")] = None) -> None:
    """Fit one booster per horizon on each device; print fit times, rows/s and validation AUPRC."""
    from vitalwatch.bench.train import report, time_training

    with console.status("training") as st:
        results, env = time_training(data, device, rounds, horizon, threads, progress=st.update)
    console.print(f"machine: {env['cpu_count']} CPUs, GPU: {env['gpu'] or 'none'}, xgboost {env['xgboost']}")
    console.print(report(results, env, json_out))


if __name__ == "__main__":
    app()
