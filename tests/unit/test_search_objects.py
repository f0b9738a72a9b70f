"""Elasticsearch index templates and Kibana saved objects agree: every field a data view or
visualization uses is mapped; every reference resolves; the pipeline's documents fit the
strict mappings (so a renamed column fails here, not in a dashboard)."""

from __future__ import annotations

import json

from pyspark.sql import SparkSession

from tests.conftest import ROOT
from vitalwatch.config import Settings
from vitalwatch.sinks.events import alert_schema
from vitalwatch.sinks.kibana import load, used_fields
from vitalwatch.sinks.search import index_name, template_fields, templates

S = Settings()
OBJECTS = load(ROOT / "dashboards" / "kibana" / "vitalwatch.ndjson")


def test_templates_match_their_indices_and_are_strict() -> None:
    t = templates(S)
    assert set(t) == {index_name(S, k) for k in ("vitals", "risk", "alerts")}
    for name, body in t.items():
        assert body["index_patterns"] == [f"{name}*"]
        assert body["template"]["mappings"]["dynamic"] == "strict"


def test_every_field_the_saved_objects_use_exists_in_the_templates() -> None:
    fields = template_fields(S)
    used = used_fields(OBJECTS)
    assert set(used) == set(fields), "one data view per index"
    for view, names in used.items():
        assert names, view
        assert names <= fields[view], f"{view}: {sorted(names - fields[view])} not in the template"
    # the three things the dashboard must show
    assert {"systolic", "diastolic", "patient_id", "effective_time"} <= used[index_name(S, "risk")]
    assert {"level", "effective_time"} <= used[index_name(S, "alerts")]
    assert "risk_6h" in used[index_name(S, "risk")]


def test_references_resolve_and_the_dashboard_has_every_visualization() -> None:
    ids = {(o["type"], o["id"]) for o in OBJECTS}
    for o in OBJECTS:
        for r in o.get("references", []):
            assert (r["type"], r["id"]) in ids, (o["id"], r)
    dash = next(o for o in OBJECTS if o["type"] == "dashboard")
    panels = json.loads(dash["attributes"]["panelsJSON"])
    vis = {o["id"] for o in OBJECTS if o["type"] == "visualization"}
    assert {r["id"] for r in dash["references"]} == vis and len(panels) == len(vis)


def test_pipeline_documents_fit_the_strict_mappings(spark: SparkSession) -> None:
    from vitalwatch.pipeline.gold import risk_rows, scores_schema

    fields = template_fields(S)
    risk = risk_rows(spark.createDataFrame([], scores_schema(S)))
    # the writer sends only mapped columns; the ones the dashboards need must be among them
    assert {"observation_id", "risk_6h", "level", "systolic"} <= set(risk.columns) & fields[index_name(S, "risk")]
    assert set(alert_schema(S).fieldNames()) <= fields[index_name(S, "alerts")] | {"reasons"}
