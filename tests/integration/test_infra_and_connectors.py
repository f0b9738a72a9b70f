"""The real local servers and the four Spark connectors of the pinned line, each proven by a
write and a read: Kafka (spark-sql-kafka), Delta (delta-spark), MongoDB (mongo-spark-connector,
through --auth) and Elasticsearch (elasticsearch-spark)."""

from __future__ import annotations

import uuid

import pymongo
import pytest
import requests
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.infra.elasticsearch import spark_options
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.infra.kafka import ensure_topics
from vitalwatch.infra.manager import InfraManager

pytestmark = pytest.mark.integration


def test_all_servers_healthy_and_up_is_idempotent(base_settings: Settings, infra: dict) -> None:
    mgr = InfraManager(base_settings)
    before = {s.name: s for s in mgr.status()}
    assert all(s.healthy for s in before.values()), before
    assert all(s.endpoint and "@" not in s.endpoint for s in before.values()), "addresses, no credentials"
    state = mgr.up()
    assert {n: state[n]["pid"] for n in before} == {n: s.pid for n, s in before.items()}


def test_servers_are_what_the_readme_says(base_settings: Settings, infra: dict) -> None:
    es = requests.get(f"{infra['elasticsearch']['url']}/_nodes/_local", timeout=10).json()
    assert next(iter(es["nodes"].values()))["version"] == base_settings.infra.elasticsearch.version
    root = requests.get(infra["elasticsearch"]["url"], timeout=10).json()  # the restored root endpoint
    assert root["version"]["number"] == base_settings.infra.elasticsearch.version
    assert root["cluster_uuid"] not in ("", "_na_")
    client = pymongo.MongoClient(infra["mongo"]["uri"], serverSelectionTimeoutMS=5000)
    assert client.server_info()["version"] == "6.0.5"
    from confluent_kafka.admin import AdminClient

    md = AdminClient(InfraManager(base_settings).servers["kafka"].access(infra["kafka"], "admin").conf()).list_topics(timeout=10)
    topic = md.topics[base_settings.kafka.topics.observations]
    assert len(topic.partitions) == base_settings.kafka.partitions
    assert infra["kafka"]["server"].startswith(f"Apache Kafka {base_settings.infra.kafka.version} (KRaft")


def test_mongod_enforces_auth(infra: dict) -> None:
    port, tls = infra["mongo"]["port"], f"tls=true&tlsCAFile={infra['mongo']['ca_file']}"  # requireTLS
    anon = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true&{tls}", serverSelectionTimeoutMS=3000)
    with pytest.raises(pymongo.errors.OperationFailure):
        anon.vitalwatch.list_collection_names()
    bad = pymongo.MongoClient(f"mongodb://{infra['mongo']['admin_user']}:wrong@127.0.0.1:{port}/?authSource=admin&{tls}",
                              serverSelectionTimeoutMS=3000)
    with pytest.raises(pymongo.errors.OperationFailure, match="Authentication failed"):
        bad.admin.command("ping")


def _tree(pid: int):
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_servers_listen_on_loopback_only_and_data_stores_not_as_root(base_settings: Settings, infra: dict) -> None:
    """Elasticsearch runs without security (the Maven Central distribution has no x-pack
    security; docs/security.md), so it — and every local server — must listen on loopback
    only; mongod and Elasticsearch hold patient data and never run as root."""
    import os

    state = InfraManager(base_settings).read_state()  # now: the fault suite restarts servers
    for name in ("kafka", "mongo", "elasticsearch"):
        procs = _tree(state[name]["pid"])
        listening = [c.laddr for p in procs for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
        assert listening, name
        assert all(a.ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for a in listening), (name, listening)
        if os.geteuid() == 0 and name != "kafka":
            assert all(p.uids().effective != 0 for p in procs if p.name() != "setpriv"), (name, [p.uids() for p in procs])


def test_kafka_connector_write_and_read(spark: SparkSession, endpoints: Endpoints) -> None:
    topic = f"test.connector.{uuid.uuid4().hex[:8]}"
    admin = endpoints.kafka("admin")  # SASL_SSL with SCRAM through the Spark connector (test topic: admin's)
    ensure_topics(admin, [topic], 2, 1)
    df = spark.createDataFrame([(f"k{i}", f"v{i}") for i in range(100)], "key string, value string")
    df.write.format("kafka").options(**admin.spark_options()).option("topic", topic).save()
    back = (spark.read.format("kafka").options(**admin.spark_options())
            .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest")
            .load().select(F.col("key").cast("string"), F.col("value").cast("string")))
    assert sorted(map(tuple, back.collect())) == sorted(map(tuple, df.collect()))


def test_delta_write_read_and_time_travel(spark: SparkSession, lake_settings: Settings) -> None:
    path = lake_settings.table_path("test", "delta_probe")
    spark.range(10).write.format("delta").save(path)
    spark.range(10, 15).write.format("delta").mode("append").save(path)
    assert spark.read.format("delta").load(path).count() == 15
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 10


def test_mongo_connector_write_and_read_with_auth(spark: SparkSession, endpoints: Endpoints) -> None:
    coll = f"probe_{uuid.uuid4().hex[:8]}"
    df = spark.createDataFrame([(f"id{i}", i * 1.5) for i in range(50)], "_id string, x double")
    opts = {"connection.uri": endpoints.mongo_uri, "database": "vitalwatch_test", "collection": coll}
    df.write.format("mongodb").options(**opts).mode("append").save()
    df.write.format("mongodb").options(**opts).option("operationType", "replace").mode("append").save()
    back = spark.read.format("mongodb").options(**opts).load()
    assert back.count() == 50  # upsert by _id: the second write replaced, it did not add
    assert back.agg(F.sum("x")).first()[0] == pytest.approx(sum(i * 1.5 for i in range(50)))


def test_elasticsearch_connector_write_and_read(spark: SparkSession, endpoints: Endpoints) -> None:
    index = f"vitalwatch-probe-{uuid.uuid4().hex[:8]}"
    opts = spark_options(endpoints.es_nodes or "")
    df = spark.createDataFrame([(f"d{i}", f"p{i % 3}", float(i)) for i in range(30)], "id string, patient string, v double")
    for _ in range(2):  # the same ids twice: es.mapping.id makes the write idempotent
        (df.write.format("org.elasticsearch.spark.sql").options(**opts)
         .option("es.mapping.id", "id").option("es.write.operation", "upsert").mode("append").save(index))
    back = spark.read.format("org.elasticsearch.spark.sql").options(**opts).load(index)
    assert back.count() == 30
    assert sorted(r["id"] for r in back.select("id").collect()) == sorted(f"d{i}" for i in range(30))
