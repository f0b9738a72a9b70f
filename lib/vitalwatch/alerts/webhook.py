"""One HTTP attempt at delivering one alert to one webhook, and what its result means.

Why so strict: the body is patient data and a page to a clinician, so the request is signed,
sent only to a URL the policy allows (checked again here, at send time), never redirected
(a 3xx could move the body to another host: it is a permanent failure, not followed), and
its outcome is classified once, here:

- 2xx: delivered;
- 429, 5xx, a timeout, a connection error: try again later (``Retry-After`` is passed on);
- 3xx and every other 4xx, a refused URL: failed for good (retrying cannot help).

Errors are reported redacted (no URL path or query, no secret): they go to logs and to
MongoDB ``deliveries``."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal

import requests

from vitalwatch.alerts.backoff import parse_retry_after
from vitalwatch.alerts.signing import signature_headers
from vitalwatch.alerts.urls import UnsafeWebhookURL, redact_text, redact_url, require_safe_url
from vitalwatch.config import WebhookConfig

USER_AGENT = "vitalwatch-notifier/1"
_URL_IN_MESSAGE = re.compile(r"(with url: )\S+")

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True)
class AttemptResult:
    """What one POST came to (``error`` is redacted; empty when delivered)."""

    outcome: Outcome
    http_status: int | None = None
    error: str = ""
    retry_after_s: float | None = None


def request_headers(hook: WebhookConfig, body: bytes, alert_id: str, attempt: int,
                    schema_version: str) -> dict[str, str]:
    """Headers of one attempt: content type, the idempotency key (the alert id: a receiver drops
    a repeat), the attempt number and a fresh signature."""
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Idempotency-Key": alert_id,
            "X-Vitalwatch-Schema": schema_version, "X-Vitalwatch-Attempt": str(attempt),
            **signature_headers(hook.secret_bytes(), body)}


def classify(status: int, retry_after: str | None) -> AttemptResult:
    """An HTTP status → delivered / retry / failed (module doc)."""
    if 200 <= status < 300:
        return AttemptResult("delivered", status)
    if 300 <= status < 400:
        return AttemptResult("failed", status, f"HTTP {status}: redirect not followed")
    if status == 429 or status >= 500:
        return AttemptResult("retry", status, f"HTTP {status}", parse_retry_after(retry_after))
    if 400 <= status < 500:
        return AttemptResult("failed", status, f"HTTP {status}: refused by the receiver")
    return AttemptResult("retry", status, f"HTTP {status}: unexpected status")


class WebhookSender:
    """Sends attempts; one ``requests.Session`` per thread (connections are reused per channel
    worker, and sessions are not shared across threads)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            # allow_redirects=False on each request is what stops redirects (max_redirects=0
            # would make requests raise TooManyRedirects before the 3xx could be classified)
            s = self._local.session = requests.Session()
        return s

    def send(self, hook: WebhookConfig, body: bytes, alert_id: str, attempt: int,
             schema_version: str = "1") -> AttemptResult:
        """POST ``body`` to ``hook`` once (no redirects, ``hook.timeout_s`` to connect and per read)."""
        try:
            require_safe_url(hook.url, resolve=True)
        except UnsafeWebhookURL as e:
            return AttemptResult("failed", None, str(e))
        headers = request_headers(hook, body, alert_id, attempt, schema_version)
        try:
            with self._session().post(hook.url, data=body, headers=headers, timeout=(hook.timeout_s, hook.timeout_s),
                                      allow_redirects=False, stream=True) as r:
                return classify(r.status_code, r.headers.get("Retry-After"))
        except (requests.Timeout, requests.ConnectionError) as e:
            return AttemptResult("retry", None, self._error(hook, e))
        except requests.RequestException as e:
            return AttemptResult("failed", None, self._error(hook, e))

    @staticmethod
    def _error(hook: WebhookConfig, e: Exception) -> str:
        """``Type: message`` with the URL, its path and query and the secret taken out."""
        secret = hook.secret.get_secret_value() if hook.secret else ""
        msg = _URL_IN_MESSAGE.sub(r"\1/…", str(e))
        msg = redact_text(msg, [hook.url, secret])
        return f"{type(e).__name__}: {msg[:300]} ({redact_url(hook.url)})"
