"""Producer entry point: the device simulator → Kafka (same as ``vitalwatch simulate``)."""

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["simulate", *__import__("sys").argv[1:]])
