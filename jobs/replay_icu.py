"""Producer entry point: the PhysioNet ICU replay → Kafka (same as ``vitalwatch replay``)."""

from vitalwatch.cli import app

if __name__ == "__main__":
    app(["replay", *__import__("sys").argv[1:]])
