"""Spark entry point: Kafka → bronze → silver (one application, one query per stage).

    ./spark-submit.sh jobs/pipeline.py [--stages bronze,silver] [--available-now] [--duration S]
"""

from __future__ import annotations

import typer

from vitalwatch.config import get_settings
from vitalwatch.infra.endpoints import resolve
from vitalwatch.pipeline.runner import STAGES, run_available_now, run_continuous
from vitalwatch.spark import build_session


def main(
    stages: str = typer.Option(",".join(STAGES), help="comma-separated stages to run"),
    available_now: bool = typer.Option(False, help="process what is available, then stop"),
    duration: float = typer.Option(0, help="stop after this many seconds (0: run until stopped)"),
) -> None:
    settings = get_settings()
    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    spark = build_session(settings, app_name=f"vitalwatch-{'-'.join(chosen)}")
    endpoints = resolve(settings, ("kafka",))
    if available_now:
        print(run_available_now(spark, settings, endpoints, chosen))
    else:
        run_continuous(spark, settings, endpoints, chosen, duration_s=duration or None)


if __name__ == "__main__":
    typer.run(main)
