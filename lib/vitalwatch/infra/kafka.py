"""A real Apache Kafka broker in KRaft mode (combined broker + controller, no ZooKeeper),
run with ``java`` from the Apache Kafka jars on Maven Central."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from vitalwatch.config import Settings
from vitalwatch.infra import artifacts
from vitalwatch.infra.kafka_access import KafkaAccess, ensure_password_file, resolve_password
from vitalwatch.infra.kafka_acls import ensure_principals, grant, principals
from vitalwatch.infra.process import (
    InfraError,
    LocalServer,
    pick_port,
    start_detached,
    stop_pid,
    wait_until,
    write_private,
)

LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=WARN
"""


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise InfraError("java (17+) is not on PATH; the Kafka broker and Spark need it")
    return java


class KafkaServer(LocalServer):
    """The broker with one client listener, SASL_SSL (SCRAM, the local CA's ``kafka``
    certificate), which the broker also uses for itself (as ``admin``); the controller listener
    is SASL_PLAINTEXT (PLAIN, a password only the broker holds) on loopback. No listener takes
    an unauthenticated client, and the ``StandardAuthorizer`` refuses what
    ``kafka.security.acls`` does not grant."""

    name = "kafka"
    log_name = "broker.log"

    def __init__(self, settings: Settings, work: Path) -> None:
        super().__init__(settings, work)
        self.cfg = settings.infra.kafka
        self.credentials = self.dir / "credentials"

    def prepare(self) -> None:
        artifacts.kafka_libs(self.s.path(self.s.infra.cache_dir), self.cfg.version, self.cfg.scala)

    def _tls(self) -> tuple[Path, Path]:
        """The broker's key store (certificate + PKCS#8 key, one PEM) and the CA."""
        tls = self.dir.parent / "tls"
        keystore, ca = tls / "kafka.pem", tls / "ca.crt"
        if not keystore.exists() or not ca.exists():
            raise InfraError(f"no TLS certificates under {tls}: `vitalwatch infra up` creates them")
        return keystore.resolve(), ca.resolve()

    def _properties(self, port: int, cport: int, data: Path, admin_pw: str, controller_pw: str) -> str:
        keystore, ca = self._tls()
        sec = self.s.kafka.security
        mech = sec.mechanism.lower()
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{self.host}:{cport}",
            f"listeners=CLIENT://{self.host}:{port},CONTROLLER://{self.host}:{cport}",
            f"advertised.listeners=CLIENT://{self.host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name=CLIENT",
            f"sasl.enabled.mechanisms={sec.mechanism}",
            f"sasl.mechanism.inter.broker.protocol={sec.mechanism}",
            f'listener.name.client.{mech}.sasl.jaas.config={scram} required username="admin" password="{admin_pw}";',
            "listener.name.client.ssl.keystore.type=PEM",
            f"listener.name.client.ssl.keystore.location={keystore}",
            "listener.name.client.ssl.truststore.type=PEM",
            f"listener.name.client.ssl.truststore.location={ca}",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f'listener.name.controller.plain.sasl.jaas.config={plain} required username="controller" '
            f'password="{controller_pw}" user_controller="{controller_pw}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            "super.users=User:admin;User:controller",
            f"log.dirs={data}",
            f"num.partitions={self.s.kafka.partitions}",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "log.message.timestamp.type=LogAppendTime",  # the broker's clock, never a producer's
            "",
        ])

    def start(self, prev: dict[str, Any]) -> dict[str, Any]:
        libs = artifacts.kafka_libs(self.s.path(self.s.infra.cache_dir), self.cfg.version, self.cfg.scala)
        port = pick_port(self.cfg.port, prev.get("port"), self.host)
        cport = pick_port(self.cfg.controller_port, prev.get("controller_port"), self.host)
        if cport == port:
            cport = pick_port(0, None, self.host)
        data = self.dir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        formatted = (data / "meta.properties").exists()
        if formatted and not (self.credentials / "admin").exists():
            raise InfraError(f"the Kafka data under {data} predates authentication (no admin credentials in "
                             f"{self.credentials}); stop the servers and remove {self.dir} to start afresh")
        admin_pw = ensure_password_file(self.credentials, "admin")
        props = self.dir / "server.properties"  # holds the broker's own passwords: 0600
        write_private(props, self._properties(port, cport, data, admin_pw,
                                               ensure_password_file(self.credentials, "controller")))
        (self.dir / "log4j.properties").write_text(LOG4J)
        cp = f"{libs}/*"
        jvm = [_java(), f"-Xms{self.cfg.heap}", f"-Xmx{self.cfg.heap}", "-XX:+UseG1GC",
               "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
               "-cp", cp]
        cluster_id = prev.get("cluster_id")
        if not formatted:
            cluster_id = _random_cluster_id()
            self._format(jvm, props, cluster_id, admin_pw)
        pid = start_detached([*jvm, "kafka.Kafka", str(props)], log_file=self.log_file,
                             pid_file=self.pid_file)
        state = {"pid": pid, "port": port, "controller_port": cport, "cluster_id": cluster_id,
                 "bootstrap_servers": f"{self.host}:{port}", "endpoint": f"sasl_ssl://{self.host}:{port}",
                 "ca_file": str(self.dir.parent / "tls" / "ca.crt"), "credentials_dir": str(self.credentials),
                 "log": str(self.log_file),
                 "server": f"Apache Kafka {self.cfg.version} (KRaft, Maven Central jars), SASL_SSL/SCRAM, ACLs"}
        try:
            wait_until(lambda: self.healthy(state), timeout_s=self.s.infra.start_timeout_s,
                       what="Kafka broker", pid=pid, log_file=self.log_file)
            admin = self.access(state, "admin")
            ensure_principals(admin, self.s, {r: ensure_password_file(self.credentials, r) for r in principals(self.s)})
            self.ensure_topics(admin)
        except BaseException:
            stop_pid(pid)  # not recorded in the state yet: never leave it running untracked
            raise
        return state

    def _format(self, jvm: list[str], props: Path, cluster_id: str, admin_pw: str) -> None:
        """Format the log directory with the admin's SCRAM credential, passed in a 0600
        arguments file (``@file``), never on the command line."""
        sec = self.s.kafka.security
        args = self.dir / "format.args"
        write_private(args, "\n".join(["format", f"--cluster-id={cluster_id}", "-c", str(props), "--add-scram",
                                        f"{sec.mechanism}=[name=admin,iterations={sec.scram_iterations},"
                                        f"password={admin_pw}]", ""]))
        try:
            out = subprocess.run([*jvm, "kafka.tools.StorageTool", f"@{args}"], capture_output=True, text=True)
        finally:
            args.unlink(missing_ok=True)
        if out.returncode != 0:
            raise InfraError(f"Kafka storage format failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")

    def access(self, state: dict[str, Any], role: str) -> KafkaAccess:
        sec = self.s.kafka.security
        return KafkaAccess(state["bootstrap_servers"], role,
                           resolve_password(role, sec, state.get("credentials_dir"), local_first=True),
                           ca_file=state.get("ca_file"), mechanism=sec.mechanism, protocol=sec.protocol)

    def healthy(self, state: dict[str, Any]) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.access(state, "admin").conf(**{"socket.timeout.ms": 3000}))
        md = admin.list_topics(timeout=3)
        return bool(md.brokers)

    def ensure_topics(self, admin: KafkaAccess) -> None:
        ensure_topics(admin, list(self.s.kafka.topics.model_dump().values()),
                      self.s.kafka.partitions, self.s.kafka.replication_factor, topic_configs(self.s))


