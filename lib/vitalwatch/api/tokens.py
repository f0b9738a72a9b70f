"""The API's access tokens: short-lived JWTs (HS256) naming the user and their role.

The signing key is the API's own secret (never shared with another service, never logged):
``$VITALWATCH_API_TOKEN_KEY``, else ``api.token_key_file``, else a 32-byte key generated once
into a 0600 file under ``infra.work_dir/api``. A token is only a proof of a recent sign-in:
every request re-reads the user's record, so a deactivated user or a changed role applies at
the next request, not when the token expires."""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from vitalwatch.config import ApiConfig, Settings

KEY_ENV = "VITALWATCH_API_TOKEN_KEY"
PSEUDONYM_KEY_ENV = "VITALWATCH_API_PSEUDONYM_KEY"
ALGORITHM = "HS256"
MIN_KEY_BYTES = 32


class TokenRefused(Exception):
    """A token that does not prove a sign-in: expired, tampered, malformed or for another audience."""


@dataclass(frozen=True)
class Claims:
    username: str
    role: str
    expires: datetime
    issued: datetime


def secret(settings: Settings, name: str, env: str, file: str | None = None) -> bytes:
    """A secret of the API: ``$env``, else ``file``, else ``<infra.work_dir>/api/<name>.key``
    (generated once, 0600). Shorter than 32 bytes is refused: HS256 with a weak key is forgeable."""
    from vitalwatch.infra.process import write_private

    if value := os.environ.get(env):
        key = value.encode()
    else:
        path = settings.path(file) if file else settings.path(settings.infra.work_dir) / "api" / f"{name}.key"
        if not path.exists():
            if file:
                raise FileNotFoundError(f"{name}: {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(path, secrets.token_urlsafe(48).encode())
        key = Path(path).read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the API's {name} must be at least {MIN_KEY_BYTES} bytes")
    return key


def signing_key(settings: Settings) -> bytes:
    return secret(settings, "token", KEY_ENV, settings.api.token_key_file)


def issue(key: bytes, cfg: ApiConfig, username: str, role: str, now: datetime | None = None) -> tuple[str, int]:
    """(token, seconds it is valid)."""
    now = now or datetime.now(UTC)
    life = int(cfg.token_minutes * 60)
    claims = {"sub": username, "role": role, "iss": cfg.issuer, "aud": cfg.audience, "iat": now,
              "nbf": now, "exp": now + timedelta(seconds=life), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=ALGORITHM), life


def verify(key: bytes, cfg: ApiConfig, token: str) -> Claims:
    """The token's claims, or :class:`TokenRefused` (only HS256; every claim required)."""
    try:
        c = jwt.decode(token, key, algorithms=[ALGORITHM], audience=cfg.audience, issuer=cfg.issuer,
                       options={"require": ["sub", "role", "exp", "iat", "iss", "aud"]}, leeway=5)
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the token has expired; sign in again") from None
    except jwt.PyJWTError:
        raise TokenRefused("the token is not valid") from None
    if not isinstance(c.get("sub"), str) or not isinstance(c.get("role"), str):
        raise TokenRefused("the token is not valid")
    return Claims(c["sub"], c["role"], datetime.fromtimestamp(c["exp"], UTC), datetime.fromtimestamp(c["iat"], UTC))
