"""Spark entry point: Kafka → bronze → silver (one application, one query per stage).

    ./spark-submit.sh jobs/pipeline.py [--stages bronze,silver] [--available-now] [--duration S]

The wiring (config → SparkSession → endpoints → queries) is ``vitalwatch pipeline``, so the
job, the CLI and the single-stage jobs share one implementation.
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", *sys.argv[1:]])
