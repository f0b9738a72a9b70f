"""Heart-disease triage (the e-health source project's use case 2): explicit label mapping,
Spark training, registry alias, and batch scoring routed to the real Kafka topics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.helpers import SHARED_DATA
from vitalwatch.models.triage import (
    FEATURES,
    TriageInputError,
    read_csv,
    score,
    train_triage,
    with_label,
)

HEART = SHARED_DATA / "heart-disease" / "heart.csv"


def test_label_mapping_is_explicit(spark):
    """target = 1 means no disease (UCI num = 0), so critical = 1 - target."""
    df = with_label(read_csv(spark, HEART))
    rows = df.select("target", "critical").distinct().collect()
    assert {(r.target, r.critical) for r in rows} == {(1, 0.0), (0, 1.0)}
    # the UCI original agrees: matching each row to its Cleveland row, critical ⇔ num > 0
    uci = spark.read.csv(str(SHARED_DATA / "heart-disease" / "heart_disease_uci.csv"), header=True, inferSchema=True)
    keys = ["age", "trestbps", "chol", "oldpeak"]
    m = df.join(uci.where("dataset = 'Cleveland'").withColumnRenamed("thalch", "thalach_uci"), keys)
    m = m.where("thalach = thalach_uci")
    assert m.count() == 303
    assert m.where("(critical = 1) != (num > 0)").count() == 0


@pytest.fixture(scope="module")
def trained(spark, model_settings):
    return train_triage(spark, model_settings, HEART)


def test_train_registers_champion(trained, model_settings):
    from vitalwatch.models.registry import client

    assert trained.promoted and trained.version == "1"
    assert trained.metrics["auroc"] > 0.8  # the classic Cleveland task: well above chance
    assert 0 < trained.metrics["n"] < 303
    mv = client(model_settings).get_model_version_by_alias(model_settings.models.triage_model_name, "champion")
    assert str(mv.version) == "1"


def test_score_routes_rows_to_alerts_or_normal(trained, spark, model_settings, endpoints, tmp_path):
    from vitalwatch.models.triage import publish

    unlabelled = tmp_path / "incoming.csv"
    with open(HEART) as src, open(unlabelled, "w", newline="") as dst:
        r = csv.DictReader(src)
        w = csv.DictWriter(dst, fieldnames=FEATURES)
        w.writeheader()
        for row in r:
            w.writerow({k: row[k] for k in FEATURES})
    topics = model_settings.kafka.topics
    before = {t: _end(endpoints.kafka("admin"), t) for t in (topics.alerts, topics.normal)}
    scored = score(spark, model_settings, unlabelled)
    pred = scored.select("row_index", "prediction", "topic").toPandas()
    assert len(pred) == 303 and pred.row_index.tolist() == list(range(303))
    assert set(pred.topic) == {topics.alerts, topics.normal}
    counts = publish(scored, endpoints.kafka("pipeline"))
    assert counts == pred.topic.value_counts().to_dict()
    got = {t: _read(endpoints.kafka("admin"), t, before[t]) for t in before}
    alerts = [json.loads(v) for v in got[topics.alerts]]
    normal = [json.loads(v) for v in got[topics.normal]]
    assert len(alerts) == counts[topics.alerts] and len(normal) == counts[topics.normal]
    assert {a["classification"] for a in alerts} == {"critical"} and {n["classification"] for n in normal} == {"normal"}
    assert all(a["model"] == f"{model_settings.models.triage_model_name}/1" for a in alerts)
    assert all(a["probability_critical"] >= 0.5 for a in alerts) and all(n["probability_critical"] <= 0.5 for n in normal)
    assert len({e["event_id"] for e in alerts + normal}) == 303
    # a second scoring of the same file gives the same ids (a replay creates no new identities)
    again = score(spark, model_settings, unlabelled).select("key").toPandas().key
    assert set(again) == {e["event_id"] for e in alerts + normal}


def test_score_rejects_csv_without_features(spark, model_settings, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("age,sex\n63,1\n")
    with pytest.raises(TriageInputError, match="missing columns"):
        score(spark, model_settings, Path(bad))


def _end(access, topic: str) -> dict[int, int]:
    c = Consumer(access.conf(**{"group.id": "triage-test-offsets"}))
    md = c.list_topics(topic, timeout=10).topics[topic]
    out = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}
    c.close()
    return out


def _read(access, topic: str, start: dict[int, int]) -> list[bytes]:
    c = Consumer(access.conf(**{"group.id": "triage-test-read", "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, p, o) for p, o in start.items()])
    end = _end(access, topic)
    want = sum(end[p] - start[p] for p in start)
    out: list[bytes] = []
    while len(out) < want:
        m = c.poll(10)
        assert m is not None, f"only {len(out)} of {want} messages on {topic}"
        if m.error() is None:
            out.append(m.value())
    c.close()
    return out
