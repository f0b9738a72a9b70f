"""Typed configuration: field defaults, then conf/base.yaml, then conf/<profile>.yaml, then
the environment.

Every default and its reason live on the models' fields (rendered as docs/configuration.md);
``conf/base.yaml`` keeps only what is better as data (access control), a profile file what
differs for it. Environment variables use the prefix ``VITALWATCH__`` and ``__`` between
levels, e.g. ``VITALWATCH__KAFKA__BOOTSTRAP_SERVERS=broker:9092``. Modules by topic:
``sources`` (YAML layers, paths), ``kafka``, ``stores`` (lake, MongoDB, Elasticsearch),
``spark`` (Spark, streaming, gold), ``fhir`` (input rules, simulator, replay), ``infra`` (local
servers), ``models`` (clinical, training), ``alerts``, ``services`` (dashboard, API, benchmark)
and ``settings`` (``Settings``, ``get_settings``).
"""

from __future__ import annotations

from vitalwatch.config.alerts import (
    ALERT_LEVELS,
    AlertPolicyConfig,
    AlertsConfig,
    NotifierConfig,
    PersistenceConfig,
    TrendConfig,
    WebhookConfig,
)
from vitalwatch.config.fhir import FhirConfig, ReplayConfig, SimulatorConfig
from vitalwatch.config.infra import (
    ElasticsearchServerConfig,
    InfraConfig,
    KafkaServerConfig,
    MongoServerConfig,
    TlsConfig,
)
from vitalwatch.config.kafka import (
    KAFKA_ROLES,
    KafkaConfig,
    KafkaGrant,
    KafkaRole,
    KafkaSecurityConfig,
    TopicsConfig,
)
from vitalwatch.config.models import (
    ClinicalConfig,
    EventEvaluationConfig,
    ModelsConfig,
    MonitoringConfig,
    RandomForestConfig,
    SplitConfig,
    SyntheticConfig,
)
from vitalwatch.config.services import (
    ApiConfig,
    BenchmarkConfig,
    DashboardConfig,
    DashboardRole,
    SignInConfig,
)
from vitalwatch.config.settings import Settings, get_settings
from vitalwatch.config.sources import (
    ENV_PREFIX,
    OVERLAY_ENV,
    conf_dir,
    load_yaml_layers,
    project_root,
)
from vitalwatch.config.spark import GoldConfig, SparkConfig, StreamingConfig
from vitalwatch.config.stores import (
    AnalystView,
    ElasticsearchConfig,
    LakeConfig,
    MongoConfig,
    MongoSecurityConfig,
)

__all__ = [
    "ALERT_LEVELS", "ENV_PREFIX", "KAFKA_ROLES", "OVERLAY_ENV",
    "AlertPolicyConfig", "AlertsConfig", "AnalystView", "ApiConfig", "BenchmarkConfig",
    "ClinicalConfig", "DashboardConfig", "DashboardRole", "ElasticsearchConfig",
    "ElasticsearchServerConfig", "EventEvaluationConfig", "FhirConfig", "GoldConfig", "InfraConfig",
    "KafkaConfig", "KafkaGrant", "KafkaRole", "KafkaSecurityConfig", "KafkaServerConfig", "LakeConfig",
    "ModelsConfig", "MongoConfig", "MongoSecurityConfig", "MongoServerConfig", "MonitoringConfig",
    "NotifierConfig", "PersistenceConfig", "RandomForestConfig", "ReplayConfig", "Settings",
    "SignInConfig", "SimulatorConfig", "SparkConfig", "SplitConfig", "StreamingConfig",
    "SyntheticConfig", "TlsConfig", "TopicsConfig", "TrendConfig", "WebhookConfig",
    "conf_dir", "get_settings", "load_yaml_layers", "project_root",
]
