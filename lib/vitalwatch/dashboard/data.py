"""What the dashboard reads: the gold (and silver) Delta tables through delta-rs, MongoDB
(registry, acknowledgements, users, pipeline progress) and the MLflow registry.

delta-rs (``deltalake``), not Spark: a page must load in well under 2 s and the app serves many
clinicians at once. delta-rs reads a table's log and Parquet files straight into Arrow in the
Streamlit process (``patient_status`` of 10,000 patients in tens of milliseconds); a
SparkSession would hold a JVM per app, take seconds to start, and plan every query. The
tables are the pipeline's own, written by delta-spark; delta-rs only reads them.

Every read is cheap to repeat: a table is re-read only when its Delta version changed
(:class:`TableCache`), so auto-refresh costs a log lookup when nothing new arrived."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from vitalwatch.config import Settings
from vitalwatch.pipeline.lake import (
    GOLD_ALERTS,
    GOLD_SCORES,
    GOLD_STATUS,
    MODEL_MONITORING,
    SILVER_VITALS,
)

STATUS_COLUMNS = ["patient_id", "observation_id", "effective_time", "systolic", "diastolic", "heart_rate",
                  "respiratory_rate", "spo2", "temperature", "news2", "crisis_now", "level", "model_name",
                  "model_version", "state", "updated_time"]
SCORE_COLUMNS = ["patient_id", "observation_id", "effective_time", "systolic", "diastolic", "heart_rate",
                 "news2", "level", "crisis_now", "model_name", "model_version", "score_status", "scored_time"]
ALERT_COLUMNS = ["alert_id", "kind", "level", "previous_level", "patient_id", "observation_id", "effective_time",
                 "reasons", "news2", "crisis_now", "systolic", "diastolic", "heart_rate", "model_name",
                 "model_version", "ward", "source", "raised_time"]


def _risk_columns(settings: Settings) -> list[str]:
    return [f"risk_{h}h" for h in settings.clinical.horizons_hours]


@dataclass
class _Entry:
    version: int
    checked: float
    frame: pd.DataFrame
    modified: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    """One version of a table as read: its rows, Delta version and commit time (the API's
    ``ETag`` and ``Last-Modified``)."""

    frame: pd.DataFrame
    version: int
    modified: datetime | None


@dataclass
class TableCache:
    """Whole small tables (patient status, alerts) kept in memory by Delta version.

    One instance serves every session of the app (``st.cache_resource``) or every request of
    the API: the table's log is looked at once per ``min_interval_s``, the data re-read only
    when a commit arrived."""

    min_interval_s: float
    _entries: dict[tuple, _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, path: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self.snapshot(path, columns).frame

    def snapshot(self, path: str, columns: list[str] | None = None) -> Snapshot:
        from deltalake import DeltaTable

        key = (path, tuple(columns or ()))
        now = time.monotonic()
        with self._lock:
            e = self._entries.get(key)
            if e is not None and now - e.checked < self.min_interval_s:
                return Snapshot(e.frame, e.version, e.modified)
        dt = DeltaTable(path)
        v = dt.version()
        if e is not None and e.version == v:
            e.checked = now
            return Snapshot(e.frame, e.version, e.modified)
        frame = read_delta(dt, columns)
        with self._lock:
            self._entries[key] = _Entry(v, now, frame, commit_time(dt))
        return Snapshot(frame, v, self._entries[key].modified)


def commit_time(dt) -> datetime | None:
    """When the table's current version was committed (None if its log does not say)."""
    try:
        ts = dt.history(1)[0].get("timestamp")
    except Exception:  # an unreadable commit info only costs the Last-Modified header
        return None
    return datetime.fromtimestamp(ts / 1000, UTC) if ts else None


def read_delta(dt, columns: list[str] | None, filters: list | None = None) -> pd.DataFrame:
    have = set(dt.schema().to_arrow().names) if hasattr(dt.schema(), "to_arrow") else None
    cols = [c for c in columns if have is None or c in have] if columns else None
    table = dt.to_pyarrow_table(columns=cols, filters=filters)
    df = table.to_pandas(timestamp_as_object=False)
    for c in df.columns:  # the pipeline writes naive UTC timestamps; make that explicit
        if pd.api.types.is_datetime64_any_dtype(df[c]) and getattr(df[c].dt, "tz", None) is None:
            df[c] = df[c].dt.tz_localize(UTC)
    return df


