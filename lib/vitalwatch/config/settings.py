"""``Settings``: the whole configuration of one process, and the process-wide instance."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vitalwatch.config.alerts import AlertsConfig
from vitalwatch.config.fhir import FhirConfig, ReplayConfig, SimulatorConfig
from vitalwatch.config.infra import InfraConfig
from vitalwatch.config.kafka import KafkaConfig
from vitalwatch.config.models import ClinicalConfig, ModelsConfig
from vitalwatch.config.services import ApiConfig, BenchmarkConfig, DashboardConfig
from vitalwatch.config.sources import ENV_PREFIX, YamlSource, project_root
from vitalwatch.config.spark import GoldConfig, SparkConfig, StreamingConfig
from vitalwatch.config.stores import ElasticsearchConfig, LakeConfig, MongoConfig


class Settings(BaseSettings):
    """The whole configuration of one vitalwatch process: the defaults below, then
    conf/base.yaml, then conf/<profile>.yaml, then the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    profile: str = Field("local", description="The profile in force: $VITALWATCH_PROFILE, naming conf/<profile>.yaml.")
    lake: LakeConfig = Field(LakeConfig(), description="The Delta lake and checkpoints.")
    kafka: KafkaConfig = Field(KafkaConfig(), description="Kafka topics, clients and access control.")
    mongo: MongoConfig = Field(MongoConfig(), description="MongoDB, the operational store.")
    elasticsearch: ElasticsearchConfig = Field(ElasticsearchConfig(), description="Elasticsearch, the search store.")
    spark: SparkConfig = Field(SparkConfig(), description="The Spark session.")
    streaming: StreamingConfig = Field(StreamingConfig(), description="Triggers, pools and restarts of the streaming queries.")
    fhir: FhirConfig = Field(FhirConfig(), description="The silver input rules.")
    infra: InfraConfig = Field(InfraConfig(), description="The local servers.")
    simulator: SimulatorConfig = Field(SimulatorConfig(), description="The device simulator.")
    replay: ReplayConfig = Field(ReplayConfig(), description="Replay of recorded vitals.")
    clinical: ClinicalConfig = Field(ClinicalConfig(), description="Clinical definitions.")
    models: ModelsConfig = Field(ModelsConfig(), description="Model training, registry and monitoring.")
    gold: GoldConfig = Field(GoldConfig(), description="The scoring stream.")
    benchmark: BenchmarkConfig = Field(BenchmarkConfig(), description="The benchmark job.")
    alerts: AlertsConfig = Field(AlertsConfig(), description="Alert policies, routing and webhooks.")
    dashboard: DashboardConfig = Field(DashboardConfig(), description="The clinicians' dashboard.")
    api: ApiConfig = Field(ApiConfig(), description="The REST and FHIR API.")

    def with_updates(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some fields of some sections replaced, at any depth:
        ``s.with_updates(kafka={"topics": {"alerts": "t"}})`` keeps the other topics.

        A dict given for a field that holds a model updates that model's fields; for any other
        field (a mapping such as ``stage_triggers`` included) it is the new value. Copied, not
        validated again: callers pass values of the fields' types."""
        return _updated(self, sections)

    @model_validator(mode="after")
    def _notifier_group_granted(self) -> Settings:
        """The notifier's consumer group must be one its Kafka principal is granted: otherwise
        the broker refuses it and no webhook is sent."""
        grant, group = self.kafka.security.acls.get("notifier"), self.alerts.notifier.consumer_group
        if grant is not None and group not in grant.groups and not any(group.startswith(p) for p in grant.group_prefixes):
            raise ValueError(f"alerts.notifier.consumer_group {group!r} is not granted to the notifier in "
                             f"kafka.security.acls.notifier (groups {grant.groups}, prefixes {grant.group_prefixes})")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        profile = os.environ.get("VITALWATCH_PROFILE")
        return (init_settings, env_settings, YamlSource(settings_cls, profile), file_secret_settings)

    # -- paths --------------------------------------------------------------------------
    def path(self, p: str) -> Path:
        """Resolve a configured path: ``~`` expanded, relative ones under the project root."""
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else (project_root() / q).resolve()

    def table_path(self, layer: str, name: str) -> str:
        """Location of a Delta table, e.g. ``table_path("silver", "vital_signs")``.

        A URI root (s3a://, abfss://, hdfs://) is kept as is for clusters."""
        root = self.lake.root
        if "://" in root:
            return f"{root.rstrip('/')}/{layer}/{name}"
        return str(self.path(root) / layer / name)

    def checkpoint_path(self, query: str) -> str:
        """Location of a streaming query's checkpoint, under ``lake.checkpoint_root``."""
        root = self.lake.checkpoint_root
        if "://" in root:
            return f"{root.rstrip('/')}/{query}"
        return str(self.path(root) / query)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own with ``Settings()``)."""
    return Settings()


def _updated(model: BaseModel, fields: dict[str, Any]) -> Any:
    """``model`` with ``fields`` replaced; a dict for a field holding a model recurses into it."""
    upd = {k: _updated(getattr(model, k), v) if isinstance(v, dict) and isinstance(getattr(model, k, None), BaseModel)
           else v for k, v in fields.items()}
    return model.model_copy(update=upd)
