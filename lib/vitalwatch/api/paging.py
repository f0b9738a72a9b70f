"""Cursor pages and conditional responses.

A cursor is opaque to clients: the position after the page's last item and a digest of the
query it belongs to (a cursor replayed with other filters is refused rather than silently
skipping rows). ``ETag`` is derived from the Delta versions of the tables a response read and
the digest of its body (MongoDB's part, e.g. acknowledgements, changes it too); ``Last-Modified``
is the newest commit time of those tables. ``If-None-Match`` answers 304 when nothing changed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pandas as pd
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from vitalwatch.api.problems import Problem
from vitalwatch.dashboard.data import Snapshot


def _digest(query: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:12]


def encode_cursor(offset: int, query: dict[str, Any], **state: Any) -> str:
    """An opaque cursor: the offset, the query's digest and what the first page pinned (``state``,
    e.g. its time range, so a moving "now" neither refuses nor shifts the next pages)."""
    raw = json.dumps({"o": offset, "q": _digest(query), **state}, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_state(cursor: str | None, query: dict[str, Any]) -> dict[str, Any]:
    """The cursor's content (``{}`` without one); 400 if it is not one of ours for this query."""
    if not cursor:
        return {}
    try:
        d = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        ok = isinstance(d, dict) and d["q"] == _digest(query) and int(d["o"]) >= 0
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
        ok = False
    if not ok:
        raise Problem(400, "the cursor is not valid for this query; start again without it")
    return d


def decode_cursor(cursor: str | None, query: dict[str, Any]) -> int:
    """The offset a cursor points at (0 without one)."""
    return int(cursor_state(cursor, query).get("o", 0))


def pinned_range(state: dict[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The [since, until) the first page pinned in its cursor, if any."""
    if "r" not in state:
        return None
    try:
        start, end = (pinned_time(x) for x in state["r"])
    except (TypeError, ValueError):
        raise Problem(400, "the cursor is not valid for this query; start again without it") from None
    return start, end


def pinned_time(value: Any) -> pd.Timestamp:
    """A time a cursor pinned (400 if it is not one: a cursor is opaque, not trusted)."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        ts = pd.NaT
    if ts is pd.NaT or ts.tzinfo is None:
        raise Problem(400, "the cursor is not valid for this query; start again without it")
    return ts


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None


def page(df: pd.DataFrame, limit: int, cursor: str | None, query: dict[str, Any], to_items,
         **state: Any) -> Page:
    """Rows [offset, offset + limit) of ``df`` as items (``to_items``: frame → list of dicts);
    the next cursor carries ``state``."""
    offset = decode_cursor(cursor, query)
    part = df.iloc[offset:offset + limit]
    nxt = encode_cursor(offset + limit, query, **state) if offset + limit < len(df) else None
    return Page(to_items(part) if len(part) else [], len(df), nxt)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: ISO-8601 UTC times, NaN/NaT as null, numpy scalars as Python ones."""
    if df.empty:
        return []
    return json.loads(df.to_json(orient="records", date_format="iso", date_unit="ms"))


def conditional(request: Request, body: Any, snapshots: list[Snapshot], *, status: int = 200,
                media_type: str = "application/json", headers: dict[str, str] | None = None) -> Response:
    """``body`` as JSON with ``ETag``/``Last-Modified`` (304 if the client's ETag still holds)."""
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    versions = ".".join(str(s.version) for s in snapshots)
    # the content, not the cursor to the next page (it pins the time of the request that made it)
    # weak: the content, not the cursor to the next page (it pins the time of the request that
    # made it) nor the minutes since a reading (they grow with the clock, not with the data)
    digest = hashlib.sha256(json.dumps(_content(body), sort_keys=True, default=str).encode()).hexdigest()[:16]
    etag = f'W/"v{versions}-{digest}"'
    h = {"ETag": etag, "Cache-Control": "private, no-cache", **(headers or {})}
    times = [s.modified for s in snapshots if s.modified is not None]
    if times:
        h["Last-Modified"] = format_datetime(max(times).astimezone(UTC), usegmt=True)
    sent = [t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")]
    if etag.removeprefix("W/") in sent or "*" in sent:
        return Response(status_code=304, headers=h)
    return Response(raw, status, headers=h, media_type=media_type)


VOLATILE = frozenset({"next_cursor", "link", "minutes_since"})


def _content(body: Any) -> Any:
    """``body`` without what changes with the clock or the request rather than with the data."""
    if isinstance(body, dict):
        return {k: _content(v) for k, v in body.items() if k not in VOLATILE}
    if isinstance(body, list):
        return [_content(v) for v in body]
    return body


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})


def link_next(request: Request, cursor: str | None) -> dict[str, str]:
    """An RFC 8288 ``Link: <…>; rel="next"`` header for the next page, if there is one."""
    if not cursor:
        return {}
    url = request.url.include_query_params(cursor=cursor)
    return {"Link": f'<{url}>; rel="next"'}


def parse_time(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
