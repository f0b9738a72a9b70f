"""Benchmark job: FHIR parsing throughput of the silver parser (prints a table; not a test).

    .venv/bin/python jobs/benchmark_parse.py --patients 500 --hours 24 --repeat 3

Generates simulator messages (BP panels, other vitals, 20 % Bundles), stores them as a bronze
Delta table, then times ``parse_observations`` over it into Spark's ``noop`` sink (parse cost
alone) and into a silver Delta table (parse + write). Reports messages/s and values/s."""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vitalwatch.config import get_settings
from vitalwatch.fhir.parse import ParseRules, accepted, parse_observations
from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA
from vitalwatch.producers.simulator import SimulationPlan, simulate
from vitalwatch.spark import build_session


def main(patients: int = 500, hours: float = 24.0, repeat: int = 3, master: str = "local[*]") -> None:
    settings = get_settings()
    console = Console()
    spark = build_session(settings, app_name="vitalwatch-benchmark-parse", master=master)
    cfg = settings.simulator.model_copy(update={"patients": patients})
    t = datetime.now(UTC).replace(tzinfo=None)  # arrival (LogAppendTime): after every simulated reading
    with console.status("generating messages"):
        msgs = list(simulate(SimulationPlan(datetime(2026, 1, 1, tzinfo=UTC), hours, cfg)))
    tmp = Path(tempfile.mkdtemp(prefix="vw-bench-"))
    try:
        bronze_path = str(tmp / "bronze")
        rows = [(m.key.encode(), m.value, "bench", 0, i, t, 1, t, t.date()) for i, m in enumerate(msgs)]
        spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA).repartition(8).write.format("delta").save(bronze_path)
        bronze = spark.read.format("delta").load(bronze_path).cache()
        n_msgs = bronze.count()
        rules = ParseRules.from_settings(settings)
        n_values = accepted(parse_observations(bronze, rules)).count()  # warm-up + output size
        res = []
        for i in range(repeat):
            t0 = time.perf_counter()
            parse_observations(bronze, rules).write.format("noop").mode("overwrite").save()
            t1 = time.perf_counter()
            accepted(parse_observations(bronze, rules)).write.format("delta").mode("overwrite").save(str(tmp / f"silver{i}"))
            t2 = time.perf_counter()
            res.append((t1 - t0, t2 - t1))
        best_noop = min(r[0] for r in res)
        best_delta = min(r[1] for r in res)
        table = Table(title=f"silver parser, {n_msgs} messages → {n_values} values, master {master}, "
                            f"best of {repeat}")
        table.add_column("sink")
        table.add_column("seconds", justify="right")
        table.add_column("messages/s", justify="right")
        table.add_column("values/s", justify="right")
        for name, sec in (("noop (parse only)", best_noop), ("Delta (parse + write)", best_delta)):
            table.add_row(name, f"{sec:.2f}", f"{n_msgs / sec:,.0f}", f"{n_values / sec:,.0f}")
        console.print(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    typer.run(main)
