"""Spark entry point: the gold stage alone (the alert path) — silver rows → scores, alerts on
the topic and webhooks, gold Delta tables. The stores are jobs/serve.py.

    ./spark-submit.sh jobs/gold.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", "--stages", "gold", *sys.argv[1:]])
