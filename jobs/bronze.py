"""Spark entry point: the bronze stage alone (same options as jobs/pipeline.py).

    ./spark-submit.sh jobs/bronze.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", "--stages", "bronze", *sys.argv[1:]])
