"""vitalwatch: real-time patient monitoring on Apache Spark (FHIR R4 vitals → Delta → risk → alerts)."""

__version__ = "0.1.0"
