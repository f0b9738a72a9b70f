"""Spark entry point: the gold stage alone — silver → scores, alerts, sinks.

    ./spark-submit.sh jobs/gold.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", "--stages", "gold", *sys.argv[1:]])
