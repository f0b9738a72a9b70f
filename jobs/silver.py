"""Spark entry point: the silver stage alone (see jobs/pipeline.py for the options).

    ./spark-submit.sh jobs/silver.py [--available-now] [--duration S]
"""

from __future__ import annotations

import sys

import typer

from pipeline import main

if __name__ == "__main__":
    sys.argv[1:1] = ["--stages", "silver"]
    typer.run(main)