class Gold:
    """The lake as the pages need it."""

    def __init__(self, settings: Settings, cache: TableCache | None = None) -> None:
        self.s = settings
        self.cache = cache or TableCache(settings.dashboard.cache_seconds)

    def path(self, table: tuple[str, str]) -> str:
        return self.s.table_path(*table)

    def status(self) -> pd.DataFrame:
        """``gold/patient_status``: one row per patient, the latest reading's vitals and risk."""
        return self.cache.get(self.path(GOLD_STATUS), STATUS_COLUMNS + _risk_columns(self.s))

    def alerts(self) -> pd.DataFrame:
        """``gold/alerts``: every alert event (few: kept whole in memory)."""
        return self.cache.get(self.path(GOLD_ALERTS), ALERT_COLUMNS + _risk_columns(self.s))

    def scores(self, patient_id: str, since: datetime) -> pd.DataFrame:
        """One patient's scored readings since ``since`` (partition-pruned by date)."""
        from deltalake import DeltaTable

        filters = [("patient_id", "=", patient_id), ("effective_date", ">=", since.date())]
        df = read_delta(DeltaTable(self.path(GOLD_SCORES)), SCORE_COLUMNS + _risk_columns(self.s), filters)
        df = df[df["observation_id"].notna() & (df["effective_time"] >= _utc(since))
                & (df["score_status"] != "untimely")]  # its own time is not to be trusted: not on a trend
        return df.sort_values("effective_time").reset_index(drop=True)

    def vitals(self, patient_id: str, since: datetime) -> pd.DataFrame:
        """One patient's silver values since ``since``: effective_time, vital, value."""
        from deltalake import DeltaTable

        filters = [("patient_id", "=", patient_id), ("effective_date", ">=", since.date())]
        df = read_delta(DeltaTable(self.path(SILVER_VITALS)), ["patient_id", "effective_time", "vital", "value"], filters)
        df = df[df["effective_time"] >= _utc(since)]
        return df.sort_values("effective_time").reset_index(drop=True)


MONITORING_COLUMNS = ["day", "role", "model_version", "horizon_h", "readings", "positives", "auroc", "auprc", "ece",
                      "mean_predicted", "observed_rate", "decile_predicted", "decile_observed", "decile_count",
                      "onsets", "burden_ph_medium", "burden_ph_high", "warned_medium", "warned_high",
                      "lead_median_h_medium", "psi", "psi_max", "psi_group", "drift_readings", "breaches",
                      "computed_time"]


def model_monitoring(settings: Settings, days: int) -> pd.DataFrame:
    """``gold/model_monitoring`` of its newest ``days`` days — counted back from the newest day
    it holds, not the clock: a day is the readings' date, and a replay of past readings is
    monitored too. Empty before the stage's first row (a lake without the table is no error)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dt = DeltaTable(settings.table_path(*MODEL_MONITORING))
    except TableNotFoundError:
        return pd.DataFrame(columns=MONITORING_COLUMNS)
    df = read_delta(dt, MONITORING_COLUMNS)
    if df.empty:
        return df
    day = pd.to_datetime(df["day"]).dt.date
    return df[(day >= day.max() - timedelta(days=days - 1)).to_numpy()].reset_index(drop=True)


def observation_counts(settings: Settings, patients: list[str] | None = None) -> tuple[pd.DataFrame, int]:
    """Per patient: observations, values per vital, first and last effective time (silver),
    and how many messages or resources the quarantine holds."""
    from deltalake import DeltaTable

    from vitalwatch.dashboard.rules import count_observations
    from vitalwatch.pipeline.lake import SILVER_QUARANTINE

    filters = [("patient_id", "in", list(patients))] if patients else None
    values = read_delta(DeltaTable(settings.table_path(*SILVER_VITALS)),
                   ["patient_id", "observation_id", "vital", "effective_time"], filters)
    quarantined = DeltaTable(settings.table_path(*SILVER_QUARANTINE)).to_pyarrow_dataset().count_rows()
    return count_observations(values), int(quarantined)


def input_outcomes(settings: Settings, cache: TableCache | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the silver stage did not accept: quarantined rows by reason, and a Bundle's
    resources that are not vital signs (counted, not quarantined) by resource type."""
    from vitalwatch.pipeline.lake import SILVER_IGNORED, SILVER_QUARANTINE

    cache = cache or TableCache(settings.dashboard.cache_seconds)
    q = cache.get(settings.table_path(*SILVER_QUARANTINE), ["reason"])
    ign = cache.get(settings.table_path(*SILVER_IGNORED), ["resource_type", "resources"])
    by_reason = (q.groupby("reason").size().rename("rows").reset_index().sort_values("rows", ascending=False)
                 if len(q) else pd.DataFrame(columns=["reason", "rows"]))
    by_type = (ign.groupby("resource_type")["resources"].sum().reset_index().sort_values("resources", ascending=False)
               if len(ign) else pd.DataFrame(columns=["resource_type", "resources"]))
    return by_reason.reset_index(drop=True), by_type.reset_index(drop=True)


