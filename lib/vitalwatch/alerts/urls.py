"""Where a webhook may point, and how a URL or an error appears in logs.

Why a policy: alert bodies carry patient data, so they travel over TLS; plain ``http://`` is
accepted only to a loopback host (a local relay or a test receiver), where nothing crosses a
network. The check runs at config load (:class:`vitalwatch.config.WebhookConfig`) and again
before every send (:func:`require_safe_url` with ``resolve=True``), so a name that resolves
somewhere else at send time is still refused.

Why redaction: a webhook URL's path or query often *is* the credential (``/hooks/T0/B1/XYZ``,
``?token=…``), so logs and stored errors show only ``scheme://host[:port]/…``."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost"})
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class UnsafeWebhookURL(ValueError):
    """A webhook URL the policy refuses (the message never contains the URL's path or query)."""


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8, ``::1`` (also as an IPv4-mapped IPv6 address)."""
    h = host.strip("[]").lower().rstrip(".")
    if h in LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _resolves_to_loopback_only(host: str, port: int) -> bool:
    """Every address ``host`` resolves to is loopback (``localhost`` could be mapped elsewhere)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return True  # nothing to connect to: the send fails as a connection error, nothing leaks
    return all(is_loopback_host(str(info[4][0])) for info in infos)


def require_safe_url(url: str, *, resolve: bool = False) -> None:
    """Raise :class:`UnsafeWebhookURL` unless ``url`` is https, or http to a loopback host.
    ``resolve``: also check what a loopback *name* resolves to now (at send time)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeWebhookURL(f"webhook URL {redact_url(url)} cannot be parsed: {type(e).__name__}") from None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if not host:
        raise UnsafeWebhookURL(f"webhook URL {redact_url(url)} has no host")
    if scheme == "https":
        return
    if scheme != "http":
        raise UnsafeWebhookURL(f"webhook URL {redact_url(url)}: scheme must be https")
    if not is_loopback_host(host):
        raise UnsafeWebhookURL(f"webhook URL {redact_url(url)}: plain http is allowed only to a loopback host "
                               "(127.0.0.0/8, ::1, localhost); use https")
    if resolve and not _resolves_to_loopback_only(host, port or 80):
        raise UnsafeWebhookURL(f"webhook URL {redact_url(url)}: {host} resolves to a non-loopback address")


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: no user info, path, query or fragment."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<unparseable url>"
    if not parts.scheme or not host:
        return "<url>"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{shown}{f':{port}' if port else ''}/…"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` for logs and stored errors: every URL redacted, each of ``secrets`` replaced by
    ``***`` — a URL among them by its redacted form, and its path and query wherever they
    appear alone (as in "Max retries exceeded with url: /path?query")."""
    out = text
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        if "://" in s:
            out = out.replace(s, redact_url(s))
            tail = s.split("://", 1)[1].partition("/")[2]
            if tail:
                out = out.replace("/" + tail, "/…")
        else:
            out = out.replace(s, "***")
    return _URL_RE.sub(lambda m: redact_url(m.group(0)), out)
