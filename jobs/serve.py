"""Spark entry point: the stages off the alert path — the gold tables' topics → gold Delta
tables (gold_lake), then gold/silver Delta → gold/patient_status, MongoDB, Elasticsearch
(lib/vitalwatch/pipeline/gold_lake.py, serve.py).

    ./spark-submit.sh jobs/serve.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", "--stages", "gold_lake,serve_scores,serve_alerts,es_vitals", *sys.argv[1:]])
