from __future__ import annotations

import pyspark
import pytest

from tests.conftest import with_updates
from vitalwatch.config import Settings
from vitalwatch.packages import load_packages, parse_packages_file


def test_environment_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALWATCH__KAFKA__PARTITIONS", "7")
    monkeypatch.setenv("VITALWATCH__KAFKA__TOPICS__ALERTS", "custom.alerts")
    s = Settings()
    assert s.kafka.partitions == 7
    assert s.kafka.topics.alerts == "custom.alerts"
    assert s.kafka.topics.observations == "vitals.observations"  # untouched default


def test_cluster_profile_layers_over_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALWATCH_PROFILE", "cluster")
    s = Settings()
    assert s.profile == "cluster"
    assert s.kafka.bootstrap_servers == "kafka:9092"
    assert s.table_path("silver", "vital_signs") == "/data/lake/silver/vital_signs"
    assert s.fhir.accepted_statuses  # still from base.yaml


def test_unknown_profile_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALWATCH_PROFILE", "nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        Settings()


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALWATCH__KAFKA__PARTITIONS", "0")
    with pytest.raises(ValueError, match="partitions"):
        Settings()


def test_uri_lake_root_kept_for_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALWATCH__LAKE__ROOT", "s3a://bucket/lake/")
    assert Settings().table_path("bronze", "observations_raw") == "s3a://bucket/lake/bronze/observations_raw"


def test_pinned_spark_line_matches_installed_pyspark_and_connectors() -> None:
    pk = load_packages()
    assert pk.spark_version == pyspark.__version__
    arts = {p.split(":")[1]: p.split(":")[2] for p in pk.packages}
    assert arts["spark-sql-kafka-0-10_2.12"] == pk.spark_version
    assert {"delta-spark_2.12", "mongo-spark-connector_2.12", "elasticsearch-spark-30_2.12"} <= set(arts)


def test_packages_file_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="group:artifact:version"):
        parse_packages_file("spark=3.5.7\npackage=org.x:y\n")
    with pytest.raises(ValueError, match="unknown key"):
        parse_packages_file("spark=3.5.7\npackages=a:b:c\n")


@pytest.mark.parametrize(("uri", "want"), [
    ("mongodb://u:p@h:1/db", "mongodb://u:p@h:1/db?serverSelectionTimeoutMS=1500"),
    ("mongodb://u:p@h:1", "mongodb://u:p@h:1/?serverSelectionTimeoutMS=1500"),
    ("mongodb://h:1/db?authSource=x", "mongodb://h:1/db?authSource=x&serverSelectionTimeoutMS=1500"),
    ("mongodb://h/?serverSelectionTimeoutMS=5", "mongodb://h/?serverSelectionTimeoutMS=5"),  # the URI's own wins
])
def test_pipeline_mongo_uri_fails_fast_when_the_server_is_gone(uri: str, want: str, monkeypatch) -> None:
    from vitalwatch.sinks.mongo import pipeline_uri

    monkeypatch.setenv("VITALWATCH_MONGO_PIPELINE_PASSWORD", "pw")  # the local server's user

    s = with_updates(Settings(), mongo={"uri": uri, "server_selection_timeout_ms": 1500})
    assert pipeline_uri(s, "mongodb://127.0.0.1:27017") == want
    local = pipeline_uri(with_updates(s, mongo={"uri": None}), "mongodb://127.0.0.1:27017")
    assert local.startswith("mongodb://vitalwatch_pipeline:pw@127.0.0.1:27017/") and local.endswith("&serverSelectionTimeoutMS=1500")


def test_the_notifier_group_must_be_granted_to_its_kafka_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VITALWATCH__ALERTS__NOTIFIER__CONSUMER_GROUP", "vitalwatch-notifier-blue")
    assert Settings().alerts.notifier.consumer_group == "vitalwatch-notifier-blue"  # within the prefix
    monkeypatch.setenv("VITALWATCH__ALERTS__NOTIFIER__CONSUMER_GROUP", "notifications")
    with pytest.raises(ValidationError, match="not granted to the notifier"):
        Settings()
