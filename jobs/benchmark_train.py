"""Benchmark job: crisis-risk training time on CPU vs GPU, on the same real data (not a test).

    .venv/bin/python jobs/benchmark_train.py export --out .work/bench/train.npz   # Spark: build vectors
    .venv/bin/python jobs/benchmark_train.py run --data .work/bench/train.npz --device cpu --device cuda

``export`` needs Spark and the ICU data; ``run`` needs only numpy and xgboost, so the matrices
can be copied to a GPU machine that has neither Spark nor a JVM (:mod:`vitalwatch.bench.train`)."""

from __future__ import annotations

import typer

from vitalwatch.cli.bench import train, train_export

app = typer.Typer(help=__doc__.split("\n")[0], no_args_is_help=True)
app.command("export")(train_export)
app.command("run")(train)

if __name__ == "__main__":
    app()
