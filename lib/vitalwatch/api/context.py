"""What every request of the API shares: settings, its MongoDB database (its own account), the
table cache, the token and pseudonym keys, and the signed-in caller."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from vitalwatch.api import tokens
from vitalwatch.api.problems import Problem, unauthorized
from vitalwatch.config import Settings
from vitalwatch.dashboard import auth
from vitalwatch.dashboard.data import TableCache

TOKEN_URL = "/api/v1/token"
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


class Context:
    """One per app process."""

    def __init__(self, settings: Settings, db=None) -> None:
        self.s = settings
        self._db = db
        self.cache = TableCache(settings.api.cache_seconds)
        from vitalwatch.api.reads import Registry

        self.registry = Registry(max(settings.api.cache_seconds, 1.0))
        self._maps: dict[tuple, dict[str, str]] = {}
        self.token_key = tokens.signing_key(settings)
        self.pseudonym_key = tokens.secret(settings, "pseudonym", tokens.PSEUDONYM_KEY_ENV)

    @cached_property
    def db(self):
        """The API's MongoDB database as ``api.mongo_user`` (tz-aware datetimes)."""
        if self._db is not None:
            return self._db
        import pymongo

        from vitalwatch.infra.endpoints import resolve
        from vitalwatch.sinks.mongo import user_password, user_uri

        server = resolve(self.s, ("mongo",)).mongo_uri or ""
        user = self.s.api.mongo_user
        uri = user_uri(server, user, user_password(self.s, user), self.s.mongo.database)
        return pymongo.MongoClient(uri, serverSelectionTimeoutMS=self.s.mongo.server_selection_timeout_ms,
                                   tz_aware=True, appname="vitalwatch-api")[self.s.mongo.database]

    def digest(self, kind: str, value: str) -> str:
        """16 hex of HMAC-SHA256 under the API's pseudonym key over kind and value: the same value
        always gives the same digest, and without the key nobody can go from a value to it."""
        return hmac.new(self.pseudonym_key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()[:16]

    def pseudonym(self, kind: str, value: str) -> str:
        """``anon-<digest>`` (the API's own key: not the MongoDB analyst views' pseudonyms)."""
        return f"anon-{self.digest(kind, value)}"

    def lookup(self, kind: str, ids, digest: str) -> str | None:
        """The id among ``ids`` whose digest of ``kind`` is ``digest`` (maps cached per id set)."""
        key = (kind, len(ids), hash(tuple(ids)))
        m = self._maps.get(key)
        if m is None:
            m = {self.digest(kind, i): i for i in ids}
            if len(self._maps) > 16:
                self._maps.clear()
            self._maps[key] = m
        return m.get(digest)


@dataclass(frozen=True)
class Caller:
    """The signed-in user of one request, as their record says now."""

    username: str
    role: str
    identifiers: bool
    source: str | None
    ctx: Context

    def may(self, what: str) -> bool:
        return auth.allowed(self.ctx.s, self.role, what)

    def need(self, what: str) -> None:
        if not self.may(what):
            raise Problem(403, f"the {self.role} role may not use {what}")

    def patient_id(self, ref: str, ids: list[str]) -> str | None:
        """The patient id behind ``ref`` (a pseudonym for roles without identifiers) among the
        sorted ``ids``, if there."""
        if self.identifiers:
            return ref if ref in set(ids) else None
        return self.ctx.lookup("patient", ids, ref.removeprefix("anon-")) if ref.startswith("anon-") else None

    def patient_ref(self, patient_id: str) -> str:
        """The id this caller sees for a patient (a pseudonym for roles without identifiers)."""
        return patient_id if self.identifiers else self.ctx.pseudonym("patient", patient_id)

    def alert_ref(self, alert_id: str) -> str:
        return alert_id if self.identifiers else self.ctx.pseudonym("alert", alert_id)


def context(request: Request) -> Context:
    return request.app.state.ctx


def caller(request: Request, token: Annotated[str | None, Depends(bearer)]) -> Caller:
    """The request's user: a valid token whose user is still active with a configured role."""
    ctx = context(request)
    if not token:
        raise unauthorized("sign in first: POST /api/v1/token, then send Authorization: Bearer <token>")
    try:
        claims = tokens.verify(ctx.token_key, ctx.s.api, token)
    except tokens.TokenRefused as e:
        raise unauthorized(str(e), "invalid_token") from None
    try:
        doc = ctx.db[auth.USERS].find_one({"_id": claims.username}, {"password_hash": 0})
    except Exception as e:  # the users' store is unreachable: refuse, do not guess
        raise Problem(503, "the user directory is not reachable; try again", headers={"Retry-After": "5"}) from e
    if not doc or not doc.get("active", True) or doc.get("role") not in ctx.s.dashboard.roles:
        raise unauthorized("this account is no longer active", "invalid_token")
    changed = doc.get("updated_time")
    if changed is not None and _utc(changed) > claims.issued + timedelta(seconds=1):
        raise unauthorized("this account changed after the token was issued; sign in again", "invalid_token")
    host = request.client.host if request.client else None
    return Caller(doc["_id"], doc["role"], auth.shows_identifiers(ctx.s, doc["role"]), host, ctx)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


CallerDep = Annotated[Caller, Depends(caller)]
