"""The broker's principals and what each may do (``kafka.security.acls``): SCRAM credentials
for every role, and ACLs kept equal to the configuration, a grant removed from ``conf/`` is
revoked on the next ``infra up``. Run as ``admin`` (the only super user besides the broker's
own controller principal)."""

from __future__ import annotations

import time

from vitalwatch.config import KAFKA_ROLES, Settings
from vitalwatch.infra.kafka_access import KafkaAccess
from vitalwatch.infra.process import InfraError


def acl_bindings(settings: Settings) -> list:
    """Every ACL the configuration grants (ALLOW, any host)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    topics = settings.kafka.topics.model_dump()
    out = []

    def allow(rt, name: str, pattern, role: str, op) -> None:
        out.append(AclBinding(rt, name, pattern, f"User:{role}", "*", op, AclPermissionType.ALLOW))

    for role, g in settings.kafka.security.acls.items():
        for t in g.read:
            allow(ResourceType.TOPIC, topics[t], ResourcePatternType.LITERAL, role, AclOperation.READ)
        for t in g.write:
            allow(ResourceType.TOPIC, topics[t], ResourcePatternType.LITERAL, role, AclOperation.WRITE)
        for grp in g.groups:
            allow(ResourceType.GROUP, grp, ResourcePatternType.LITERAL, role, AclOperation.READ)
        for grp in g.group_prefixes:
            allow(ResourceType.GROUP, grp, ResourcePatternType.PREFIXED, role, AclOperation.READ)
    return out


def _key(b) -> tuple:
    return (b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type)


def sync_acls(admin_access: KafkaAccess, settings: Settings, timeout_s: float = 30) -> tuple[int, int]:
    """Create the configured ACLs and revoke every other ALLOW of our principals, on any
    resource (a grant removed from ``conf/`` is gone after the next ``infra up`` / ``kafka
    init``); DENY entries and other principals' ACLs are left alone. Returns (created, revoked).
    A test's grants on its own topics are revoked too: tests provision them again."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    admin = AdminClient(admin_access.conf())
    wanted = {_key(b): b for b in acl_bindings(settings)}
    ours = {f"User:{r}" for r in KAFKA_ROLES}
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    existing = {_key(b): b for b in admin.describe_acls(everything, request_timeout=timeout_s).result()}
    created = grant(admin_access, settings, timeout_s, existing=set(existing))
    # only our principals' grants: an operator's DENY or another consumer's ACL stays
    stale = [b for k, b in existing.items() if k not in wanted and b.principal in ours
             and b.permission_type == AclPermissionType.ALLOW]
    if stale:
        filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                                    b.operation, b.permission_type) for b in stale]
        for f, fut in admin.delete_acls(filters, request_timeout=timeout_s).items():
            try:
                fut.result()
            except Exception as e:
                raise InfraError(f"Kafka: revoking ACL {f}: {e}") from e
    return created, len(stale)


def grant(admin_access: KafkaAccess, settings: Settings, timeout_s: float = 30,
          existing: set[tuple] | None = None) -> int:
    """Create the ACLs ``settings`` grants that do not exist yet (additive; idempotent)."""
    from confluent_kafka.admin import AdminClient

    new = [b for b in acl_bindings(settings) if existing is None or _key(b) not in existing]
    if not new:
        return 0
    admin = AdminClient(admin_access.conf())
    for b, fut in admin.create_acls(new, request_timeout=timeout_s).items():
        try:
            fut.result()
        except Exception as e:
            raise InfraError(f"Kafka: creating ACL {b}: {e}") from e
    return len(new)


def ensure_principals(admin_access: KafkaAccess, settings: Settings, passwords: dict[str, str],
                      timeout_s: float = 60) -> None:
    """Each role of ``kafka.security.acls`` gets its SCRAM credential (``passwords[role]``, the
    truth: set again on every call), the ACLs are synced, and every role is checked to sign in."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    sec = settings.kafka.security
    mech = {"SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512, "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256}[sec.mechanism]
    roles = principals(settings)
    missing = [r for r in roles if not passwords.get(r)]
    if missing:
        raise InfraError(f"Kafka: no password for {', '.join(missing)}")
    admin = AdminClient(admin_access.conf())
    ups = [UserScramCredentialUpsertion(r, ScramCredentialInfo(mech, sec.scram_iterations), passwords[r].encode())
           for r in roles]
    for user, fut in (admin.alter_user_scram_credentials(ups, request_timeout=timeout_s).items() if ups else []):
        try:
            fut.result(timeout_s)
        except Exception as e:
            raise InfraError(f"Kafka: setting the SCRAM credential of {user}: {e}") from e
    sync_acls(admin_access, settings)
    for r in roles:
        _wait_signed_in(KafkaAccess(admin_access.bootstrap, r, passwords[r], admin_access.ca_file,
                                    admin_access.mechanism, admin_access.protocol), timeout_s)


def principals(settings: Settings) -> list[str]:
    """The roles that sign in with SCRAM besides ``admin`` (the broker's own user)."""
    return [r for r in settings.kafka.security.acls if r != "admin"]


def _wait_signed_in(access: KafkaAccess, timeout_s: float) -> None:
    """Until ``access`` can read the cluster's metadata (credentials propagate asynchronously)."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout_s
    client = AdminClient(access.conf(**{"socket.timeout.ms": 3000}))
    last: object = "no broker in the metadata"
    while time.monotonic() < deadline:
        try:
            if client.list_topics(timeout=3).brokers:
                return
        except Exception as e:
            last = e
        time.sleep(0.5)
    raise InfraError(f"Kafka: {access.user} cannot sign in after {timeout_s:.0f} s: {last}")
