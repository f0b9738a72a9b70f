"""The notifier's pure parts: the signature (against a vector computed with openssl), the URL
policy, redaction, back-off and Retry-After, status classification, the webhook config's
secure defaults, the commit point of out-of-order events, and event parsing."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest
from pydantic import ValidationError

from vitalwatch.alerts.backoff import backoff_delay, parse_retry_after, retry_delay
from vitalwatch.alerts.notifier import parse_event
from vitalwatch.alerts.offsets import OffsetTracker
from vitalwatch.alerts.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signature_headers,
    verify,
)
from vitalwatch.alerts.urls import (
    UnsafeWebhookURL,
    is_loopback_host,
    redact_text,
    redact_url,
    require_safe_url,
)
from vitalwatch.alerts.webhook import WebhookSender, classify, request_headers
from vitalwatch.config import AlertsConfig, Settings, WebhookConfig

SECRET = "whsec-test-0123456789abcdef"
BODY = b'{"alert_id":"a1","level":"CRITICAL"}'
# printf '%s' '1700000000.{"alert_id":"a1","level":"CRITICAL"}' | openssl dgst -sha256 -hmac 'whsec-test-0123456789abcdef'
OPENSSL_HEX = "57666b4bb7687c3788431dfc0667685e8c7f967f34fee50c351358c421ac94e8"


def hook(**kw) -> WebhookConfig:
    return WebhookConfig(**{"name": "pager", "url": "https://pager.example/hook", "secret": SECRET, **kw})


# -- signature ---------------------------------------------------------------------------------
def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    assert signature(SECRET.encode(), 1700000000, BODY) == f"sha256={OPENSSL_HEX}"


def test_verify_accepts_the_headers_and_refuses_tampering_replay_and_other_keys() -> None:
    h = signature_headers(SECRET.encode(), BODY, now=1700000000)
    ts, sig = h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER]
    assert ts == "1700000000" and sig == f"sha256={OPENSSL_HEX}"
    assert verify(SECRET.encode(), BODY, ts, sig, now=1700000100)
    assert not verify(SECRET.encode(), BODY.replace(b"a1", b"a2"), ts, sig, now=1700000100)  # body changed
    assert not verify(b"another-secret-0123456789", BODY, ts, sig, now=1700000100)
    assert not verify(SECRET.encode(), BODY, "1700000001", sig, now=1700000100)  # timestamp changed
    assert not verify(SECRET.encode(), BODY, ts, sig, now=1700000000 + 301)  # replayed too late
    assert not verify(SECRET.encode(), BODY, None, sig) and not verify(SECRET.encode(), BODY, "x1", sig)


def test_request_headers_carry_idempotency_key_attempt_and_a_valid_signature() -> None:
    h = request_headers(hook(), BODY, "a1", 3, "1")
    assert h["Idempotency-Key"] == "a1" and h["X-Vitalwatch-Attempt"] == "3"
    assert h["Content-Type"] == "application/json"
    assert verify(SECRET.encode(), BODY, h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER])
    assert SECRET not in repr(h)


# -- URL policy and redaction ------------------------------------------------------------------
@pytest.mark.parametrize("url", ["https://pager.example/hook", "https://10.0.0.5:8443/x?token=t",
                                 "http://127.0.0.1:9000/hook", "http://127.8.9.10/h", "http://[::1]:8080/h",
                                 "http://localhost:8080/h", "HTTP://LOCALHOST/h", "http://[::ffff:127.0.0.1]/h"])
def test_allowed_urls(url: str) -> None:
    require_safe_url(url)


@pytest.mark.parametrize("url", ["http://pager.example/hook", "http://10.0.0.5/h", "http://128.0.0.1/h",
                                 "http://localhost.evil.example/h", "http://[::2]/h", "ftp://127.0.0.1/h",
                                 "file:///etc/passwd", "https:///nohost", "http://127.0.0.1:99999/h", "pager.example"])
def test_refused_urls(url: str) -> None:
    with pytest.raises(UnsafeWebhookURL):
        require_safe_url(url)


def test_loopback_hosts() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("example.com") and not is_loopback_host("10.1.1.1")


def test_refusal_message_never_shows_path_or_query() -> None:
    with pytest.raises(UnsafeWebhookURL) as e:
        require_safe_url("http://pager.example/hooks/T0/SECRETPATH?token=QUERYTOKEN")
    assert "SECRETPATH" not in str(e.value) and "QUERYTOKEN" not in str(e.value)
    assert "http://pager.example/…" in str(e.value)


def test_redact_url_keeps_scheme_host_port_only() -> None:
    assert redact_url("https://user:pw@Hooks.Example:8443/a/b?token=x#f") == "https://hooks.example:8443/…"
    assert redact_url("http://[::1]:9/x") == "http://[::1]:9/…"
    assert redact_url("https://pager.example") == "https://pager.example/…"


def test_redact_text_removes_urls_paths_and_secrets() -> None:
    url = "https://pager.example/hooks/T0/ABC?token=QT"
    text = (f"POST {url} failed; Max retries exceeded with url: /hooks/T0/ABC?token=QT; key {SECRET}; "
            "also see http://other.example/p?q=1")
    out = redact_text(text, [url, SECRET])
    for leak in ("ABC", "QT", SECRET, "/p?q=1"):
        assert leak not in out, (leak, out)
    assert "https://pager.example/…" in out and "http://other.example/…" in out


def test_transport_errors_are_reported_redacted() -> None:
    import requests

    h = hook(url="https://pager.example/hooks/T0/PATHSECRET?token=QUERYSECRET")
    err = requests.ConnectionError("HTTPSConnectionPool(host='pager.example', port=443): Max retries exceeded "
                                   "with url: /hooks/T0/PATHSECRET?token=QUERYSECRET (Caused by x)")
    out = WebhookSender._error(h, err)
    assert out.startswith("ConnectionError:") and "PATHSECRET" not in out and "QUERYSECRET" not in out


# -- back-off and classification ------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 60), (50, 60), (10_000, 60)]:
        for _ in range(50):
            d = backoff_delay(attempt, 1, 60, rng=rng)
            assert cap / 2 <= d <= cap, (attempt, d)


def test_retry_after_is_honoured_and_capped() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = 1_800_000_000
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert retry_delay(1, 1, 60, 7.0, 300) == 7.0
    assert retry_delay(1, 1, 60, 10_000.0, 300) == 300
    assert retry_delay(1, 1, 60, 0.0, 300) == 1  # Retry-After: 0 is no tight loop
    assert 0.5 <= retry_delay(1, 1, 60, None, 300) <= 1


@pytest.mark.parametrize(("status", "outcome"), [(200, "delivered"), (204, "delivered"), (301, "failed"),
                                                 (302, "failed"), (307, "failed"), (400, "failed"), (401, "failed"),
                                                 (404, "failed"), (410, "failed"), (429, "retry"), (500, "retry"),
                                                 (502, "retry"), (503, "retry")])
def test_status_classification(status: int, outcome: str) -> None:
    r = classify(status, "3" if status in (429, 503) else None)
    assert r.outcome == outcome and r.http_status == status
    if status in (429, 503):
        assert r.retry_after_s == 3.0
    if 300 <= status < 400:
        assert "redirect not followed" in r.error


# -- configuration ------------------------------------------------------------------------------
def test_default_configuration_loads_with_no_webhooks() -> None:
    s = Settings()
    assert s.alerts.webhooks == [] and s.alerts.notifier.consumer_group == "vitalwatch-notifier"
    assert s.alerts.notifier.mongo_user in s.mongo.security.users
    role = s.mongo.security.roles[s.mongo.security.users[s.alerts.notifier.mongo_user]["role"]]
    assert role["privileges"] == [{"collections": ["deliveries"], "actions": ["find", "insert", "update"]}]


def test_a_webhook_without_a_secret_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("VITALWATCH_WEBHOOK_PAGER_SECRET", raising=False)
    with pytest.raises(ValidationError, match="VITALWATCH_WEBHOOK_PAGER_SECRET"):
        WebhookConfig(name="pager", url="https://pager.example/hook")
    with pytest.raises(ValidationError, match="at least 16"):
        hook(secret="short")


def test_secret_from_environment_or_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VITALWATCH_WEBHOOK_ON_CALL_SECRET", "from-the-environment-123")
    h = WebhookConfig(name="on-call", url="https://pager.example/hook")
    assert h.secret_bytes() == b"from-the-environment-123"
    assert "from-the-environment" not in repr(h) and "from-the-environment" not in str(h.model_dump())
    monkeypatch.setenv("MY_HOOK_KEY", "named-variable-secret-1")
    assert WebhookConfig(name="x", url="https://a.example/", secret_env="MY_HOOK_KEY").secret_bytes() == \
        b"named-variable-secret-1"
    f = tmp_path / "hook.secret"
    f.write_text("file-secret-0123456789\n")
    assert WebhookConfig(name="y", url="https://a.example/", secret_file=str(f)).secret_bytes() == \
        b"file-secret-0123456789"
    with pytest.raises(ValidationError, match="does not exist"):
        WebhookConfig(name="z", url="https://a.example/", secret_file=str(tmp_path / "missing"))


def test_webhook_urls_levels_and_names_are_checked_at_load() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        hook(url="http://pager.example/hook")
    hook(url="http://127.0.0.1:8080/hook")  # a local relay
    with pytest.raises(ValidationError):
        hook(levels=["URGENT"])
    with pytest.raises(ValidationError):
        hook(name="has/slash")
    base = Settings().alerts.model_dump()
    with pytest.raises(ValidationError, match="unique"):
        AlertsConfig(**{**base, "webhooks": [hook(), hook()]})


# -- offsets and events ---------------------------------------------------------------------------
def test_commit_point_stops_at_the_oldest_unfinished_event() -> None:
    t = OffsetTracker()
    refs = [t.add("alerts", 0, o) for o in range(5)]
    other = t.add("alerts", 1, 40)
    for i in (1, 2, 4):
        t.finish(refs[i])
    assert t.committable() == {} and t.pending() == 3
    t.finish(refs[0])
    assert t.committable() == {("alerts", 0): 3}
    t.committed({("alerts", 0): 3})
    assert t.committable() == {}  # already committed
    t.finish(refs[3])
    t.finish(other)
    assert t.committable() == {("alerts", 0): 5, ("alerts", 1): 41}
    assert t.committable({("alerts", 1)}) == {("alerts", 1): 41}
    t.forget({("alerts", 0), ("alerts", 1)})
    assert t.committable() == {} and t.pending() == 0


def test_parse_event_accepts_alert_events_only() -> None:
    assert parse_event(BODY) == {"alert_id": "a1", "level": "CRITICAL"}
    for bad in (b"", b"not json", b"[1]", b'{"level": "HIGH"}', b'{"alert_id": 5, "level": "HIGH"}',
                b'{"alert_id": "a", "level": null}', b"\xff\xfe", None):
        assert parse_event(bad) is None, bad


def test_send_time_check_refuses_an_unsafe_url_without_sending() -> None:
    from pydantic import SecretStr

    # bypasses the load-time check, as a mutated or hand-built config would
    bad = WebhookConfig.model_construct(name="bad", url="http://pager.example/hook", levels=["CRITICAL"],
                                        timeout_s=1, secret=SecretStr(SECRET))
    r = WebhookSender().send(bad, BODY, "a1", 1)
    assert r.outcome == "failed" and r.http_status is None and "loopback" in r.error