def _utc(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


# -- MongoDB -------------------------------------------------------------------------------
def mongo_db(settings: Settings):
    """The app's MongoDB database, connected as its own account (``dashboard.mongo_user``)."""
    import pymongo

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.sinks.mongo import user_password, user_uri

    server = resolve(settings, ("mongo",)).mongo_uri or ""
    user = settings.dashboard.mongo_user
    uri = user_uri(server, user, user_password(settings, user), settings.mongo.database)
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=settings.mongo.server_selection_timeout_ms,
                               tz_aware=True)[settings.mongo.database]


def registry(db, identifiers: bool) -> pd.DataFrame:
    """patient_id, ward (and name, mrn when ``identifiers``) of every registered patient."""
    fields = {"ward": 1, **({"name": 1, "mrn": 1} if identifiers else {})}
    rows = [{"patient_id": d["_id"], **{k: d.get(k) for k in fields}} for d in db.patients.find({}, fields)]
    return pd.DataFrame(rows, columns=["patient_id", *fields])


def acknowledgements(db, alert_ids: list[str] | None = None) -> pd.DataFrame:
    q = {"_id": {"$in": list(alert_ids)}} if alert_ids is not None else {}
    rows = [{"alert_id": d["_id"], "ack_user": d.get("user"), "ack_note": d.get("note"),
             "ack_time": d.get("acknowledged_time")} for d in db.alert_acks.find(q)]
    return pd.DataFrame(rows, columns=["alert_id", "ack_user", "ack_note", "ack_time"])


def progress(db, hours: float = 1.0, limit: int = 5000) -> pd.DataFrame:
    """The running queries' progress events of the last ``hours`` (see pipeline.monitor)."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    cur = db.pipeline_progress.find({"timestamp": {"$gte": since}}, {"_id": 0}).sort("timestamp", -1).limit(limit)
    return pd.DataFrame(list(cur))


# -- MLflow --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChampionInfo:
    name: str
    version: str | None
    run_id: str | None = None
    created: datetime | None = None
    metrics: pd.DataFrame | None = None
    reliability_png: bytes | None = None
    tags: dict[str, Any] = field(default_factory=dict)


def champion(settings: Settings) -> ChampionInfo:
    """The champion risk model: version, its held-out metric table and calibration plot."""
    import tempfile
    from pathlib import Path

    from mlflow.exceptions import MlflowException

    from vitalwatch.models.registry import client

    name = settings.models.risk_model_name
    c = client(settings)
    try:
        mv = c.get_model_version_by_alias(name, settings.models.champion_alias)
    except MlflowException:
        return ChampionInfo(name, None)
    metrics, png = None, None
    with tempfile.TemporaryDirectory() as tmp:
        for artifact in ("evaluation/metrics.csv", "evaluation/reliability.png"):
            try:
                p = Path(c.download_artifacts(mv.run_id, artifact, tmp))
            except (MlflowException, OSError):
                continue
            if p.suffix == ".csv":
                metrics = pd.read_csv(p)
            else:
                png = p.read_bytes()
    created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC) if mv.creation_timestamp else None
    return ChampionInfo(name, str(mv.version), mv.run_id, created, metrics, png, dict(mv.tags))
