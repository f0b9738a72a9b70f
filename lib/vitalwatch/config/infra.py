"""The local servers `vitalwatch infra up` runs (Kafka, MongoDB, Elasticsearch) and their CA."""

from __future__ import annotations

from pydantic import BaseModel, Field


class KafkaServerConfig(BaseModel):
    """The local Kafka broker (KRaft)."""

    version: str = Field("3.9.1", description="Kafka release downloaded and run.")
    scala: str = Field("2.13", description="The Scala build of that release.")
    heap: str = Field("512m", description="The broker JVM's heap.")
    port: int = Field(0, description="Client port; 0: a free port.")
    controller_port: int = Field(0, description="KRaft controller port; 0: a free port.")


class MongoServerConfig(BaseModel):
    """The local mongod."""

    port: int = Field(0, description="Port; 0: a free port.")
    admin_user: str = Field("vitalwatch_admin", description="The administrator account `infra up` creates.")
    run_as_user: str = Field("nobody", description="Started by root, mongod runs as this user: it holds patient data and never runs as root.")
    tls: bool = Field(True, description="--tlsMode requireTLS with the local CA's `mongo` certificate; clients verify it against the CA (the URI carries tls=true&tlsCAFile=<work_dir>/tls/ca.crt).")


class ElasticsearchServerConfig(BaseModel):
    """The local Elasticsearch node."""

    version: str = Field("8.19.21", description="Elasticsearch release downloaded and run.")
    heap: str = Field("512m", description="The node JVM's heap.")
    port: int = Field(0, description="HTTP port; 0: a free port.")
    transport_port: int = Field(0, description="Transport port; 0: a free port.")
    run_as_user: str = Field("nobody", description="Started by root, Elasticsearch runs as this user (it refuses to run as root).")


class TlsConfig(BaseModel):
    """The local certificate authority (vitalwatch.infra.tls) under <work_dir>/tls: `infra up`
    creates it, `infra certs --rotate` renews it."""

    ca_days: int = Field(1825, ge=1, description="The CA certificate's validity.")
    cert_days: int = Field(365, ge=1, description="A server or client certificate's validity.")
    renew_before_days: int = Field(30, ge=0, description="`infra up` renews certificates this close to expiry.")
    hosts: list[str] = Field(["localhost", "127.0.0.1"], description="Names every server certificate holds.")
    servers: list[str] = Field(["kafka", "mongo", "elasticsearch", "dashboard", "api", "mlflow"], description="Servers that get a certificate.")
    clients: list[str] = Field(["pipeline", "notifier", "dashboard-client", "device", "watch", "admin"], description="Clients that get a certificate.")


class InfraConfig(BaseModel):
    """Local servers: where they keep their data, what they run, how long they may take."""

    work_dir: str = Field(".work/infra", description="Server data, logs, pid files and credentials.")
    cache_dir: str = Field("~/.cache/vitalwatch", description="Downloaded artifacts (Maven jars, server archives), shared by checkouts.")
    host: str = Field("127.0.0.1", description="The address local servers listen on.")
    start_timeout_s: int = Field(180, ge=10, description="A server not ready this long after start is an error.")
    compose_version: str = Field("v2.40.3", description="Docker Compose CLI plugin built from the Go module proxy when the docker client lacks one (`vitalwatch infra fetch --compose`), to validate docker/compose.yaml without an engine.")
    kafka: KafkaServerConfig = Field(KafkaServerConfig(), description="The local Kafka broker.")
    mongo: MongoServerConfig = Field(MongoServerConfig(), description="The local mongod.")
    elasticsearch: ElasticsearchServerConfig = Field(ElasticsearchServerConfig(), description="The local Elasticsearch node.")
    tls: TlsConfig = Field(TlsConfig(), description="The local certificate authority.")
