"""Spark entry point: every stage in one application, one query per stage — Kafka → bronze →
silver, Kafka → gold (scores, alerts), gold/silver → patient_status, MongoDB, Elasticsearch.

    ./spark-submit.sh jobs/pipeline.py [--stages bronze,silver,gold,...] [--available-now] [--duration S]

The wiring (config → SparkSession → endpoints → queries) is ``vitalwatch pipeline``, so the
job, the CLI and the single-stage jobs share one implementation.
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", *sys.argv[1:]])
