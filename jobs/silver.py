"""Spark entry point: the silver stage alone (same options as jobs/pipeline.py).

    ./spark-submit.sh jobs/silver.py [--available-now] [--duration S]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["pipeline", "--stages", "silver", *sys.argv[1:]])
