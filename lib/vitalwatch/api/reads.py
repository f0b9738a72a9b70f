"""What the API reads: gold and silver through delta-rs (whole small tables cached by Delta
version; one patient's history partition-pruned by date), and MongoDB's registry and
acknowledgements."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import NoReturn

import pandas as pd

from vitalwatch.api.context import Context
from vitalwatch.api.problems import Problem
from vitalwatch.dashboard.data import (
    ALERT_COLUMNS,
    SCORE_COLUMNS,
    STATUS_COLUMNS,
    Snapshot,
    acknowledgements,
    commit_time,
    read_delta,
)
from vitalwatch.pipeline.lake import GOLD_ALERTS, GOLD_SCORES, GOLD_STATUS, SILVER_VITALS

REGISTRY_FIELDS = ("ward", "name", "mrn", "birth_date", "device_id")
OBSERVATION_COLUMNS = ["observation_id", "patient_id", "device_id", "effective_time", "vital", "value", "unit",
                       "loinc", "status"]
UNAVAILABLE = "the lake is not available yet (its tables have not been created); try again"


def _risk(ctx: Context) -> list[str]:
    return [f"risk_{h}h" for h in ctx.s.clinical.horizons_hours]


def _lake_error(e: Exception) -> NoReturn:
    """A table not created yet (a new lake) is 503 "try again"; anything else stays what it is."""
    if type(e).__name__ in ("TableNotFoundError", "FileNotFoundError"):
        raise Problem(503, UNAVAILABLE, headers={"Retry-After": "10"}) from e
    raise e


def _snapshot(ctx: Context, table: tuple[str, str], columns: list[str]) -> Snapshot:
    try:
        return ctx.cache.snapshot(ctx.s.table_path(*table), columns)
    except Exception as e:
        _lake_error(e)


def status(ctx: Context) -> Snapshot:
    """``gold/patient_status``: one row per patient."""
    return _snapshot(ctx, GOLD_STATUS, STATUS_COLUMNS + _risk(ctx))


def known_patients(ctx: Context) -> list[str]:
    """Every patient id the API can name: scored (gold status) or registered (MongoDB), sorted."""
    ids = pd.concat([status(ctx).frame["patient_id"], ctx.registry.get(ctx.db)["patient_id"]]).dropna()
    return sorted(set(ids))


def alerts(ctx: Context) -> Snapshot:
    """``gold/alerts``: every alert event."""
    return _snapshot(ctx, GOLD_ALERTS, [*ALERT_COLUMNS, "late", *_risk(ctx)])


class Registry:
    """The registry (ward and identifiers) of every patient, re-read at most every ``ttl_s``."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._at, self._frame = -1e9, None
        self._lock = threading.Lock()

    def get(self, db) -> pd.DataFrame:
        with self._lock:
            if self._frame is not None and time.monotonic() - self._at < self.ttl_s:
                return self._frame
        fields = dict.fromkeys(REGISTRY_FIELDS, 1)
        rows = [{"patient_id": d["_id"], **{k: d.get(k) for k in REGISTRY_FIELDS}}
                for d in db.patients.find({}, fields)]
        frame = pd.DataFrame(rows, columns=["patient_id", *REGISTRY_FIELDS])
        with self._lock:
            self._at, self._frame = time.monotonic(), frame
        return frame


def acks(ctx: Context, alert_ids: list[str] | None = None) -> pd.DataFrame:
    return acknowledgements(ctx.db, alert_ids)


def _history(ctx: Context, table: tuple[str, str], columns: list[str], patient_id: str,
             since: pd.Timestamp, until: pd.Timestamp, extra: list | None = None) -> tuple[pd.DataFrame, Snapshot]:
    """One patient's rows with ``since <= effective_time < until`` (partitions pruned by date)."""
    from deltalake import DeltaTable

    try:
        dt = DeltaTable(ctx.s.table_path(*table))
    except Exception as e:
        _lake_error(e)
    filters = [("patient_id", "=", patient_id), ("effective_date", ">=", since.date()),
               ("effective_date", "<=", until.date()), *(extra or [])]
    df = read_delta(dt, columns, filters)
    df = df[(df["effective_time"] >= since) & (df["effective_time"] < until)]
    snap = Snapshot(df, dt.version(), commit_time(dt))
    return df.sort_values("effective_time", kind="stable").reset_index(drop=True), snap


def observations(ctx: Context, patient_id: str, since: pd.Timestamp, until: pd.Timestamp,
                 vitals: list[str] | None) -> tuple[pd.DataFrame, Snapshot]:
    extra = [("vital", "in", list(vitals))] if vitals else None
    return _history(ctx, SILVER_VITALS, OBSERVATION_COLUMNS, patient_id, since, until, extra)


def scores(ctx: Context, patient_id: str, since: pd.Timestamp, until: pd.Timestamp) -> tuple[pd.DataFrame, Snapshot]:
    df, snap = _history(ctx, GOLD_SCORES, SCORE_COLUMNS + _risk(ctx), patient_id, since, until)
    # a discharge row has no reading; an untimely reading's own time is not to be trusted
    df = df[df["observation_id"].notna() & (df["score_status"] != "untimely")].reset_index(drop=True)
    return df, snap


def time_range(ctx: Context, since: datetime | None, until: datetime | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[since, until): defaults to the last ``api.default_hours``; longer than ``max_range_hours`` is refused."""
    from vitalwatch.api.paging import parse_time

    end = parse_time(until) or pd.Timestamp.now(tz="UTC") + timedelta(minutes=1)
    start = parse_time(since) or end - timedelta(hours=ctx.s.api.default_hours)
    if start >= end:
        raise Problem(400, "since must be before until")
    if end - start > timedelta(hours=ctx.s.api.max_range_hours):
        raise Problem(400, f"at most {ctx.s.api.max_range_hours:g} hours in one request; page through time")
    return start, end
