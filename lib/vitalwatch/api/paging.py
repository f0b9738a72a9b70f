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


def encode_cursor(offset: int, query: dict[str, Any]) -> str:
    raw = json.dumps({"o": offset, "q": _digest(query)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, query: dict[str, Any]) -> int:
    """The offset a cursor points at (0 without one); 400 if it is not one of ours for this query."""
    if not cursor:
        return 0
    try:
        d = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = int(d["o"])
        ok = d["q"] == _digest(query) and offset >= 0
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise Problem(400, "the cursor is not valid for this query; start again without it")
    return offset


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None


def page(df: pd.DataFrame, limit: int, cursor: str | None, query: dict[str, Any], to_items) -> Page:
    """Rows [offset, offset + limit) of ``df`` as items (``to_items``: frame → list of dicts)."""
    offset = decode_cursor(cursor, query)
    part = df.iloc[offset:offset + limit]
    nxt = encode_cursor(offset + limit, query) if offset + limit < len(df) else None
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
    etag = f'"v{versions}-{hashlib.sha256(raw).hexdigest()[:16]}"'
    h = {"ETag": etag, "Cache-Control": "private, no-cache", **(headers or {})}
    times = [s.modified for s in snapshots if s.modified is not None]
    if times:
        h["Last-Modified"] = format_datetime(max(times).astimezone(UTC), usegmt=True)
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=h)
    return Response(raw, status, headers=h, media_type=media_type)


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
