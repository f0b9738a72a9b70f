"""The gold tables' trip through Kafka records: rows come back equal (NaN features, microsecond
times, nulls), keys are stable and distinct, and a replayed key is written once."""

from __future__ import annotations

import math
from datetime import datetime

from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from vitalwatch.pipeline.gold import risk_rows, scores_schema
from vitalwatch.pipeline.gold.tables import lake_records
from vitalwatch.pipeline.gold_lake import lake_input, table_rows
from vitalwatch.sinks.events import alert_events, alert_schema


def _scores(spark, settings):
    schema = scores_schema(settings)
    t = datetime(2026, 3, 1, 10, 15, 30, 123456)
    base = dict.fromkeys(schema.fieldNames())
    reading = {**base, "patient_id": "p1", "observation_id": "o1", "effective_time": t,
               "features": [120.0, None, 80.5] + [None] * 117, "risk_1h": 0.1, "risk_6h": 0.25, "risk_24h": 0.5,
               "score_status": "scored", "level": "MEDIUM", "level_reasons": ["risk_6h >= 0.2"],
               "crisis_now": False, "news2_red_flag": False, "model_name": "m", "model_version": "3",
               "alert_id": "a1", "alert_kind": "raised", "alert_level": "MEDIUM", "alert_late": False,
               "kafka_timestamp": t, "silver_time": datetime(2026, 3, 1, 10, 15, 31, 654321),
               "shadow_model_version": "4", "shadow_risk_1h": 0.05, "shadow_risk_6h": 0.3, "shadow_risk_24h": 0.45}
    discharged = {**base, "patient_id": "p2", "score_status": "discharged", "silver_time": t}
    return spark.createDataFrame([Row(**reading), Row(**discharged)], schema)


def test_rows_survive_the_topic_and_keys_are_stable(spark, base_settings) -> None:
    risk = risk_rows(_scores(spark, base_settings)).withColumn("scored_time", F.lit(datetime(2026, 3, 1, 10, 16)))
    raised = risk.where("alert_id is not null").toPandas()
    alerts = alert_events(spark, raised, base_settings, {"p1": {"ward": "W1", "care_team": {"nurse": "n1"}}})
    rec = lake_records(risk, alerts, base_settings).cache()
    t = base_settings.kafka.topics
    keys = {(r["topic"], r["key"]) for r in rec.collect()}
    assert keys == {(t.gold_scores, '["p1","o1"]'), (t.gold_scores, '["p2","discharged","1772360130123456"]'),
                    (t.gold_alerts, "a1")}
    assert lake_records(risk, alerts, base_settings).select("key").collect() == rec.select("key").collect()

    back = table_rows(rec, t.gold_scores, risk.schema)
    assertDataFrameEqual(back, risk)  # NaN slots, microseconds and nulls included
    feats = back.where("observation_id = 'o1'").first()["features"]
    assert feats[0] == 120.0 and math.isnan(feats[1]) and len(feats) == 120
    assertDataFrameEqual(table_rows(rec, t.gold_alerts, alert_schema(base_settings)), alerts)


def test_a_replayed_key_is_written_once_across_batches_and_restarts(spark, base_settings, tmp_path) -> None:
    """A scoring batch replayed after a crash republishes its keys, later: dropped then too."""
    t = base_settings.kafka.topics
    schema = "topic string, key binary, value binary, timestamp timestamp"
    src, seen = tmp_path / "src", []

    def run_once(rows) -> None:
        spark.createDataFrame(rows, schema).write.mode("append").parquet(str(src))
        q = (lake_input(spark.readStream.schema(schema).parquet(str(src)), base_settings).writeStream
             .option("checkpointLocation", str(tmp_path / "chk")).trigger(availableNow=True)
             .foreachBatch(lambda df, _bid: seen.extend((r["topic"], r["key"]) for r in df.collect())).start())
        q.awaitTermination()

    ts = datetime(2026, 3, 1, 10, 0)
    run_once([(t.gold_scores, b"p1:o1", b"{}", ts), (t.gold_scores, b"p1:o1", b"{}", ts),
              (t.gold_alerts, b"p1:o1", b"{}", ts), (t.gold_scores, b"p1:o2", b"{}", ts)])
    run_once([(t.gold_scores, b"p1:o1", b"{}", ts), (t.gold_scores, b"p1:o3", b"{}", ts)])  # replay + new
    assert sorted(seen) == sorted([(t.gold_scores, "p1:o1"), (t.gold_alerts, "p1:o1"), (t.gold_scores, "p1:o2"),
                                   (t.gold_scores, "p1:o3")])



