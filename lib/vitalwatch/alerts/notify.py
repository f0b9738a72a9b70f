"""Webhook channel: POST each alert event (JSON) to the configured URLs for its level.

At-least-once: retried with back-off on connection errors and 5xx; the ``Idempotency-Key``
header carries the ``alert_id`` so a receiver can drop a repeat (a replayed batch posts
again). A receiver that still fails after the retries is logged and skipped — the alert is
already on the Kafka topic, in the lake and in MongoDB, so a pager outage never blocks or
loses the stream."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from vitalwatch.config import WebhookConfig

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def post_alerts(events: Iterable[dict[str, Any]], hooks: list[WebhookConfig],
                session: requests.Session | None = None) -> DeliveryReport:
    rep = DeliveryReport()
    http = session or requests.Session()
    for ev in events:
        for hook in hooks:
            if ev.get("level") not in hook.levels:
                continue
            body = json.dumps(ev, default=str)
            headers = {"Content-Type": "application/json", "Idempotency-Key": ev["alert_id"],
                       "X-Vitalwatch-Schema": str(ev.get("schema_version", 1))}
            for attempt in range(hook.retries + 1):
                try:
                    r = http.post(hook.url, data=body, headers=headers, timeout=hook.timeout_s)
                    if r.status_code < 500:
                        if r.status_code >= 400:
                            raise requests.HTTPError(f"{r.status_code} {r.text[:200]}")
                        rep.delivered += 1
                        break
                    err = f"{r.status_code}"
                except requests.HTTPError as e:  # 4xx: the receiver refuses this event; do not retry
                    rep.failed += 1
                    rep.errors.append(f"{hook.url}: {e}")
                    break
                except requests.RequestException as e:
                    err = str(e)
                if attempt == hook.retries:
                    rep.failed += 1
                    rep.errors.append(f"{hook.url}: {err}")
                    log.warning("webhook %s failed for alert %s: %s", hook.url, ev["alert_id"], err)
                else:
                    time.sleep(min(0.5 * 2**attempt, 5))
    return rep
