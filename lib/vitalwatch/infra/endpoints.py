"""Where the servers are: configured endpoints win; on the local profile, unset ones are read
from the state that ``vitalwatch infra up`` wrote."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vitalwatch.config import Settings
from vitalwatch.infra.process import InfraError


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    mongo_uri: str | None
    es_nodes: str | None


def resolve(settings: Settings, need: tuple[str, ...] = ("kafka",)) -> Endpoints:
    """Endpoints for ``need`` (kafka, mongo, elasticsearch); fail clearly when one is missing."""
    state: dict[str, Any] = {}
    if any(_unset(settings, n) for n in need):
        from vitalwatch.infra.manager import InfraManager

        state = InfraManager(settings).read_state()
    kafka = settings.kafka.bootstrap_servers or state.get("kafka", {}).get("bootstrap_servers")
    mongo = settings.mongo.uri or state.get("mongo", {}).get("uri")
    es = settings.elasticsearch.nodes or state.get("elasticsearch", {}).get("nodes")
    found = {"kafka": kafka, "mongo": mongo, "elasticsearch": es}
    missing = [n for n in need if not found[n]]
    if missing:
        raise InfraError(
            f"no endpoint for {', '.join(missing)}: set it in conf/ or the environment "
            f"(e.g. VITALWATCH__KAFKA__BOOTSTRAP_SERVERS), or start the local servers with "
            f"`vitalwatch infra up`")
    return Endpoints(kafka or "", mongo, es)


def _unset(settings: Settings, name: str) -> bool:
    return not {"kafka": settings.kafka.bootstrap_servers, "mongo": settings.mongo.uri,
                "elasticsearch": settings.elasticsearch.nodes}[name]