def test_insert_only_merge_writes_each_key_once(spark, base_settings, tmp_path) -> None:
    """Beyond the dedupe window (a rebuilt checkpoint reading the topics again, a re-publish
    days later) a row whose key the table holds is not written again; new keys are, and an
    untimely reading does not take the key of the same observation's scored row."""
    from vitalwatch.pipeline.gold import ensure_gold
    from vitalwatch.pipeline.gold_lake import insert_new
    from vitalwatch.pipeline.lake import GOLD_ALERTS, GOLD_SCORES

    s = base_settings.with_updates(lake={"root": str(tmp_path / "lake"), "checkpoint_root": str(tmp_path / "chk")})
    ensure_gold(spark, s)
    risk = risk_rows(_scores(spark, s)).withColumn("scored_time", F.lit(datetime(2026, 3, 1, 10, 16)))
    path = s.table_path(*GOLD_SCORES)
    # through the topic's records, as gold_lake gets them (from_json types every array element nullable)
    via_topic = table_rows(lake_records(risk, None, s), s.kafka.topics.gold_scores,
                           spark.read.format("delta").load(path).schema)
    insert_new(spark, path, GOLD_SCORES, via_topic)
    later = risk.withColumn("scored_time", F.lit(datetime(2026, 3, 9)))  # the same rows, re-sent later
    untimely = (risk.where("observation_id = 'o1'")
                .withColumn("score_status", F.lit("untimely")).withColumn("effective_time", F.lit(datetime(2031, 1, 1)))
                .withColumn("effective_date", F.to_date("effective_time")))
    insert_new(spark, path, GOLD_SCORES, later.unionByName(later).unionByName(untimely))
    got = spark.read.format("delta").load(path)
    assert got.count() == 3
    assertDataFrameEqual(got.where("score_status != 'untimely'"), risk)  # the first copies, not the later ones
    assert got.where("score_status = 'untimely'").count() == 1

    raised = risk.where("alert_id is not null").toPandas()
    alerts = alert_events(spark, raised, s, {})
    apath = s.table_path(*GOLD_ALERTS)
    for _ in range(3):
        insert_new(spark, apath, GOLD_ALERTS, alerts.unionByName(alerts))
    assert [r.alert_id for r in spark.read.format("delta").load(apath).collect()] == ["a1"]


def test_a_discharge_lands_in_the_same_partition_on_replay(spark, base_settings) -> None:
    """``effective_date`` is a function of the row: a discharge's is its expiry's date, not today."""
    risk = risk_rows(_scores(spark, base_settings))
    got = {r.patient_id: r.effective_date for r in risk.collect()}
    assert str(got["p1"]) == "2026-03-01" and str(got["p2"]) == "2026-03-01"


def test_a_table_from_an_older_version_gets_the_new_columns(spark, tmp_path) -> None:
    """gold/risk_scores made before the shadow columns existed: ensure_table adds them (nullable),
    the rows it held keep their values, and a row with the new columns can be merged in."""
    from pyspark.sql import types as T

    from vitalwatch.pipeline.lake import ensure_table

    path = str(tmp_path / "risk_scores")
    old = T.StructType([T.StructField("patient_id", T.StringType()), T.StructField("risk_6h", T.DoubleType())])
    ensure_table(spark, path, old, [])
    spark.createDataFrame([("p1", 0.2)], old).write.format("delta").mode("append").save(path)
    new = T.StructType([*old.fields, T.StructField("shadow_model_version", T.StringType()),
                        T.StructField("shadow_risk_6h", T.DoubleType())])
    ensure_table(spark, path, new, [])
    ensure_table(spark, path, new, [])  # idempotent
    spark.createDataFrame([("p2", 0.3, "4", 0.35)], new).write.format("delta").mode("append").save(path)
    got = spark.read.format("delta").load(path)
    assert got.schema.fieldNames() == new.fieldNames()
    assertDataFrameEqual(got, spark.createDataFrame([("p1", 0.2, None, None), ("p2", 0.3, "4", 0.35)], new))
