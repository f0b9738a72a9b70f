"""Spark entry point: the serving stages — gold/silver Delta → gold/patient_status, MongoDB,
Elasticsearch (off the alert path; lib/vitalwatch/pipeline/serve.py).

    ./spark-submit.sh jobs/serve.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", "--stages", "serve_scores,serve_alerts,es_vitals", *sys.argv[1:]])
