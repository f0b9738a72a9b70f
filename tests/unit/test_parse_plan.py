"""A guard on the size of the parser's optimized plan, so the planning-time fix cannot regress.

Written as one expression, ``parse_observations`` was a 288 KB plan that took about 0.9 s to
plan per micro-batch; as a chain of named projections (docs/decisions/parser-named-projections.md;
:mod:`vitalwatch.fhir.exprs`) it is about 40 KB, planned in about 0.13 s.
Reusing a Python Column object or a ``withField`` in a new step silently copies expression
trees and grows the plan (once to 1.5 MB, 13 s to plan 300 messages). Only the plan's size
is asserted, never a time: sizes are deterministic, timings on a shared machine are not.

Measured 2026-12-02 on this input with conf/vitals.yaml as shipped:
``len(df._jdf.queryExecution().optimizedPlan().toString())`` = 40,048 characters and
``len(....optimizedPlan().treeString().splitlines())`` = 25 plan nodes. The bounds are about
1.5× those."""

from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import SparkSession

from vitalwatch.config import Settings
from vitalwatch.fhir.parse import ParseRules, parse_observations
from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA

MAX_PLAN_CHARS = 60_000  # measured 40,048
MAX_PLAN_NODES = 38  # measured 25

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)
OBSERVATION = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-03-01T10:15:00+01:00",
    "valueQuantity": {"value": 72, "system": "http://unitsofmeasure.org", "code": "/min"},
}
BUNDLE = {"resourceType": "Bundle", "type": "collection",
          "entry": [{"fullUrl": "urn:uuid:1", "resource": OBSERVATION}]}


def test_optimized_plan_stays_small(spark: SparkSession, base_settings: Settings) -> None:
    rows = [(b"p1", json.dumps(m).encode(), "vitals.observations", 0, i, T0, 1, T0, T0.date())
            for i, m in enumerate((OBSERVATION, BUNDLE))]
    df = parse_observations(spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA), ParseRules.from_settings(base_settings))
    plan = df._jdf.queryExecution().optimizedPlan()
    chars, nodes = len(plan.toString()), len(plan.treeString().splitlines())
    assert chars <= MAX_PLAN_CHARS, f"optimized plan {chars:,} characters (bound {MAX_PLAN_CHARS:,}): " \
                                    "an expression is being copied between steps"
    assert nodes <= MAX_PLAN_NODES, f"optimized plan has {nodes} nodes (bound {MAX_PLAN_NODES})"
    assert df.count() == 2  # the plan that was measured is the one that runs
