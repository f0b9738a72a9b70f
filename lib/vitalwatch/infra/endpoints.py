"""Where the servers are: configured endpoints win; on the local profile, unset ones are read
from the state that ``vitalwatch infra up`` wrote."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from vitalwatch.config import KafkaSecurityConfig, Settings
from vitalwatch.infra.kafka_access import KafkaAccess, resolve_password
from vitalwatch.infra.process import InfraError


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    mongo_uri: str | None
    es_nodes: str | None
    kafka_ca_file: str | None = None
    kafka_credentials_dir: str | None = None  # the local broker's per-role password files
    kafka_security: KafkaSecurityConfig = field(default_factory=KafkaSecurityConfig)

    def kafka(self, role: str) -> KafkaAccess:
        """How ``role`` (a principal of ``kafka.security.acls``, or admin) reaches the broker."""
        if not self.kafka_bootstrap:
            raise InfraError("no Kafka endpoint resolved (resolve(settings, need=('kafka', ...)))")
        sec = self.kafka_security
        local = self.kafka_credentials_dir is not None  # the local broker of `infra up`
        return KafkaAccess(self.kafka_bootstrap, role,
                           resolve_password(role, sec, self.kafka_credentials_dir, local_first=local),
                           ca_file=self.kafka_ca_file, mechanism=sec.mechanism, protocol=sec.protocol)


def resolve(settings: Settings, need: tuple[str, ...] = ("kafka",)) -> Endpoints:
    """Endpoints for ``need`` (kafka, mongo, elasticsearch); fail clearly when one is missing."""
    state: dict[str, Any] = {}
    sec = settings.kafka.security
    if any(_unset(settings, n) for n in need) or ("kafka" in need and not sec.ca_file):
        from vitalwatch.infra.manager import InfraManager

        state = InfraManager(settings).read_state()
    ks = state.get("kafka", {})
    kafka = settings.kafka.bootstrap_servers or ks.get("bootstrap_servers")
    mongo = settings.mongo.uri or state.get("mongo", {}).get("uri")
    es = settings.elasticsearch.nodes or state.get("elasticsearch", {}).get("nodes")
    found = {"kafka": kafka, "mongo": mongo, "elasticsearch": es}
    missing = [n for n in need if not found[n]]
    if missing:
        raise InfraError(
            f"no endpoint for {', '.join(missing)}: set it in conf/ or the environment "
            f"(e.g. VITALWATCH__KAFKA__BOOTSTRAP_SERVERS), or start the local servers with "
            f"`vitalwatch infra up`")
    local = bool(kafka) and kafka == ks.get("bootstrap_servers")  # the broker `infra up` started
    return Endpoints(kafka or "", mongo, es, kafka_ca_file=sec.ca_file or (ks.get("ca_file") if local else None),
                     kafka_credentials_dir=ks.get("credentials_dir") if local else None, kafka_security=sec)



MONGO_ADMIN_URI_ENV = "VITALWATCH_MONGO_ADMIN_URI"


def admin_mongo_uri(settings: Settings) -> str:
    """MongoDB's administrator (to create databases, roles and users): ``$VITALWATCH_MONGO_ADMIN_URI``,
    else the local server's admin account."""
    if uri := os.environ.get(MONGO_ADMIN_URI_ENV):
        return uri
    return resolve(settings.with_updates(mongo={"uri": None}), ("mongo",)).mongo_uri or ""


def _unset(settings: Settings, name: str) -> bool:
    return not {"kafka": settings.kafka.bootstrap_servers, "mongo": settings.mongo.uri,
                "elasticsearch": settings.elasticsearch.nodes}[name]
