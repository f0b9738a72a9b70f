"""Producer entry point: the device simulator → Kafka (same as ``vitalwatch simulate``)."""

import sys

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["simulate", *sys.argv[1:]])
