"""The silver query on a real bronze Delta table: first wins and says so (an identical re-send
is dropped, a different value under the same id and version is quarantined), the raw message
is kept once per message, and a Bundle's other resources are counted, not quarantined."""

from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.pipeline.lake import (
    BRONZE,
    KAFKA_BRONZE_SCHEMA,
    SILVER_IGNORED,
    SILVER_QUARANTINE,
    SILVER_VITALS,
    ensure_lake,
    read_table,
)
from vitalwatch.pipeline.report import lake_summary
from vitalwatch.pipeline.silver import start_silver

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _obs(oid: str, code: str, value: float, unit: str, pid: str = "p1", **extra) -> dict:
    o = {"resourceType": "Observation", "id": oid, "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
         "subject": {"reference": f"Patient/{pid}"},
         "effectiveDateTime": (NOW - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "valueQuantity": {"value": value, "code": unit}}
    o.update(extra)
    return o


def _append(spark: SparkSession, settings: Settings, msgs: list[dict | str], first_offset: int) -> None:
    rows = [(b"p1", (m if isinstance(m, str) else json.dumps(m)).encode(), "vitals.observations", 0,
             first_offset + i, NOW, 1, NOW, NOW.date()) for i, m in enumerate(msgs)]
    spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA).write.format("delta").mode("append").save(
        settings.table_path(*BRONZE))


def test_first_wins_duplicates_conflicts_raw_once_and_ignored_counts(spark: SparkSession, lake_settings: Settings) -> None:
    s = lake_settings.with_updates(streaming={"dedupe_watermark": "1 hour"})
    ensure_lake(spark, s)
    hr = _obs("hr-1", "8867-4", 72.0, "/min")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "MRN-9"}]}},
        {"fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222", "resource": {"resourceType": "Encounter", "status": "finished"}},
        {"fullUrl": "urn:uuid:33333333-3333-3333-3333-333333333333",
         "resource": _obs("sp-1", "59408-5", 97.0, "%", subject={"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"})},
        {"resource": _obs("bad-1", "8867-4", 500.0, "/min")},
        {"resource": _obs("bad-2", "8867-4", 600.0, "/min")},
    ]}
    _append(spark, s, [hr, hr, _obs("hr-1", "8867-4", 140.0, "/min"), bundle], 0)
    start_silver(spark, s, available_now=True).awaitTermination()
    # a later batch: the same conflict again, and an identical re-send, across the batch boundary
    _append(spark, s, [_obs("hr-1", "8867-4", 150.0, "/min"), hr], 4)
    start_silver(spark, s, available_now=True).awaitTermination()

    silver = read_table(spark, s, SILVER_VITALS)
    assert sorted((r.patient_id, r.observation_id, r.value) for r in silver.collect()) == [
        ("MRN-9", "sp-1", 97.0), ("p1", "hr-1", 72.0)]
    q = read_table(spark, s, SILVER_QUARANTINE).orderBy("offset", "entry_index").collect()
    assert [(r.offset, r.reason) for r in q] == [
        (2, "conflicting_duplicate"), (3, "out_of_physiological_range"), (3, "out_of_physiological_range"),
        (4, "conflicting_duplicate")]
    assert "accepted as 72.0 /min" in q[0].detail and "says 140.0 /min" in q[0].detail
    with_raw = [r.offset for r in q if r.raw is not None]
    assert with_raw == [2, 3, 4], "the raw message once per message, on its first quarantine row"
    assert json.loads(q[1].raw)["resourceType"] == "Bundle"
    counts = {r.resource_type: r.resources for r in read_table(spark, s, SILVER_IGNORED).groupBy("resource_type")
              .agg(F.sum("resources").alias("resources")).collect()}
    assert counts == {"Patient": 1, "Encounter": 1}
    summary = lake_summary(spark, s)  # what `vitalwatch show` prints
    assert summary["ignored_by_type"] == counts
    assert summary["by_reason"] == {"conflicting_duplicate": 2, "out_of_physiological_range": 2}
