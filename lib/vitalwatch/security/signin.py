"""Sign-in: one check for the dashboard and the API, with throttling and authentication events.

- **Equal cost.** An unknown username is checked against a dummy hash of the configured bcrypt
  cost, so timing does not tell which usernames exist.
- **Throttling**, per username and per source address, kept in MongoDB ``sign_in_throttle``
  (so every process of the app shares it): after ``free_failures`` failures in a row a key is
  locked for ``backoff_s``, doubling per further failure up to ``backoff_max_s``. A locked
  attempt is refused without checking the password (so it tells nothing, and the time it is
  told to wait is exact). A success clears the
  username's count; a source's count only expires (``window_minutes`` after its last failure),
  so signing in to one's own account does not reset an attacker's budget.
- **Events.** Every attempt (success, failure, throttled) is an audit record and a log line;
  neither ever holds the password."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalwatch.config import SignInConfig
from vitalwatch.security import audit
from vitalwatch.security.passwords import check_password, dummy_hash

THROTTLE = "sign_in_throttle"
log = logging.getLogger("vitalwatch.signin")


@dataclass(frozen=True)
class Outcome:
    """What a sign-in attempt came to: the user document when it succeeded, else why not."""

    doc: dict[str, Any] | None
    reason: str | None = None      # "invalid" (wrong password, unknown or inactive user) or "throttled"
    retry_after_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.doc is not None


def keys(username: str, source: str | None) -> list[str]:
    return [f"user:{username}"] + ([f"source:{source}"] if source else [])


def lock_s(failures: int, free: int, cfg: SignInConfig) -> float:
    """How long a key is locked after ``failures`` failures in a row (``free`` come free)."""
    if failures < free:
        return 0.0
    return min(cfg.backoff_s * 2 ** (failures - free), cfg.backoff_max_s)


def retry_after(db, names: list[str], now: datetime) -> float:
    """Seconds until every key in ``names`` is unlocked (0: not throttled)."""
    wait = 0.0
    for d in db[THROTTLE].find({"_id": {"$in": names}}, {"locked_until": 1}):
        until = d.get("locked_until")
        if until is not None:
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
            wait = max(wait, (until - now).total_seconds())
    return wait


def _failed(db, names: list[str], cfg: SignInConfig, now: datetime) -> None:
    from pymongo import ReturnDocument

    for name in names:
        doc = db[THROTTLE].find_one_and_update(
            {"_id": name}, {"$inc": {"failures": 1}, "$set": {"updated_time": now}},
            upsert=True, return_document=ReturnDocument.AFTER)
        free = cfg.free_failures_per_user if name.startswith("user:") else cfg.free_failures_per_source
        if (s := lock_s(doc["failures"], free, cfg)) > 0:
            db[THROTTLE].update_one({"_id": name}, {"$set": {"locked_until": now + timedelta(seconds=s)}})


def sign_in(db, cfg: SignInConfig, rounds: int, roles: set[str] | dict, username: str, password: str,
            *, source: str | None = None, users: str = "dashboard_users",
            now: datetime | None = None) -> Outcome:
    """Check ``username``/``password`` (see module doc); every attempt leaves an audit record."""
    now = now or datetime.now(UTC)
    name = (username or "").strip().lower()[:128]
    names = keys(name, source)
    if (wait := retry_after(db, names, now)) > 0:  # refused unchecked; the lock stands as it is
        _event(db, audit.SIGN_IN_THROTTLED, name, None, source, {"retry_after_s": round(wait, 1)})
        return Outcome(None, "throttled", wait)
    doc = db[users].find_one({"_id": name}) if name else None
    ok = check_password(password or "", doc["password_hash"] if doc else dummy_hash(rounds))
    if not (doc and ok and doc.get("active", True) and doc.get("role") in roles):
        _failed(db, names, cfg, now)
        why = ("unknown user" if doc is None else "wrong password" if not ok
               else "inactive" if not doc.get("active", True) else "role not configured")
        _event(db, audit.SIGN_IN_FAILED, name, doc.get("role") if doc else None, source, {"why": why})
        return Outcome(None, "invalid")
    db[THROTTLE].delete_one({"_id": f"user:{name}"})
    _event(db, audit.SIGN_IN, name, doc["role"], source, {})
    return Outcome(doc)


def _event(db, what: str, user: str, role: str | None, source: str | None, detail: dict[str, Any]) -> None:
    log.info("%s user=%s role=%s source=%s %s", what, user, role, source or "-", detail or "")
    audit.record(db, user=user, role=role, what=what, source=source, detail=detail)
