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


TIMEOUT = "nothing read in 20 s"


def _read(access: KafkaAccess, topic: str, group: str) -> str | None:
    """The error name a consumer in ``group`` meets reading ``topic`` from the start; None once
    it read a record (the callers make sure one is there), :data:`TIMEOUT` if neither came."""
    c = Consumer(access.conf(**{"group.id": group, "auto.offset.reset": "earliest", "log_level": 0,
                                "enable.auto.commit": False}))  # a probe never moves a group's offsets
    c.subscribe([topic])
    try:
        for _ in range(20):
            msg = c.poll(1)
            if msg is None:
                continue
            return msg.error().name() if msg.error() else None
        return TIMEOUT
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
    device = endpoints.kafka("device")
    notifier, watch, pipeline = endpoints.kafka("notifier"), endpoints.kafka("watch"), endpoints.kafka("pipeline")
    # a device (or gateway) writes readings, and nothing else; it reads nothing
    assert _produce(device, t.observations) is None
    for topic in (t.alerts, t.normal, t.gold_alerts, t.gold_scores):
        assert _produce(device, topic) == "TOPIC_AUTHORIZATION_FAILED", topic
    assert _read(device, t.observations, "vitalwatch-watch-x") in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")
    # the pipeline writes what it publishes: alerts, normal, gold
    for topic in (t.alerts, t.normal, t.gold_alerts, t.gold_scores):
        assert _produce(pipeline, topic) is None, topic
    # the notifier and a watcher read alerts in their own groups (a probe group: the real
    # notifier's offsets are not touched), and write nothing
    group = base_settings.alerts.notifier.consumer_group
    assert _read(notifier, t.alerts, f"{group}-probe-{uuid.uuid4().hex[:8]}") is None
    assert _read(watch, t.alerts, f"vitalwatch-watch-{uuid.uuid4().hex[:8]}") is None
    assert _read(watch, t.alerts, "vitalwatch-notifier") == "GROUP_AUTHORIZATION_FAILED"
    assert _read(watch, t.observations, f"vitalwatch-watch-{uuid.uuid4().hex[:8]}") == "TOPIC_AUTHORIZATION_FAILED"
    for who in (notifier, watch):
        assert _produce(who, t.alerts) == "TOPIC_AUTHORIZATION_FAILED"
    # the pipeline cannot create topics or change ACLs
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
    narrower = base_settings.with_updates(kafka={"security": base_settings.kafka.security.model_copy(update={"acls": acls})})
    group = f"vitalwatch-watch-{uuid.uuid4().hex[:8]}"
    assert _produce(endpoints.kafka("pipeline"), topic) is None  # something to read
    try:
        created, revoked = sync_acls(admin, narrower)
        assert created == 0 and revoked >= len(acl_bindings(base_settings)) - len(acl_bindings(narrower))
        assert _acls_of(admin, "User:watch") == []
        assert _read(watch, topic, group) in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")
    finally:
        sync_acls(admin, base_settings)
    assert _read(watch, topic, group) is None


def _acls_of(admin: KafkaAccess, principal: str) -> list:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    client = AdminClient(admin.conf())
    f = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY,
                         AclPermissionType.ANY)
    return list(client.describe_acls(f, request_timeout=30).result())


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


def test_a_notifier_refused_by_the_broker_stops_loudly(endpoints: Endpoints, base_settings: Settings) -> None:
    """A notifier whose group the broker refuses (renamed outside its grant) stops with the
    reason after ``stall_s`` instead of idling without delivering."""
    from vitalwatch.alerts.consumer import consume
    from vitalwatch.config import NotifierConfig

    cfg = NotifierConfig(consumer_group=f"rogue-{uuid.uuid4().hex[:6]}", stall_s=3)
    s = base_settings.with_updates(alerts={"notifier": cfg})
    assert _produce(endpoints.kafka("pipeline"), s.kafka.topics.alerts) is None  # something to fetch
    with pytest.raises(InfraError, match="GROUP_AUTHORIZATION_FAILED"):
        consume(s, endpoints.kafka("notifier"), _IdleNotifier(), lambda: False, None)


class _Tracker:
    def pending(self) -> int:
        return 0

    def committable(self, _only=None) -> dict:
        return {}

    def forget(self, _parts) -> None:
        return None


class _IdleNotifier:
    """What :func:`consume` needs of a notifier that never gets a message."""

    owner = "probe"
    tracker = _Tracker()

    def stop(self) -> None:
        return None

    def log_line(self, _line: str) -> None:
        return None


def test_the_alert_feed_survives_records_that_are_not_alert_events(endpoints: Endpoints, base_settings: Settings) -> None:
    """Whatever a writer of the alert topic sends (a tombstone, JSON that is not an object, an
    event without an id), `alerts watch` keeps following and yields the real events."""
    from vitalwatch.alerts.feed import describe, follow
    from vitalwatch.infra.kafka import provision

    topic = f"test.feed.{uuid.uuid4().hex[:8]}"
    s = base_settings.with_updates(kafka={"topics": base_settings.kafka.topics.model_copy(update={"alerts": topic})})
    provision(endpoints.kafka("admin"), s)
    good = {"alert_id": "a-1", "level": "CRITICAL", "patient_id": "p1", "recipients": [{"id": "rn-1"}, "x"]}
    p = Producer(endpoints.kafka("pipeline").conf())
    for value in (None, b"[1, 2]", b'"text"', b"{not json", json.dumps({"level": "HIGH"}).encode(),
                  json.dumps(good).encode()):
        p.produce(topic, key=b"p1", value=value)
    assert p.flush(30) == 0
    got = list(follow(endpoints.kafka("watch"), topic, from_beginning=True, idle_timeout_s=8))
    assert [e["alert_id"] for e in got] == ["a-1"]
    assert "CRITICAL" in describe(got[0])
