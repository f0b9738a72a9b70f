"""Spark entry point: train, evaluate and register the crisis-risk model.

    ./spark-submit.sh jobs/train.py [--source icu|synthetic|lake] [--num-workers N] [--device cuda]
"""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]])
