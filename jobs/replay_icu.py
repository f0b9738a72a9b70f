"""Producer entry point: the PhysioNet ICU replay → Kafka (same as ``vitalwatch replay``)."""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["replay", *sys.argv[1:]])
