"""How one principal reaches the broker: SASL_SSL with SCRAM, as ``User:<role>``, trusting the
CA that signed the broker's certificate. Every client (librdkafka producers and consumers, the
Spark source and sink, admin calls) is configured from a :class:`KafkaAccess`, so no client can
connect in plaintext or as someone else by accident.

Passwords: ``$VITALWATCH_KAFKA_<ROLE>_PASSWORD``, else ``<kafka.security.password_dir>/<role>``,
else the 0600 file the local broker's start wrote (``<infra.work_dir>/kafka/credentials``).
A service is given only its own role's password (docker/compose.yaml)."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitalwatch.config import KAFKA_ROLES, KafkaSecurityConfig
from vitalwatch.infra.process import InfraError, write_private

# SCRAM passwords travel inside a JAAS line (Spark) and a StorageTool argument: keep them to
# characters neither needs to quote.
_SAFE_PASSWORD = re.compile(r"^[A-Za-z0-9_\-.~+/=]{16,256}$")


def password_env(role: str) -> str:
    return f"VITALWATCH_KAFKA_{role.upper()}_PASSWORD"


@dataclass(frozen=True)
class KafkaAccess:
    """One principal's connection settings (the password is never in ``repr``)."""

    bootstrap: str
    user: str
    password: str = field(repr=False)
    ca_file: str | None = None
    mechanism: str = "SCRAM-SHA-512"
    protocol: str = "SASL_SSL"

    def conf(self, **extra: Any) -> dict[str, Any]:
        """librdkafka (confluent-kafka) settings, plus ``extra``."""
        c: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "security.protocol": self.protocol,
                             "sasl.mechanisms": self.mechanism, "sasl.username": self.user,
                             "sasl.password": self.password, "ssl.endpoint.identification.algorithm": "https"}
        if self.ca_file:
            c["ssl.ca.location"] = self.ca_file
        return {**c, **extra}

    def spark_options(self) -> dict[str, str]:
        """The Spark Kafka source/sink options (``kafka.*``); Spark's redaction hides the JAAS
        line in plans, logs and the event log (``spark.sql.redaction.options.regex``)."""
        jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{self.user}" password="{self.password}";')
        o = {"kafka.bootstrap.servers": self.bootstrap, "kafka.security.protocol": self.protocol,
             "kafka.sasl.mechanism": self.mechanism, "kafka.sasl.jaas.config": jaas}
        if self.ca_file:
            o |= {"kafka.ssl.truststore.type": "PEM", "kafka.ssl.truststore.location": self.ca_file}
        return o


def resolve_password(role: str, sec: KafkaSecurityConfig, credentials_dir: str | None,
                     *, local_first: bool = False) -> str:
    """``role``'s password from the environment, ``password_dir`` or the local credentials
    (``local_first``: the local broker's own files win, so a variable left in the shell for
    another cluster cannot lock a local client out)."""
    if role not in KAFKA_ROLES:
        raise InfraError(f"unknown Kafka role {role!r}; known: {', '.join(KAFKA_ROLES)}")
    pw, where = None, ""
    local = Path(os.path.expanduser(credentials_dir)) / role if credentials_dir else None
    if local_first and local is not None and local.is_file():
        pw, where = local.read_text().strip(), str(local)
    if not pw:
        pw, where = os.environ.get(password_env(role)), f"${password_env(role)}"
    if not pw:
        for d in (sec.password_dir, credentials_dir):
            f = Path(os.path.expanduser(d)) / role if d else None
            if f is not None and f.is_file():
                pw, where = f.read_text().strip(), str(f)
                break
    if not pw:
        raise InfraError(f"no Kafka password for {role!r}: set ${password_env(role)} or "
                         "kafka.security.password_dir, or start the local broker with `vitalwatch infra up`")
    if not _SAFE_PASSWORD.match(pw):
        raise InfraError(f"the Kafka password for {role!r} ({where}) must be 16-256 characters of "
                         "A-Z a-z 0-9 _ - . ~ + / =")
    return pw


def ensure_password_file(credentials_dir: Path, role: str) -> str:
    """The local broker's password for ``role``: created once (0600, directory 0700)."""
    credentials_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(credentials_dir, 0o700)
    f = credentials_dir / role
    if not f.exists():
        write_private(f, secrets.token_hex(24))
    return f.read_text().strip()
