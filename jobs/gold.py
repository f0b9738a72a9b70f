"""Spark entry point: the gold stage alone (the alert path) — observations → scores, alerts on
their topic (webhooks: the notifier, ``vitalwatch notify``), the gold tables' rows on their
topics. jobs/serve.py writes those to the gold Delta tables (gold_lake) and the stores.

    ./spark-submit.sh jobs/gold.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", "--stages", "gold", *sys.argv[1:]])
