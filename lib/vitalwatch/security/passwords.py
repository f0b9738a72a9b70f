"""Password hashing and the rules a new password must meet.

bcrypt reads at most 72 bytes; longer passwords are refused rather than silently cut. A new
password must be long enough and not on the list of passwords seen in breaches that ships with
the ``zxcvbn`` package (30,000 of the most common leaked passwords), compared case-insensitively
and also with a trailing run of digits or symbols removed ("Password2024!" is "password")."""

from __future__ import annotations

import re
from functools import cache

import bcrypt

MAX_PASSWORD_BYTES = 72
_TAIL = re.compile(r"[\d\W_]+$")


class PasswordRejected(ValueError):
    """A new password breaks a rule (the message says which)."""


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def check_password(password: str, hashed: str | bytes) -> bool:
    h = hashed.encode() if isinstance(hashed, str) else hashed
    try:
        return bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], h)
    except ValueError:  # not a bcrypt hash
        return False


@cache
def dummy_hash(rounds: int) -> bytes:
    """Checked when the username is unknown, at the cost real hashes have, so a miss takes as
    long as a wrong password and timing does not tell which usernames exist."""
    return bcrypt.hashpw(b"vitalwatch-no-such-user", bcrypt.gensalt(rounds))


@cache
def _breached() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def breached(password: str) -> bool:
    """Is it (or it without a trailing run of digits and symbols) a known leaked password?"""
    p = password.lower()
    return p in _breached() or (len(stem := _TAIL.sub("", p)) >= 4 and stem in _breached())


def validate(password: str, username: str, min_length: int) -> None:
    """Raise :class:`PasswordRejected` unless ``password`` may be set for ``username``."""
    if len(password) < min_length:
        raise PasswordRejected(f"password: at least {min_length} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordRejected(f"password: at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)")
    if username.lower() in password.lower():
        raise PasswordRejected("password: must not contain the username")
    if breached(password):
        raise PasswordRejected("password: it is on a list of passwords leaked in breaches; choose another")
    if len(set(password)) < 5:
        raise PasswordRejected("password: too few different characters")
