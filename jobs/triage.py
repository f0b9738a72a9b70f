"""Spark entry point: the heart-disease triage model.

    ./spark-submit.sh jobs/triage.py train [--csv heart.csv]
    ./spark-submit.sh jobs/triage.py score unlabelled.csv   # rows → vitals.alerts / vitals.normal
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["triage", *sys.argv[1:]])
