"""Spark entry point: one of the pipeline's applications, one query per stage —

    ./spark-submit.sh jobs/pipeline.py --app alerts    # Kafka → gold: scores and alerts (the alert path)
    ./spark-submit.sh jobs/pipeline.py --app lake      # Kafka → bronze → silver; gold topics → gold Delta
    ./spark-submit.sh jobs/pipeline.py --app serving   # gold/silver → patient_status, MongoDB, Elasticsearch
    ./spark-submit.sh jobs/pipeline.py [--stages bronze,silver,...] [--available-now] [--duration S]

Submit each app separately (its own resources: give the alert app its own cores, e.g.
``--spark-opt "--conf spark.cores.max=2"``). The wiring (config → SparkSession → endpoints →
supervised queries) is ``vitalwatch pipeline``, so the job and the CLI share one implementation.
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", *sys.argv[1:]])
