"""``/api/v1/alerts``: the alert events (newest first) with their acknowledgement, one alert,
and acknowledging it as the signed-in user (idempotent: the first acknowledgement stands)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Body, Path, Query, Request, Response

from vitalwatch.api import reads
from vitalwatch.api.context import Caller, CallerDep
from vitalwatch.api.paging import (
    conditional,
    cursor_state,
    json_response,
    link_next,
    page,
    parse_time,
    pinned_time,
    records,
)
from vitalwatch.api.patients import Cursor, Limit, limit_of, seen, shown
from vitalwatch.api.problems import Problem
from vitalwatch.api.schemas import Acknowledgement, AcknowledgeRequest, Alert, AlertPage, Level
from vitalwatch.dashboard import rules

router = APIRouter(prefix="/alerts", tags=["alerts"])
AlertId = Annotated[str, Path(min_length=1, max_length=256, description="alert id (analysts: its pseudonym)")]


def _items(df: pd.DataFrame) -> list[dict]:
    out = records(df.assign(state=df["ack_time"].notna().map({True: "acknowledged", False: "open"}))
                  .rename(columns={"ack_user": "acknowledged_by", "ack_time": "acknowledged_time",
                                   "ack_note": "acknowledgement_note"}))
    for it in out:
        if it.get("reasons") is None:
            it.pop("reasons", None)
    return out


def _inbox(c: Caller, level, ward, state) -> tuple[pd.DataFrame, list]:
    snap = reads.alerts(c.ctx)
    acks = reads.acks(c.ctx)
    df = rules.alert_inbox(snap.frame, acks, levels=level, wards=ward, state=state)
    return df, [snap]


@router.get("", response_model=AlertPage, summary="Alert events, newest first")
def list_alerts(request: Request, c: CallerDep,
                level: Annotated[list[Level] | None, Query(description="only these levels")] = None,
                ward: Annotated[list[str] | None, Query(description="only these wards")] = None,
                state: Annotated[Literal["open", "acknowledged", "all"], Query()] = "open",
                since: Annotated[datetime | None, Query(description="raised at or after")] = None,
                until: Annotated[datetime | None, Query(description="raised before")] = None,
                limit: Limit = None, cursor: Cursor = None) -> Response:
    c.need("alerts")
    df, snaps = _inbox(c, level, ward, state)
    query = {"level": level, "ward": ward, "state": state, "since": since, "until": until}
    if (t := parse_time(since)) is not None:
        df = df[df["raised_time"] >= t]
    if (t := parse_time(until)) is not None:
        df = df[df["raised_time"] < t]
        end = t
    else:  # newest first: the first page pins "now", so alerts raised meanwhile do not shift the next pages
        pinned = cursor_state(cursor, query).get("u")
        end = pinned_time(pinned) if pinned else pd.Timestamp.now(tz="UTC")
        df = df[df["raised_time"].isna() | (df["raised_time"] <= end)]
    p = page(df, limit_of(c, limit), cursor, query, _items, u=end.isoformat())
    seen(c, "alerts", [it["patient_id"] for it in p.items], state=state)
    body = {"items": shown(c, p.items, ("patient_id", "alert_id")), "total": p.total, "next_cursor": p.next_cursor}
    return conditional(request, body, snaps, headers=link_next(request, p.next_cursor))


def find(c: Caller, ref: str) -> tuple[pd.DataFrame, list]:
    """The alert ``ref`` names (a pseudonym for analysts) with its acknowledgement, or 404."""
    snap = reads.alerts(c.ctx)
    ids = snap.frame["alert_id"]
    if c.identifiers:
        rows = snap.frame[ids == ref]
    else:
        aid = (c.ctx.lookup("alert", sorted(set(ids.dropna())), ref.removeprefix("anon-"))
               if ref.startswith("anon-") else None)
        rows = snap.frame[ids == aid] if aid is not None else snap.frame.iloc[0:0]
    if rows.empty:
        raise Problem(404, "no such alert")
    return rules.alert_inbox(rows, reads.acks(c.ctx, rows["alert_id"].tolist()), state="all",
                             kinds_resolved=True), [snap]


@router.get("/{alert_id}", response_model=Alert, summary="One alert event")
def get_alert(request: Request, c: CallerDep, alert_id: AlertId) -> Response:
    c.need("alerts")
    df, snaps = find(c, alert_id)
    item = _items(df.head(1))[0]
    seen(c, "alert", [item["patient_id"]], alert_id=item["alert_id"])
    return conditional(request, shown(c, [item], ("patient_id", "alert_id"))[0], snaps)


@router.post("/{alert_id}/acknowledge", response_model=Acknowledgement,
             summary="Acknowledge an alert as the signed-in user (idempotent)")
def acknowledge(c: CallerDep, alert_id: AlertId,
                body: Annotated[AcknowledgeRequest | None, Body()] = None) -> Response:
    from vitalwatch.sinks.mongo import ACK_NOTE_MAX
    from vitalwatch.sinks.mongo import acknowledge as record_ack

    c.need("acknowledge")
    note = (body.note if body else "")
    if len(note) > ACK_NOTE_MAX:
        raise Problem(400, f"the note may be at most {ACK_NOTE_MAX} characters")
    if not c.identifiers:  # a role that sees pseudonyms acknowledges by them
        alert_id = str(find(c, alert_id)[0]["alert_id"].iloc[0])
    try:
        first = record_ack(c.ctx.db, alert_id, c.username, note, role=c.role, source=c.source)
    except KeyError:
        raise Problem(404, "no such alert") from None
    doc = c.ctx.db.alert_acks.find_one({"_id": alert_id}) or {}
    return json_response({"alert_id": c.alert_ref(alert_id), "acknowledged": True, "first": first,
                          "acknowledged_by": doc.get("user", c.username),
                          "acknowledged_time": doc["acknowledged_time"].isoformat()
                          if doc.get("acknowledged_time") else None})
