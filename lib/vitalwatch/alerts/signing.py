"""HMAC-SHA256 signatures of webhook bodies (docs/notifications.md, "Signature").

Why: a receiver must be able to tell an alert sent by vitalwatch from one anybody could POST,
and a captured request must not be replayable later. So each request carries

- ``X-Vitalwatch-Timestamp: <unix seconds>`` (decimal, the sender's clock), and
- ``X-Vitalwatch-Signature: sha256=<hex>``, the lower-case hex HMAC-SHA256, keyed with the
  endpoint's secret (its UTF-8 bytes), of the *signed string*
  ``<timestamp> "." <body>`` — the timestamp's ASCII digits, one ``.`` byte, then the exact
  body bytes as sent (no re-serialisation on either side).

A receiver recomputes it over the raw body, compares in constant time and refuses a
timestamp further than its tolerance (``alerts.notifier.signature_tolerance_s``) from its
clock: :func:`verify` does exactly that."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Vitalwatch-Signature"
TIMESTAMP_HEADER = "X-Vitalwatch-Timestamp"
SCHEME = "sha256"


def signed_string(timestamp: int, body: bytes) -> bytes:
    """What is signed: ``b"<timestamp>." + body``."""
    return str(int(timestamp)).encode("ascii") + b"." + body


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The header value: ``sha256=<hex HMAC-SHA256(secret, signed_string)>``."""
    mac = hmac.new(secret, signed_string(timestamp, body), hashlib.sha256).hexdigest()
    return f"{SCHEME}={mac}"


def signature_headers(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers for one request (a fresh timestamp on every attempt)."""
    ts = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(secret: bytes, body: bytes, timestamp_header: str | None, signature_header: str | None,
           *, tolerance_s: float = 300, now: float | None = None) -> bool:
    """A receiver's check: the signature matches the raw body and the timestamp is fresh."""
    if not timestamp_header or not signature_header or not timestamp_header.isdigit():
        return False
    ts = int(timestamp_header)
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body), signature_header.strip())
