"""Elasticsearch index templates and Kibana saved objects agree: every field a data view or
visualization uses is mapped; every reference resolves; the pipeline's documents fit the
strict mappings (so a renamed column fails here, not in a dashboard)."""

from __future__ import annotations

import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.helpers import ROOT
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


def test_every_keyword_field_has_ignore_above() -> None:
    """An identifier of any length (a device's 500-character id) is kept in the document but not
    indexed, instead of failing the whole write (Lucene's 32 KB term limit)."""
    def keywords(props: dict, prefix: str = "") -> dict[str, dict]:
        out = {}
        for k, v in props.items():
            if v.get("type") == "keyword":
                out[prefix + k] = v
            out.update(keywords(v.get("properties", {}), f"{prefix}{k}."))
        return out

    for name, body in templates(S).items():
        kw = keywords(body["template"]["mappings"]["properties"])
        assert kw, name
        assert all(v.get("ignore_above", 0) >= 128 for v in kw.values()), name


def test_store_keys_include_the_patient_and_cannot_collide(spark: SparkSession) -> None:
    """Two patients' equal observation ids are two readings; ``a:b`` + ``c`` is not ``a`` + ``b:c``;
    an id too long for Elasticsearch becomes its digest."""
    from vitalwatch.pipeline.keys import ES_MAX_ID_BYTES, es_id, score_key

    rows = [("p1", "o1", "scored"), ("p2", "o1", "scored"), ("a:b", "c", "scored"), ("a", "b:c", "scored"),
            ("p1", "o1", "untimely"), ("é" * 200, "o" * 128, "scored")]
    df = spark.createDataFrame(rows, "patient_id string, observation_id string, score_status string").withColumns(
        {"effective_time": F.lit("9999-12-31 00:00:00").cast("timestamp"), "silver_time": F.current_timestamp()})
    got = [r.k for r in df.select(score_key().alias("k")).collect()]
    assert len(set(got)) == len(rows)
    assert got[0] == '["p1","o1"]'
    ids = [r.i for r in df.select(es_id(score_key()).alias("i")).collect()]
    assert all(len(i.encode()) <= ES_MAX_ID_BYTES for i in ids) and len(set(ids)) == len(rows)
    assert len(ids[-1]) == 64  # sha-256 hex of the too-long key
