"""Poison rows never block a store (lib/vitalwatch/sinks/dead_letter.py), on the real local
MongoDB and Elasticsearch: rows refused for good land in ``gold/dead_letter`` with the server's
reason while the rest of the batch is written; a replay adds nothing; a store that cannot be
reached fails the batch and dead-letters nothing; the row-by-row fallback writes the very
documents the connectors write."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pymongo
import pytest
import requests
from bson.raw_bson import RawBSONDocument
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from vitalwatch.config import Settings
from vitalwatch.infra.elasticsearch import spark_options
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.pipeline.gold import ensure_gold
from vitalwatch.pipeline.lake import GOLD_ALERTS, GOLD_DEAD_LETTER, read_table
from vitalwatch.pipeline.report import lake_summary
from vitalwatch.pipeline.serving import start_serve_alerts
from vitalwatch.sinks import mongo, search
from vitalwatch.sinks.dead_letter import counts, ensure_dead_letter
from vitalwatch.sinks.events import alert_schema
from vitalwatch.sinks.isolate import es_isolate, mongo_isolate
from vitalwatch.sinks.rejections import SinkUnavailable, jvm_classes, store_unreachable
from vitalwatch.sinks.writers import Sinks

pytestmark = pytest.mark.integration
HUGE = 17 * 1024 * 1024  # over MongoDB's 16 MiB document limit
T0 = datetime(2026, 6, 1, 12, 0, 0, 123456)


def store_settings(lake_settings: Settings, endpoints: Endpoints, name: str) -> Settings:
    """A lake, a MongoDB database (its users from ``vitalwatch mongo init``) and Elasticsearch
    indices (templates applied) of this test's own."""
    tag = uuid.uuid4().hex[:8]
    s = lake_settings.with_updates(mongo={"database": f"vw_dl_{name}_{tag}", "server_selection_timeout_ms": 1500},
                     elasticsearch={"index_prefix": f"vw-dl-{name}-{tag}"})
    mongo.init(s, endpoints.mongo_uri or "")
    search.apply_templates(s, endpoints.es_nodes or "")
    return s


def alert(alert_id: str, level: str = "HIGH", **kw: object) -> dict:
    return {"schema_version": 1, "alert_id": alert_id, "kind": "raised", "level": level, "patient_id": "p1",
            "observation_id": f"o-{alert_id[:20]}", "effective_time": T0, "reasons": ["risk"], "late": False,
            "risk_1h": 0.5, "risk_6h": 0.6, "risk_24h": 0.7, "systolic": 150.0, "ward": "icu",
            "recipients": [{"role": "nurse", "id": "n1"}], "source": "server", "raised_time": T0, **kw}


def alerts_df(spark: SparkSession, s: Settings, rows: list[dict], partitions: int = 2) -> DataFrame:
    schema = alert_schema(s)
    return spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema) \
        .repartition(partitions)


def with_validator(s: Settings, endpoints: Endpoints, collection: str) -> None:
    """Schema validation on the collection (as an operator would add it): levels from a list."""
    db = pymongo.MongoClient(endpoints.mongo_uri)[s.mongo.database]
    db.command("collMod", collection, validator={"$jsonSchema": {"properties": {
        "level": {"enum": ["LOW", "MEDIUM", "HIGH", "CRITICAL"]}}}}, validationLevel="strict")


def es_ids(endpoints: Endpoints, index: str) -> set[str]:
    base = search.base_url(endpoints.es_nodes or "")
    requests.post(f"{base}/{index}/_refresh", timeout=30).raise_for_status()
    r = requests.get(f"{base}/{index}/_search", json={"size": 1000, "_source": False}, timeout=30).json()
    return {h["_id"] for h in r["hits"]["hits"]}


def mongo_ids(s: Settings, endpoints: Endpoints, collection: str) -> set[str]:
    return {d["_id"] for d in pymongo.MongoClient(endpoints.mongo_uri)[s.mongo.database][collection].find({}, {"_id": 1})}


