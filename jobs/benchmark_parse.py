"""Benchmark job: the silver parser alone into ``noop`` and into Delta (:func:`vitalwatch.bench.parsers.silver_sinks`):
``.venv/bin/python jobs/benchmark_parse.py --patients 500 --hours 24 --repeat 3``."""
import typer

from vitalwatch.bench.parsers import silver_sinks
from vitalwatch.bench.report import console_for, parse_sinks_table
from vitalwatch.config import get_settings


def main(patients: int = 500, hours: float = 24.0, repeat: int = 3, master: str = "local[*]") -> None:
    console = console_for()
    with console.status("silver parser") as st:
        res = silver_sinks(get_settings(), patients, hours, repeat, master, progress=st.update)
    console.print(parse_sinks_table(res))


if __name__ == "__main__":
    typer.run(main)
