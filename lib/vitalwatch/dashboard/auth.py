"""Dashboard users, their roles and login sessions.

Users live in MongoDB ``dashboard_users`` (``_id`` = username) with a bcrypt hash, never the
password; the app reads them through its own MongoDB account, and only the database admin
account writes them (``vitalwatch users create``). What a role may see and do is one table in
``conf/base.yaml`` (``dashboard.roles``), checked by :func:`allowed` on every page and action.
Signing in (equal-cost checks, throttling, authentication events) is
:mod:`vitalwatch.security.signin`; password rules are :mod:`vitalwatch.security.passwords`.

A session lives in the browser tab's Streamlit session (server side; nothing in cookies or
the URL) and ends ``session_ttl_minutes`` after login or ``idle_timeout_minutes`` after the
last click, whichever comes first; auto-refresh is not a click. Every page run reads the
user's record again (:func:`refresh`): a deactivated user is signed out at their next click
or refresh, and a changed role applies at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalwatch.config import DashboardConfig, Settings
from vitalwatch.security import passwords, signin
from vitalwatch.security.passwords import MAX_PASSWORD_BYTES, check_password, hash_password

__all__ = ["MAX_PASSWORD_BYTES", "check_password", "hash_password"]
USERS = "dashboard_users"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class AuthError(ValueError):
    """A user could not be created or changed (the message says why)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    display_name: str


@dataclass
class Session:
    """A logged-in user in one browser session."""

    user: User
    login_time: datetime
    last_activity: datetime

    def expired(self, cfg: DashboardConfig, now: datetime | None = None) -> str | None:
        """Why this session is over, or None while it is valid."""
        now = now or datetime.now(UTC)
        if now - self.login_time >= timedelta(minutes=cfg.session_ttl_minutes):
            return "your session has expired; please log in again"
        if now - self.last_activity >= timedelta(minutes=cfg.idle_timeout_minutes):
            return "you were logged out after a period of inactivity"
        return None

    def touch(self, now: datetime | None = None) -> None:
        self.last_activity = now or datetime.now(UTC)


def validate_new(settings: Settings, username: str, password: str, role: str) -> None:
    cfg = settings.dashboard
    if not USERNAME.match(username):
        raise AuthError("username: 2-64 characters, lower-case letters, digits, '.', '_' or '-'")
    if role not in cfg.roles:
        raise AuthError(f"unknown role {role!r}; roles: {', '.join(cfg.roles)}")
    try:
        passwords.validate(password, username, cfg.min_password_length)
    except passwords.PasswordRejected as e:
        raise AuthError(str(e)) from None


def create_user(db, settings: Settings, username: str, password: str, role: str,
                display_name: str = "", *, replace: bool = False) -> bool:
    """Create (or with ``replace``, reset) a user; False if it existed and was left alone."""
    from pymongo.errors import DuplicateKeyError

    validate_new(settings, username, password, role)
    doc = {"role": role, "display_name": display_name or username,
           "password_hash": hash_password(password, settings.dashboard.bcrypt_rounds),
           "active": True, "updated_time": datetime.now(UTC)}
    if replace:
        res = db[USERS].update_one({"_id": username}, {"$set": doc, "$setOnInsert": {"created_time": doc["updated_time"]}},
                                   upsert=True)
        return res.upserted_id is not None or res.modified_count > 0
    try:
        db[USERS].insert_one({"_id": username, **doc, "created_time": doc["updated_time"]})
        return True
    except DuplicateKeyError:
        return False


def set_active(db, username: str, active: bool) -> bool:
    return db[USERS].update_one({"_id": username}, {"$set": {"active": active,
                                                              "updated_time": datetime.now(UTC)}}).matched_count == 1


def list_users(db) -> list[dict[str, Any]]:
    return list(db[USERS].find({}, {"password_hash": 0}).sort("_id", 1))


def sign_in(db, settings: Settings, username: str, password: str,
            source: str | None = None) -> tuple[User | None, signin.Outcome]:
    """The user if the password is right, the account active and not throttled; else None and
    why (the caller says only "invalid username or password" or how long to wait)."""
    cfg = settings.dashboard
    out = signin.sign_in(db, cfg.sign_in, cfg.bcrypt_rounds, cfg.roles, username, password,
                         source=source, users=USERS)
    return (_user(out.doc) if out.ok else None), out


def authenticate(db, settings: Settings, username: str, password: str, source: str | None = None) -> User | None:
    return sign_in(db, settings, username, password, source)[0]


def _user(doc: dict[str, Any]) -> User:
    return User(doc["_id"], doc["role"], doc.get("display_name") or doc["_id"])


def refresh(db, settings: Settings, user: User) -> User | None:
    """The user as their record says now; None once deactivated, removed or their role is gone."""
    doc = db[USERS].find_one({"_id": user.username}, {"password_hash": 0})
    if not doc or not doc.get("active", True) or doc.get("role") not in settings.dashboard.roles:
        return None
    return _user(doc)


def start_session(user: User, now: datetime | None = None) -> Session:
    now = now or datetime.now(UTC)
    return Session(user, now, now)


def allowed(settings: Settings, role: str, what: str) -> bool:
    """May ``role`` open page ``what`` or perform action ``what``?"""
    r = settings.dashboard.roles.get(role)
    return r is not None and (what in r.pages or what in r.actions)


def shows_identifiers(settings: Settings, role: str) -> bool:
    r = settings.dashboard.roles.get(role)
    return bool(r and r.identifiers)
