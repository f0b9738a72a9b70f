"""Kafka: the topics, the client settings of the pipeline and who may do what on the broker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

KafkaRole = Literal["admin", "device", "pipeline", "notifier", "watch"]
KAFKA_ROLES: tuple[str, ...] = ("admin", "device", "pipeline", "notifier", "watch")


class TopicsConfig(BaseModel):
    """The topics vitalwatch reads and writes; elsewhere a topic is named by its key here."""

    observations: str = Field("vitals.observations", description="FHIR Observations and Bundles from devices: the pipeline's input.")
    alerts: str = Field("vitals.alerts", description="Alert events (raised, repeated, resolved), read by the notifier and `vitalwatch alerts watch`.")
    normal: str = Field("vitals.normal", description="Below-alert assessments, published when `alerts.publish_normal` is on.")
    gold_scores: str = Field("vitals.gold.risk_scores", description="Scored rows on their way to the gold risk_scores Delta table, written by the gold_lake stage so the alert path does no Delta commit.")
    gold_alerts: str = Field("vitals.gold.alerts", description="Alert events on their way to the gold alerts Delta table (gold_lake stage).")


class KafkaGrant(BaseModel):
    """What one principal may do: topics named by their key in ``kafka.topics``; consumer
    groups by exact name or by prefix. Anything not granted is refused by the broker."""

    read: list[str] = Field([], description="Topics (keys of kafka.topics) the principal may read.")
    write: list[str] = Field([], description="Topics (keys of kafka.topics) the principal may write.")
    groups: list[str] = Field([], description="Consumer groups, by exact name, the principal may use.")
    group_prefixes: list[str] = Field([], description="Consumer groups, by name prefix, the principal may use.")


class KafkaSecurityConfig(BaseModel):
    """Every client authenticates with SCRAM over TLS (SASL_SSL), each application as its own
    principal (``User:<role>``) holding only its own password; the broker's authorizer refuses
    what ``acls`` does not grant (docs/security.md)."""

    protocol: Literal["SASL_SSL"] = Field("SASL_SSL", description="Always SCRAM over TLS: no client talks to the broker in plain text.")
    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field("SCRAM-SHA-512", description="The SCRAM mechanism of every principal.")
    ca_file: str | None = Field(None, description="The CA that signed the broker's certificate; null: the local CA (<infra.work_dir>/tls/ca.crt).")
    password_dir: str | None = Field(None, description="A principal's password is $VITALWATCH_KAFKA_<ROLE>_PASSWORD, else the file <password_dir>/<role>, else (local profile) the one `vitalwatch infra up` wrote.")
    scram_iterations: int = Field(8192, ge=4096, le=16384, description="SCRAM iterations of the credentials vitalwatch creates.")
    acls: dict[KafkaRole, KafkaGrant] = Field({}, description="Per principal, what it may read, write and consume as: kept in conf/base.yaml with the other access control, so one file is reviewed; anything not granted is refused.")


class KafkaConfig(BaseModel):
    """The Kafka cluster and how the pipeline reads it."""

    bootstrap_servers: str | None = Field(None, description="Broker addresses; null: the local broker started by `vitalwatch infra up`.")
    topics: TopicsConfig = Field(TopicsConfig(), description="Topic names.")
    security: KafkaSecurityConfig = Field(KafkaSecurityConfig(), description="Authentication and access control of every client.")
    partitions: int = Field(4, ge=1, description="Partitions of the topics vitalwatch creates.")
    replication_factor: int = Field(1, ge=1, description="Replicas of the topics vitalwatch creates.")
    starting_offsets: str = Field("earliest", description="Where a query with no checkpoint starts reading: nothing already sent is skipped.")
    max_offsets_per_trigger: int = Field(200_000, ge=1, description="At most this many records per micro-batch, so a backlog is worked off in bounded batches.")
    fail_on_data_loss: bool = Field(True, description="A query fails rather than silently skipping records the broker no longer has.")
    observations_max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="The input topic's record cap, above fhir.max_message_bytes: an oversized message still reaches bronze and is quarantined with its reason instead of being refused at the producer.")

    @model_validator(mode="after")
    def _grants_name_topics(self) -> KafkaConfig:
        known = set(TopicsConfig.model_fields)
        for role, g in self.security.acls.items():
            unknown = set(g.read + g.write) - known
            if unknown:
                raise ValueError(f"kafka.security.acls.{role} names unknown topics {sorted(unknown)}; "
                                 f"topics are named by their key in kafka.topics: {sorted(known)}")
        return self
