"""The broker takes only authenticated, encrypted clients, and each principal only what
``kafka.security.acls`` grants it (on the real local broker started by ``infra up``)."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import with_updates
from vitalwatch.config import KafkaGrant, Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.infra.kafka_access import KafkaAccess
from vitalwatch.infra.kafka_acls import acl_bindings, sync_acls
from vitalwatch.infra.manager import InfraManager
from vitalwatch.infra.process import InfraError

pytestmark = pytest.mark.integration


def _metadata(conf: dict) -> bool:
    """True when a client with ``conf`` gets the cluster's metadata."""
    try:
        return bool(AdminClient({**conf, "socket.timeout.ms": 3000, "log_level": 0}).list_topics(timeout=6).brokers)
    except KafkaException:
        return False


def _produce(access: KafkaAccess, topic: str) -> str | None:
    """The delivery error's name of one record (None: written)."""
    errors: list = []
    p = Producer(access.conf(**{"message.timeout.ms": 15_000, "log_level": 0}))
    p.produce(topic, key=b"probe", value=json.dumps({"probe": str(uuid.uuid4())}).encode(),
              on_delivery=lambda err, _m: errors.append(err))
    p.flush(30)
    assert len(errors) == 1
    return errors[0].name() if errors[0] is not None else None


def _read(access: KafkaAccess, topic: str, group: str) -> str | None:
    """The error name a consumer in ``group`` meets reading ``topic`` (None: it could read)."""
    c = Consumer(access.conf(**{"group.id": group, "auto.offset.reset": "earliest", "log_level": 0}))
    c.subscribe([topic])
    try:
        for _ in range(20):
            msg = c.poll(1)
            if msg is None:
                continue
            return msg.error().name() if msg.error() else None
        return None
    finally:
        c.close()


def test_no_client_gets_in_without_credentials_and_tls(endpoints: Endpoints, infra: dict) -> None:
    device = endpoints.kafka("device")
    assert _metadata(device.conf())  # the rightful client, for contrast
    host, port, cport = "127.0.0.1", infra["kafka"]["port"], infra["kafka"]["controller_port"]
    # anonymous, in plaintext, on either listener
    assert not _metadata({"bootstrap.servers": f"{host}:{port}"})
    assert not _metadata({"bootstrap.servers": f"{host}:{cport}"})
    # TLS without SASL; SASL without TLS
    assert not _metadata({"bootstrap.servers": f"{host}:{port}", "security.protocol": "SSL",
                          "ssl.ca.location": device.ca_file})
    assert not _metadata({**device.conf(), "security.protocol": "SASL_PLAINTEXT"})
    # a wrong password; a user that does not exist; a CA that did not sign the broker
    assert not _metadata({**device.conf(), "sasl.password": device.password[::-1]})
    assert not _metadata({**device.conf(), "sasl.username": "mallory"})
    import certifi

    assert not _metadata({**device.conf(), "ssl.ca.location": certifi.where()})


def test_each_principal_is_refused_what_it_is_not_granted(endpoints: Endpoints, base_settings: Settings) -> None:
    t = base_settings.kafka.topics
    device, gateway = endpoints.kafka("device"), endpoints.kafka("gateway")
    notifier, watch, pipeline = endpoints.kafka("notifier"), endpoints.kafka("watch"), endpoints.kafka("pipeline")
    # a device writes readings, and nothing else; it reads nothing
    assert _produce(device, t.observations) is None
    for topic in (t.alerts, t.normal, t.gold_alerts, t.gold_scores):
        assert _produce(device, topic) == "TOPIC_AUTHORIZATION_FAILED", topic
    assert _read(device, t.observations, "vitalwatch-watch-x") in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")
    # a gateway adds its edge alert, but never a gold record
    assert _produce(gateway, t.alerts) is None
    assert _produce(gateway, t.gold_alerts) == "TOPIC_AUTHORIZATION_FAILED"
    # the notifier and a watcher read alerts in their own groups, and write nothing
    assert _read(notifier, t.alerts, base_settings.alerts.notifier.consumer_group) is None
    assert _read(watch, t.alerts, f"vitalwatch-watch-{uuid.uuid4().hex[:8]}") is None
    assert _read(watch, t.alerts, "vitalwatch-notifier") == "GROUP_AUTHORIZATION_FAILED"
    assert _read(watch, t.observations, f"vitalwatch-watch-{uuid.uuid4().hex[:8]}") == "TOPIC_AUTHORIZATION_FAILED"
    for who in (notifier, watch):
        assert _produce(who, t.alerts) == "TOPIC_AUTHORIZATION_FAILED"
    # the pipeline writes what it publishes; it cannot create topics or change ACLs
    assert _produce(pipeline, t.gold_alerts) is None
    client = AdminClient(pipeline.conf())  # held: a collected client cancels its requests
    fut = client.create_topics([NewTopic(f"test.rogue.{uuid.uuid4().hex[:6]}", 1, 1)])
    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        next(iter(fut.values())).result(30)
    with pytest.raises(InfraError, match="AUTHORIZATION_FAILED"):
        sync_acls(pipeline, base_settings)


def test_a_grant_removed_from_the_configuration_is_revoked(endpoints: Endpoints, base_settings: Settings) -> None:
    admin, watch = endpoints.kafka("admin"), endpoints.kafka("watch")
    topic = base_settings.kafka.topics.alerts
    acls = dict(base_settings.kafka.security.acls)
    acls["watch"] = KafkaGrant()  # watch loses everything
    narrower = with_updates(base_settings, kafka={"security": base_settings.kafka.security.model_copy(update={"acls": acls})})
    group = f"vitalwatch-watch-{uuid.uuid4().hex[:8]}"
    try:
        created, revoked = sync_acls(admin, narrower)
        assert revoked == len(acl_bindings(base_settings)) - len(acl_bindings(narrower)) and created == 0
        assert _read(watch, topic, group) in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")
    finally:
        sync_acls(admin, base_settings)
    assert _read(watch, topic, group) is None


def test_credentials_are_private_and_never_on_a_command_line(base_settings: Settings, infra: dict) -> None:
    kdir = Path(InfraManager(base_settings).servers["kafka"].dir)
    creds = Path(infra["kafka"]["credentials_dir"])
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    files = sorted(creds.iterdir())
    assert {f.name for f in files} >= {"admin", "controller", *base_settings.kafka.security.acls}
    for f in [*files, kdir / "server.properties"]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert not (kdir / "format.args").exists()  # the admin's first password went through a 0600 file
    state = InfraManager(base_settings).read_state()  # now: the fault suite restarts servers
    cmdline = " ".join(psutil.Process(state["kafka"]["pid"]).cmdline())
    secrets_ = [f.read_text().strip() for f in files]
    assert not [s for s in secrets_ if s in cmdline]
    log = Path(state["kafka"]["log"]).read_text(errors="replace")
    assert not [s for s in secrets_ if s in log]
    assert os.environ.get("VITALWATCH_KAFKA_ADMIN_PASSWORD") is None  # tests use the files, as `infra up` left them
