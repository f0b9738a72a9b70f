"""How long a failed webhook attempt waits before the next one.

Why jittered exponential back-off: a receiver that is down or overloaded gets fewer requests
the longer it stays down (capped, so recovery is noticed within ``backoff_max_s``), and the
jitter keeps many alerts queued for one receiver from retrying in lock-step. A receiver that
says when to come back (``Retry-After`` on 429/503) is believed, up to a cap, so a hostile or
buggy value cannot park deliveries for days."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime


def backoff_delay(attempt: int, base_s: float, max_s: float, *, rng: random.Random | None = None) -> float:
    """Wait after failed attempt number ``attempt`` (1-based): ``base × 2^(attempt-1)``, capped at
    ``max_s``, then "equal jitter": uniformly in [cap/2, cap]."""
    exp = min(max(attempt, 1) - 1, 60)  # 2**60 × base is beyond any cap; avoids overflow
    cap = min(max_s, base_s * 2.0**exp)
    return cap / 2 + (rng or random).uniform(0, cap / 2)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent
    or unreadable; never negative."""
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(attempt: int, base_s: float, max_s: float, retry_after_s: float | None,
                retry_after_max_s: float) -> float:
    """The receiver's ``Retry-After`` when given — capped at ``retry_after_max_s``, and never
    below ``base_s`` (``Retry-After: 0`` must not turn into a tight loop) — else the back-off."""
    if retry_after_s is not None:
        return max(base_s, min(retry_after_s, retry_after_max_s))
    return backoff_delay(attempt, base_s, max_s)
