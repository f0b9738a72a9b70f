"""Benchmark job: the silver parser alone into ``noop`` and into Delta (``vitalwatch bench parse``,
:func:`vitalwatch.bench.parsers.silver_sinks`):
``.venv/bin/python jobs/benchmark_parse.py --patients 500 --hours 24 --repeat 3``."""
import typer

from vitalwatch.cli.bench import parse

if __name__ == "__main__":
    typer.run(parse)
