from __future__ import annotations

import types
import typing
from pathlib import Path

import pyspark
import pytest
import yaml
from pydantic import BaseModel

from vitalwatch.config import Settings, conf_dir
from vitalwatch.packages import load_packages, parse_packages_file


def test_environment_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALWATCH__KAFKA__PARTITIONS", "7")
    monkeypatch.setenv("VITALWATCH__KAFKA__TOPICS__ALERTS", "custom.alerts")
    s = Settings()
    assert s.kafka.partitions == 7
    assert s.kafka.topics.alerts == "custom.alerts"
    assert s.kafka.topics.observations == "vitals.observations"  # untouched default


def test_with_updates_reaches_into_nested_sections_and_replaces_mappings() -> None:
    s = Settings()
    t = s.with_updates(kafka={"topics": {"alerts": "t.alerts"}, "partitions": 9},
                       models={"random_forest": {"enabled": False}, "xgboost": {"max_depth": 2}},
                       streaming={"stage_triggers": {"silver": "7 seconds"}})
    assert (t.kafka.topics.alerts, t.kafka.partitions) == ("t.alerts", 9)
    assert t.kafka.topics.observations == s.kafka.topics.observations, "the other topics are kept"
    assert not t.models.random_forest.enabled and t.models.random_forest.num_trees == s.models.random_forest.num_trees
    assert t.models.xgboost == {"max_depth": 2}, "a mapping field is replaced, not merged"
    assert t.streaming.stage_triggers == {"silver": "7 seconds"}
    assert s.kafka.topics.alerts != "t.alerts" and s.models.random_forest.enabled, "the original is unchanged"


def test_cluster_profile_layers_over_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALWATCH_PROFILE", "cluster")
    s = Settings()
    assert s.profile == "cluster"
    assert s.kafka.bootstrap_servers == "kafka:9092"
    assert s.table_path("silver", "vital_signs") == "/data/lake/silver/vital_signs"
    assert s.fhir.accepted_statuses  # what the profile does not set keeps its default


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

    s = Settings().with_updates(mongo={"uri": uri, "server_selection_timeout_ms": 1500})
    assert pipeline_uri(s, "mongodb://127.0.0.1:27017") == want
    local = pipeline_uri(s.with_updates(mongo={"uri": None}), "mongodb://127.0.0.1:27017")
    assert local.startswith("mongodb://vitalwatch_pipeline:pw@127.0.0.1:27017/") and local.endswith("&serverSelectionTimeoutMS=1500")


def test_the_notifier_group_must_be_granted_to_its_kafka_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VITALWATCH__ALERTS__NOTIFIER__CONSUMER_GROUP", "vitalwatch-notifier-blue")
    assert Settings().alerts.notifier.consumer_group == "vitalwatch-notifier-blue"  # within the prefix
    monkeypatch.setenv("VITALWATCH__ALERTS__NOTIFIER__CONSUMER_GROUP", "notifications")
    with pytest.raises(ValidationError, match="not granted to the notifier"):
        Settings()


# -- one home per default: the models' fields ----------------------------------------------
# What conf/base.yaml may hold: the access control, kept there as data (everything else is a
# field default on the models, explained by its description).
BASE_YAML_KEEPS = {("kafka", "security", "acls"), ("mongo", "security"), ("dashboard", "roles")}


def _models(tp: object) -> typing.Iterator[type[BaseModel]]:
    """The pydantic models a field's type names, also inside lists, dicts and unions."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield tp
    elif typing.get_origin(tp) in (list, dict, typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            yield from _models(arg)


def _all_models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [Settings]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.append(m)
            todo += [sub for f in m.model_fields.values() for sub in _models(f.annotation)]
    return seen


def test_every_setting_has_a_description_for_the_configuration_page() -> None:
    missing = [f"{m.__name__}.{name}" for m in _all_models() for name, f in m.model_fields.items()
               if not (f.description or "").strip()]
    assert not missing, f"settings without a description (docs/configuration.md): {missing}"


def test_every_section_has_defaults_so_no_yaml_value_is_needed(monkeypatch, tmp_path: Path) -> None:
    """With an empty base.yaml, settings load, and differ from those of the real base.yaml only
    in what base.yaml is meant to hold: a default lost from a model fails here."""
    required = [f"Settings.{n}" for n, f in Settings.model_fields.items() if f.is_required()]
    assert not required
    base = yaml.safe_load((conf_dir() / "base.yaml").read_text()) or {}
    (tmp_path / "base.yaml").write_text("")
    monkeypatch.setenv("VITALWATCH_CONF_DIR", str(tmp_path))
    monkeypatch.delenv("VITALWATCH_PROFILE", raising=False)
    monkeypatch.delenv("VITALWATCH_CONFIG_OVERLAY", raising=False)
    defaults = Settings().model_dump()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    loaded = Settings().model_dump()
    for *parents, key in BASE_YAML_KEEPS:
        for d in (defaults, loaded):
            for p in parents:
                d = d[p]
            d.pop(key)
    assert defaults == loaded


def _leaves(d: dict, prefix: tuple[str, ...] = ()) -> typing.Iterator[tuple[str, ...]]:
    for k, v in d.items():
        if (*prefix, k) in BASE_YAML_KEEPS or not isinstance(v, dict):
            yield (*prefix, k)
        else:
            yield from _leaves(v, (*prefix, k))


def test_base_yaml_holds_no_default_only_the_access_control() -> None:
    """One home per default: base.yaml repeats no field default (with its own comment)."""
    base = yaml.safe_load((conf_dir() / "base.yaml").read_text()) or {}
    assert set(_leaves(base)) <= BASE_YAML_KEEPS
