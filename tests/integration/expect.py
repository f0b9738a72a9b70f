"""What silver must hold for the messages a test sent (shared by the pipeline tests)."""

from __future__ import annotations

import json

from pyspark.sql import SparkSession

from vitalwatch.config import Settings
from vitalwatch.pipeline.lake import SILVER_VITALS, read_table
from vitalwatch.producers.fhir import Message


def expected_values(msgs: list[Message]) -> dict[tuple[str, str], float]:
    """(observation id, LOINC) → canonical value, from the JSON the simulator sent."""
    out: dict[tuple[str, str], float] = {}
    for m in msgs:
        if m.kind in ("malformed:out_of_physiological_range", "malformed:unit_not_convertible"):
            r = json.loads(m.value)  # a bad systolic; the panel's diastolic is still a good value
            out[(r["id"], "8462-4")] = r["component"][1]["valueQuantity"]["value"]
        if m.kind.startswith("malformed:"):
            continue
        o = json.loads(m.value)
        for r in [e["resource"] for e in o["entry"]] if o["resourceType"] == "Bundle" else [o]:
            parts = r.get("component") or [r]
            for c in parts:
                out[(r["id"], c["code"]["coding"][0]["code"])] = c["valueQuantity"]["value"]
    return out


def silver_values(spark: SparkSession, settings: Settings) -> list[tuple[str, str, float]]:
    df = read_table(spark, settings, SILVER_VITALS)
    return [(r["observation_id"], r["loinc"], r["value"]) for r in df.select("observation_id", "loinc", "value").collect()]
