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
from vitalwatch.infra.process import InfraError, LocalServer, pick_port, start_detached, wait_until

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
    name = "kafka"
    log_name = "broker.log"

    def __init__(self, settings: Settings, work: Path) -> None:
        super().__init__(settings, work)
        self.cfg = settings.infra.kafka

    def prepare(self) -> None:
        artifacts.kafka_libs(self.s.path(self.s.infra.cache_dir), self.cfg.version, self.cfg.scala)

    def start(self, prev: dict[str, Any]) -> dict[str, Any]:
        libs = artifacts.kafka_libs(self.s.path(self.s.infra.cache_dir), self.cfg.version, self.cfg.scala)
        port = pick_port(self.cfg.port, prev.get("port"), self.host)
        cport = pick_port(self.cfg.controller_port, prev.get("controller_port"), self.host)
        if cport == port:
            cport = pick_port(0, None, self.host)
        data = self.dir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{self.host}:{cport}",
            f"listeners=PLAINTEXT://{self.host}:{port},CONTROLLER://{self.host}:{cport}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
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
        ]))
        (self.dir / "log4j.properties").write_text(LOG4J)
        cp = f"{libs}/*"
        jvm = [_java(), f"-Xms{self.cfg.heap}", f"-Xmx{self.cfg.heap}", "-XX:+UseG1GC",
               "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
               "-cp", cp]
        cluster_id = prev.get("cluster_id")
        if not (data / "meta.properties").exists():
            cluster_id = _random_cluster_id()
            out = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                  "-c", str(props)], capture_output=True, text=True)
            if out.returncode != 0:
                raise InfraError(f"Kafka storage format failed: {out.stdout}{out.stderr}")
        pid = start_detached([*jvm, "kafka.Kafka", str(props)], log_file=self.log_file,
                             pid_file=self.pid_file)
        state = {"pid": pid, "port": port, "controller_port": cport, "cluster_id": cluster_id,
                 "bootstrap_servers": f"{self.host}:{port}", "endpoint": f"{self.host}:{port}", "log": str(self.log_file),
                 "server": f"Apache Kafka {self.cfg.version} (KRaft, Maven Central jars)"}
        wait_until(lambda: self.healthy(state), timeout_s=self.s.infra.start_timeout_s,
                   what="Kafka broker", pid=pid, log_file=self.log_file)
        self.ensure_topics(state["bootstrap_servers"])
        return state

    def healthy(self, state: dict[str, Any]) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": state["bootstrap_servers"], "socket.timeout.ms": 3000})
        md = admin.list_topics(timeout=3)
        return bool(md.brokers)

    def ensure_topics(self, bootstrap: str) -> None:
        ensure_topics(bootstrap, list(self.s.kafka.topics.model_dump().values()),
                      self.s.kafka.partitions, self.s.kafka.replication_factor, topic_configs(self.s))


def _random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as StorageTool)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# Every topic stamps records with the broker's clock: the pipeline's time bounds and lateness
# rest on arrival times no producer can set (PRODUCT §3).
TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-topic settings beyond :data:`TOPIC_CONFIG`: the input topic takes values up to
    ``kafka.observations_max_message_bytes``, so an oversized message reaches bronze and gets
    its quarantine reason (``message_too_large``) instead of vanishing at the producer."""
    return {settings.kafka.topics.observations: {"max.message.bytes": str(settings.kafka.observations_max_message_bytes)}}


def ensure_topics(bootstrap: str, names: list[str], partitions: int, replication: int,
                  configs: dict[str, dict[str, str]] | None = None) -> None:
    """Create missing topics with :data:`TOPIC_CONFIG` (plus ``configs`` per topic), and set
    those on existing ones that lack them (idempotent)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    configs = configs or {}
    admin = AdminClient({"bootstrap.servers": bootstrap})
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