def _random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as StorageTool)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# Every topic stamps records with the broker's clock: the pipeline's time bounds and lateness
# rest on arrival times no producer can set (docs/requirements.md §3).
TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-topic settings beyond :data:`TOPIC_CONFIG`: the input topic takes values up to
    ``kafka.observations_max_message_bytes``, so an oversized message reaches bronze and gets
    its quarantine reason (``message_too_large``) instead of vanishing at the producer."""
    return {settings.kafka.topics.observations: {"max.message.bytes": str(settings.kafka.observations_max_message_bytes)}}


def ensure_topics(admin_access: KafkaAccess, names: list[str], partitions: int, replication: int,
                  configs: dict[str, dict[str, str]] | None = None) -> None:
    """Create missing topics with :data:`TOPIC_CONFIG` (plus ``configs`` per topic), and set
    those on existing ones that lack them (idempotent)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    configs = configs or {}
    admin = AdminClient(admin_access.conf())
    existing = set(admin.list_topics(timeout=10).topics)
    new = [NewTopic(t, partitions, replication, config={**TOPIC_CONFIG, **configs.get(t, {})})
           for t in names if t not in existing]
    for topic, fut in (admin.create_topics(new, operation_timeout=30).items() if new else []):
        try:
            fut.result(30)
        except Exception as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise InfraError(f"creating topic {topic}: {e}") from e
    _set_configs(admin, {t: {**TOPIC_CONFIG, **configs.get(t, {})} for t in names if t in existing})


def provision(admin_access: KafkaAccess, settings: Settings) -> None:
    """The configured topics exist with their settings and the configured principals may use
    them (``kafka.security.acls``, additive): what ``infra up`` does for the default topics, for
    any topic names ``settings`` holds. Needs the admin principal."""
    ensure_topics(admin_access, list(settings.kafka.topics.model_dump().values()), settings.kafka.partitions,
                  settings.kafka.replication_factor, topic_configs(settings))
    grant(admin_access, settings)


def _set_configs(admin, wanted: dict[str, dict[str, str]]) -> None:
    """Topics created before these settings (or by someone else) get them."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    if not wanted:
        return
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in wanted])
    stale = []
    for res, fut in described.items():
        entries, want = fut.result(30), wanted[res.name]
        if any(k not in entries or entries[k].value != v for k, v in want.items()):
            stale.append(ConfigResource(ConfigResource.Type.TOPIC, res.name, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in want.items()]))
    for res, fut in (admin.incremental_alter_configs(stale).items() if stale else []):
        try:
            fut.result(30)
        except Exception as e:
            raise InfraError(f"setting {wanted[res.name]} on topic {res.name}: {e}") from e