def dead_letters(spark: SparkSession, s: Settings) -> DataFrame:
    return read_table(spark, s, GOLD_DEAD_LETTER)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poison_batch(spark: SparkSession, s: Settings) -> tuple[DataFrame, set[str]]:
    """Good alerts and four poison rows, ``systolic`` as text (so a row can carry a string
    where the index maps a number): a mapping conflict (ES), a level the collection's validator
    refuses (MongoDB), an id over ES's 512 bytes, a 17 MiB document (both)."""
    good = {f"good-{i}" for i in range(6)}
    rows = [alert(a) for a in sorted(good)]
    rows += [alert("bad-mapping"), alert("bad-level", level="BOGUS"), alert("L" * 600), alert("huge", ward="w" * HUGE)]
    df = alerts_df(spark, s, rows).withColumn(
        "systolic", F.when(F.col("alert_id") == "bad-mapping", F.lit("one-fifty")).otherwise(F.col("systolic").cast("string")))
    return df, good


def test_poison_rows_go_to_dead_letter_and_the_rest_is_written(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    s = store_settings(lake_settings, endpoints, "poison")
    with_validator(s, endpoints, "alerts")
    ensure_dead_letter(spark, s)
    sinks = Sinks(spark, s, endpoints, ("mongo", "elasticsearch"))
    batch, good = poison_batch(spark, s)
    index = search.index_name(s, "alerts")

    sinks.store_alerts_mongo(batch)  # does not raise
    sinks.store_alerts_es(batch)

    long_id = "L" * 600
    assert mongo_ids(s, endpoints, "alerts") == good | {"bad-mapping", long_id}
    assert es_ids(endpoints, index) == good | {"bad-level"}
    want = spark.createDataFrame([
        ("mongo:alerts", "bad-level", "DocumentValidationFailure(121)"),
        ("mongo:alerts", "huge", "document_too_large"),
        (f"elasticsearch:{index}", "bad-mapping", "document_parsing_exception"),
        (f"elasticsearch:{index}", long_id, "id_too_long"),
        (f"elasticsearch:{index}", "huge", "document_too_large"),
    ], "sink string, key string, error_type string")
    got = dead_letters(spark, s)
    assertDataFrameEqual(got.select("sink", "key", "error_type"), want)
    rows = {(r.sink.split(":")[0], r.key): r for r in got.collect()}
    assert "failed to parse field [systolic] of type [double]" in rows["elasticsearch", "bad-mapping"].reason
    assert "Document failed validation" in rows["mongo", "bad-level"].reason
    assert "value was not found in enum" in rows["mongo", "bad-level"].reason, "with the rule it failed"
    assert "600 bytes" in rows["elasticsearch", long_id].reason
    assert json.loads(rows["mongo", "bad-level"].payload)["level"] == "BOGUS"
    huge = rows["mongo", "huge"]
    assert huge.payload_bytes > HUGE and len(huge.payload.encode()) == s.gold.dead_letter_payload_bytes
    assert all(r.dead_time is not None and len(r.payload_sha256) == 64 for r in rows.values())

    sinks.store_alerts_mongo(batch)  # the batch replayed (the query failed after writing it)
    sinks.store_alerts_es(batch)
    assertDataFrameEqual(dead_letters(spark, s).select("sink", "key", "error_type"), want)
    assert mongo_ids(s, endpoints, "alerts") == good | {"bad-mapping", long_id}
    assert counts(spark, s) == {"mongo:alerts": 2, f"elasticsearch:{index}": 3}


def test_a_store_that_cannot_be_reached_fails_the_batch_and_dead_letters_nothing(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    s = store_settings(lake_settings, endpoints, "down")
    ensure_dead_letter(spark, s)
    batch, _good = poison_batch(spark, s)
    port = closed_port()
    for store, ep in (("elasticsearch", Endpoints("", endpoints.mongo_uri, f"127.0.0.1:{port}")),
                      ("mongo", Endpoints("", f"mongodb://127.0.0.1:{port}/", endpoints.es_nodes))):
        with pytest.raises(Exception) as err:
            sinks = Sinks(spark, s, ep, (store,))
            (sinks.store_alerts_es if store == "elasticsearch" else sinks.store_alerts_mongo)(batch)
        # the store's failure, recognised as such (not taken for poison rows and isolated)
        assert store_unreachable(jvm_classes(err.value)), jvm_classes(err.value)
        assert dead_letters(spark, s).count() == 0, f"{store} down: nothing is dead-lettered"
    # the row-by-row fallback reports an unreachable store as such, never as poison rows
    with pytest.raises(SinkUnavailable, match="ConnectionError"):
        es_isolate(batch.select("alert_id", "ward"), f"http://127.0.0.1:{port}", {}, "x", "alert_id", "elasticsearch:x",
                   1024)
    uri = f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=1000"
    with pytest.raises(SinkUnavailable, match="ServerSelectionTimeoutError"):
        mongo_isolate(batch.select(F.col("alert_id").alias("_id")), uri, "x", "y", "mongo:y", 1024)


def test_the_fallback_writes_the_connectors_documents(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    """Rows rewritten row by row are the documents the connectors write: same fields, same
    BSON types, same Elasticsearch source."""
    s = store_settings(lake_settings, endpoints, "same")
    rows = [("a", datetime(2026, 6, 1, 12, 30, 1, 123456, tzinfo=UTC), 0.1, 0.1, 2**40, 7, None, ["x", "y"],
             [("nurse", "n1")], {"k": 1.5}, date(2026, 6, 1), Decimal("1.25"), True)]
    schema = ("_id string, t timestamp, f float, d double, l bigint, i int, n string, a array<string>, "
              "r array<struct<role:string,id:string>>, m map<string,double>, dt date, dec decimal(10,2), b boolean")
    df = spark.createDataFrame(rows, schema)
    db, uri = s.mongo.database, mongo.pipeline_uri(s, endpoints.mongo_uri or "")
    df.write.format("mongodb").options(**mongo.connector_options(uri, db, "alerts")).mode("append").save()
    assert mongo_isolate(df, uri, db, "risk_scores", "mongo:risk_scores", 1024) == []
    raw = pymongo.MongoClient(endpoints.mongo_uri, document_class=RawBSONDocument)[db]
    assert raw.risk_scores.find_one({"_id": "a"}).raw == raw.alerts.find_one({"_id": "a"}).raw
    # a document over the BSON limit is refused before it is sent (it would fail its whole command)
    big = spark.createDataFrame([("big", "x" * HUGE), ("ok", "y")], "_id string, ward string").coalesce(1)
    refused = mongo_isolate(big, uri, db, "patients", "mongo:patients", 1024)
    assert [(r.key, r.error_type, r.payload_bytes > HUGE) for r in refused] == [("big", "BSONObjectTooLarge(10334)", True)]
    assert mongo_ids(s, endpoints, "patients") == {"ok"}

    es = df.withColumnRenamed("_id", "doc_id").drop("m", "dec")
    base = search.base_url(endpoints.es_nodes or "")
    first, second = f"{s.elasticsearch.index_prefix}-conn", f"{s.elasticsearch.index_prefix}-fall"
    (es.write.format("org.elasticsearch.spark.sql").options(**spark_options(endpoints.es_nodes or ""))
     .option("es.mapping.id", "doc_id").option("es.write.operation", "upsert").mode("append").save(first))
    assert es_isolate(es, base, {}, second, "doc_id", "elasticsearch:x", 1024) == []
    src = [requests.get(f"{base}/{i}/_doc/a", timeout=30).json()["_source"] for i in (first, second)]
    assert src[0] == src[1] and src[0]["t"] == 1780317001123 and "n" not in src[0]


def test_the_serving_query_dead_letters_and_goes_on(
        spark: SparkSession, lake_settings: Settings, endpoints: Endpoints) -> None:
    """``serve_alerts`` end to end: the table exists from the start, a poison row does not fail
    the query, ``vitalwatch show``'s summary counts it."""
    s = store_settings(lake_settings, endpoints, "serve")
    with_validator(s, endpoints, "alerts")
    s = s.with_updates(gold={"sinks": ["mongo"]})
    ensure_gold(spark, s)
    alerts_df(spark, s, [alert("ok-1"), alert("ok-2"), alert("poison", level="BOGUS")]) \
        .write.format("delta").mode("append").save(s.table_path(*GOLD_ALERTS))
    q = start_serve_alerts(spark, s, available_now=True)
    q.awaitTermination(300)
    assert q.exception() is None and not q.isActive
    assert mongo_ids(s, endpoints, "alerts") == {"ok-1", "ok-2"}
    assert counts(spark, s) == {"mongo:alerts": 1}
    from vitalwatch.pipeline.lake import ensure_lake

    ensure_lake(spark, s)
    summary = lake_summary(spark, s)
    assert summary["dead_letters"] == 1 and summary["dead_letters_by_sink"] == {"mongo:alerts": 1}
