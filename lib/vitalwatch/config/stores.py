"""Where data is kept: the Delta lake, MongoDB (operational views) and Elasticsearch (search)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator


class LakeConfig(BaseModel):
    """The Delta lake and the streaming queries' checkpoints."""

    root: str = Field(".work/lake", description="Delta lake root; a relative path is under the project root, a URI (s3a://, abfss://, hdfs://) is kept as is.")
    checkpoint_root: str = Field(".work/checkpoints", description="Where each streaming query keeps its checkpoint (one directory per query).")


class AnalystView(BaseModel):
    """One analysts' view (lib/vitalwatch/sinks/analyst_views.py): the collection it shows, the
    field holding the patient id (shown only as a pseudonym) and the fields it may show."""

    source: str = Field(description="The collection the view reads.")
    id_field: str = Field("patient_id", description="The field holding the patient id, shown only as a keyed pseudonym.")
    fields: list[str] = Field(description="The only fields the view shows.")


class MongoSecurityConfig(BaseModel):
    """Roles and users of the ``vitalwatch`` database (``vitalwatch mongo init``)."""

    roles: dict[str, dict[str, Any]] = Field(description="Custom roles and their privileges per collection.")
    users: dict[str, dict[str, Any]] = Field(description="Accounts: a role each and the environment variable holding the password (never the password).")
    pipeline_user: str = Field("vitalwatch_pipeline", description="The account the streaming jobs write with.")
    identifier_fields: list[str] = Field([], description="Direct identifiers that no analyst view may show.")
    analyst_views: dict[str, AnalystView] = Field({}, description="Analysts' pseudonymised, allow-listed views, by view name.")

    @model_validator(mode="after")
    def _no_identifier_in_a_view(self) -> MongoSecurityConfig:
        for name, v in self.analyst_views.items():
            bad = set(v.fields) & {*self.identifier_fields, v.id_field, "_id", "patient_id", "observation_id", "alert_id"}
            if bad:
                raise ValueError(f"mongo.security.analyst_views.{name} may not show {sorted(bad)}: "
                                 "identifiers and ids are never shown to analysts")
        return self


class MongoConfig(BaseModel):
    """MongoDB: the operational views the dashboard, API and notifier read."""

    uri: str | None = Field(None, description="Server URI; null: the local mongod started by `vitalwatch infra up`.")
    database: str = Field("vitalwatch", description="The database every collection lives in.")
    server_selection_timeout_ms: int = Field(10_000, ge=500, description="How long a pipeline write waits for a reachable server before the batch fails and its query restarts from the checkpoint (the driver's own default is 30 s per operation).")
    security: MongoSecurityConfig | None = Field(None, description="Roles, users and analysts' views, applied by `vitalwatch mongo init` and rendered for docker/ by `vitalwatch mongo script`: kept in conf/base.yaml (mongo.security) with the other access control.")
    truststore: str | None = Field(None, description="JVM trust store for the Spark connector, which ignores the URI's tlsCAFile: the JDK's CAs plus ca_file; null: built under infra.cache_dir from ca_file, the URI's tlsCAFile or (local) the local CA; on a cluster a file present on every node.")
    ca_file: str | None = Field(None, description="The CA that signed the server's certificate, added to the built trust store.")


class ElasticsearchConfig(BaseModel):
    """Elasticsearch: the searchable copies of vitals, scores and alerts."""

    nodes: str | None = Field(None, description="Node addresses; null: the local Elasticsearch started by `vitalwatch infra up`.")
    index_prefix: str = Field("vitalwatch", description="Every index vitalwatch writes is named <prefix>-<kind>.")
    ssl: bool = Field(False, description="HTTPS with the API key in api_key_file (docker/compose.yaml runs security); false: plain HTTP without credentials (the local development node).")
    ca_file: str | None = Field(None, description="The CA the REST calls check the server's certificate against.")
    truststore: str | None = Field(None, description="A JKS of the same CA for elasticsearch-spark (docker/entrypoint.sh builds it).")
    api_key_file: str | None = Field(None, description="The API key's `encoded` form, re-read on every write so a rotated key is picked up.")
