"""The gold tables' trip through Kafka records: rows come back equal (NaN features, microsecond
times, nulls), keys are stable and distinct, and a replayed key is written once."""

from __future__ import annotations

import math
from datetime import datetime

from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from vitalwatch.pipeline.gold import lake_records, risk_rows, scores_schema
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
               "kafka_timestamp": t, "silver_time": datetime(2026, 3, 1, 10, 15, 31, 654321)}
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

