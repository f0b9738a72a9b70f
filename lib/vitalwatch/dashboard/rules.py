"""What each page shows, as pure functions of the data it read (pandas in, pandas out), so the
pages only draw and the rules are tested without a browser."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from vitalwatch.config import ClinicalConfig

LEVELS = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
LEVEL_RANK = {lv: i for i, lv in enumerate(reversed(LEVELS))}  # LOW 0 … CRITICAL 3
LEVEL_COLOURS = {"CRITICAL": "#d62728", "HIGH": "#ff7f0e", "MEDIUM": "#e5c100", "LOW": "#2ca02c"}
# severity as plain geometric shapes (U+25CF/U+25CB, in every text font): readable at any table
# size and without an emoji font; the pages colour them where the table is small enough to style
LEVEL_MARKS = {"CRITICAL": "●●●", "HIGH": "●●○", "MEDIUM": "●○○", "LOW": "○○○"}
MISSING = "—"  # what every page shows for a missing value (tables: ``st.dataframe(placeholder=MISSING)``)
ALERT_STATES = ("open", "acknowledged", "all")
VITAL_LABELS = {"systolic": "Systolic (mmHg)", "diastolic": "Diastolic (mmHg)", "heart_rate": "Heart rate (/min)",
                "respiratory_rate": "Respiratory rate (/min)", "spo2": "SpO₂ (%)", "temperature": "Temperature (°C)"}


def shown(value: object, fmt: str = "{}") -> str:
    """A value as a page prints it (metric, caption): ``fmt`` applied, or :data:`MISSING` for
    None/NaN/NaT/pd.NA, so a page never says "None", "nan" or "NaT"."""
    try:
        missing = value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes: pd.isna answers per element
        missing = False
    return MISSING if missing else fmt.format(value)


def _now(now: datetime | None) -> pd.Timestamp:
    return pd.Timestamp(now or datetime.now(UTC)).tz_convert(UTC)


def ward_overview(status: pd.DataFrame, registry: pd.DataFrame, *, now: datetime | None = None,
                  wards: list[str] | None = None, levels: list[str] | None = None,
                  include_discharged: bool = False) -> pd.DataFrame:
    """Patients sorted by risk: level first (CRITICAL on top), then 6 h risk, then 1 h, then
    the most recent reading; with their ward and the minutes since their last reading."""
    df = status.merge(registry, on="patient_id", how="left")
    df["ward"] = df["ward"].fillna("unassigned")
    if not include_discharged and "state" in df:
        df = df[df["state"] != "discharged"]
    df = _filtered(df, wards, levels)
    # a device clock ahead of ours (or the simulator's) would give negative ages: shown as 0
    df = df.assign(minutes_since=((_now(now) - df["effective_time"]).dt.total_seconds() / 60).clip(lower=0).round(1),
                   _rank=df["level"].map(LEVEL_RANK).fillna(-1))
    risk = [c for c in ("risk_6h", "risk_1h") if c in df]
    df = df.sort_values(["_rank", *risk, "effective_time", "patient_id"],
                        ascending=[False] * (1 + len(risk)) + [False, True], na_position="last")
    return df.drop(columns="_rank").reset_index(drop=True)


def _filtered(df: pd.DataFrame, wards: list[str] | None, levels: list[str] | None) -> pd.DataFrame:
    """The rows in ``wards`` and at ``levels`` (None or empty: all), as the pages' filters say."""
    if wards:
        df = df[df["ward"].isin(wards)]
    if levels:
        df = df[df["level"].isin(levels)]
    return df


def level_counts(overview: pd.DataFrame) -> dict[str, int]:
    counts = overview["level"].value_counts()
    return {lv: int(counts.get(lv, 0)) for lv in LEVELS}


def alert_inbox(alerts: pd.DataFrame, acks: pd.DataFrame, *, levels: list[str] | None = None,
                wards: list[str] | None = None, state: str = "open", kinds_resolved: bool = False) -> pd.DataFrame:
    """Alert events, newest first, with their acknowledgement (user, time, note) if any.

    ``state``: open (not acknowledged), acknowledged, or all. Resolution events (the patient
    is back to LOW) need no acknowledgement: shown only with ``kinds_resolved``."""
    if state not in ALERT_STATES:
        raise ValueError(f"state must be one of {ALERT_STATES}")
    df = alerts.merge(acks, on="alert_id", how="left")
    if not kinds_resolved and "kind" in df:
        df = df[df["kind"] != "resolved"]
    df = _filtered(df, wards, levels)
    acked = df["ack_time"].notna()
    df = df[~acked] if state == "open" else df[acked] if state == "acknowledged" else df
    return df.sort_values(["raised_time", "alert_id"], ascending=[False, True]).reset_index(drop=True)


def vital_trends(vitals: pd.DataFrame) -> pd.DataFrame:
    """Silver values (effective_time, vital, value) → one column per vital (the feature
    vector's names: systolic, diastolic, heart_rate, …), by time."""
    from vitalwatch.features.vector import BP_VITALS, OTHER_VITALS

    if vitals.empty:
        return pd.DataFrame(columns=["effective_time", *VITAL_LABELS])
    named = vitals.assign(vital=vitals["vital"].map({**BP_VITALS, **OTHER_VITALS}))
    wide = named.dropna(subset=["vital"]).pivot_table(index="effective_time", columns="vital", values="value",
                                                      aggfunc="last")
    return wide.reindex(columns=[c for c in VITAL_LABELS if c in wide.columns]).reset_index()


def crisis_thresholds(clinical: ClinicalConfig) -> dict[str, float]:
    """The lines drawn on the blood-pressure chart (docs/requirements.md §4)."""
    return {"systolic": clinical.crisis_systolic, "diastolic": clinical.crisis_diastolic}


def risk_history(scores: pd.DataFrame, horizons: list[int]) -> pd.DataFrame:
    """Risk per horizon over time (long form, for one line per horizon), with the model
    version behind each score."""
    cols = [f"risk_{h}h" for h in horizons if f"risk_{h}h" in scores]
    if scores.empty or not cols:
        return pd.DataFrame(columns=["effective_time", "horizon", "risk", "model_version"])
    long = scores.melt(id_vars=["effective_time", "model_name", "model_version", "level"], value_vars=cols,
                       var_name="horizon", value_name="risk")
    long["horizon"] = long["horizon"].str.removeprefix("risk_")
    return long.dropna(subset=["risk"]).sort_values(["effective_time", "horizon"]).reset_index(drop=True)


def model_versions(scores: pd.DataFrame) -> pd.DataFrame:
    """Which model versions scored this patient, over which period."""
    if scores.empty:
        return pd.DataFrame(columns=["model_name", "model_version", "first", "last", "readings"])
    g = scores.groupby(["model_name", "model_version"], dropna=False)["effective_time"]
    return (g.agg(first="min", last="max", readings="count").reset_index()
            .sort_values("first").reset_index(drop=True))


def pipeline_health(progress: pd.DataFrame) -> pd.DataFrame:
    """Latest progress per streaming query: input and processing rates, batch duration, state
    rows, Kafka lag (offsets behind the newest), seconds since it last reported, and its
    ``health`` — "degraded: <stage> failing since <time>: <error>" or "ok" — from the newest
    health record of its application (``kind: health``, :mod:`vitalwatch.pipeline.health`).
    Degraded stages first; a stage that is failing has health but perhaps no progress."""
    cols = ["query", "health", "batch_id", "timestamp", "input_rows_per_s", "processed_rows_per_s",
            "batch_duration_ms", "num_input_rows", "state_rows", "kafka_lag", "seconds_since"]
    if progress.empty:
        return pd.DataFrame(columns=cols)
    is_health = progress["kind"].eq("health") if "kind" in progress else pd.Series(False, index=progress.index)
    prog, health = progress[~is_health], progress[is_health]
    latest = prog.sort_values("timestamp").groupby("query", as_index=False).tail(1)
    if len(health):
        h = health.sort_values("timestamp").groupby("query", as_index=False).tail(1)[["query", "line"]]
        latest = latest.drop(columns=[c for c in ("line",) if c in latest]).merge(h, on="query", how="outer")
        latest["health"] = latest["line"].fillna("ok")
    else:
        latest["health"] = "ok"
    now = pd.Timestamp(datetime.now(UTC))
    ts = pd.to_datetime(latest["timestamp"], utc=True)
    latest = latest.assign(seconds_since=(now - ts).dt.total_seconds().round(0))
    for c in cols:
        if c not in latest:
            latest[c] = np.nan
    latest["_ok"] = ~latest["health"].astype(str).str.startswith("degraded")
    return latest.sort_values(["_ok", "query"])[cols].reset_index(drop=True)


def key_values(mapping: dict | None) -> pd.DataFrame:
    """A small dict (a model version's tags) as a two-column table, keys sorted, values as text:
    the model page shows it instead of a raw JSON widget."""
    items = sorted((mapping or {}).items())
    return pd.DataFrame({"key": [str(k) for k, _ in items], "value": [shown(v) for _, v in items]},
                        columns=["key", "value"])


def deidentify(df: pd.DataFrame) -> pd.DataFrame:
    """Drop direct identifiers (for roles without ``identifiers``)."""
    return df.drop(columns=[c for c in ("name", "mrn") if c in df.columns])


def count_observations(values: pd.DataFrame) -> pd.DataFrame:
    """Silver values (patient_id, observation_id, vital, effective_time) → one row per patient:
    distinct observations, values per vital (``n_<vital>``), first and last reading; most
    observations first."""
    if values.empty:
        return pd.DataFrame(columns=["patient_id", "observations", "first", "last"])
    per = values.pivot_table(index="patient_id", columns="vital", values="observation_id", aggfunc="count",
                             fill_value=0)
    per.columns = [f"n_{c}" for c in per.columns]
    g = values.groupby("patient_id")
    out = pd.DataFrame({"observations": g["observation_id"].nunique(), "first": g["effective_time"].min(),
                        "last": g["effective_time"].max()}).join(per).reset_index()
    return out.sort_values(["observations", "patient_id"], ascending=[False, True]).reset_index(drop=True)


MONITORING_METRICS = {"auroc": "AUROC", "auprc": "AUPRC", "ece": "calibration error (ECE)",
                      "psi_max": "largest drift (PSI)", "burden_ph_medium": "alert events ≥ MEDIUM per patient-hour",
                      "warned_medium": "crisis onsets warned (≥ MEDIUM)"}


def monitoring_series(mon: pd.DataFrame, horizon_h: int) -> pd.DataFrame:
    """The Model page's charts: one row per (day, model, metric) for one horizon; ``model`` is
    "champion v3" / "shadow v4", so a challenger is drawn beside the champion."""
    cols = ["day", "model", "metric", "value"]
    d = mon[mon["horizon_h"] == horizon_h] if len(mon) else mon
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.assign(model=d["role"] + " v" + d["model_version"].astype(str), day=pd.to_datetime(d["day"]))
    long = d.melt(id_vars=["day", "model"], value_vars=[c for c in MONITORING_METRICS if c in d],
                  var_name="metric", value_name="value")
    long["metric"] = long["metric"].map(MONITORING_METRICS)
    return long.dropna(subset=["value"]).sort_values(["metric", "model", "day"])[cols].reset_index(drop=True)


def latest_deciles(mon: pd.DataFrame, horizon_h: int) -> pd.DataFrame:
    """Observed vs predicted per decile of predicted risk, on the newest day of each model."""
    cols = ["model", "day", "decile", "predicted", "observed", "readings"]
    d = mon[mon["horizon_h"] == horizon_h] if len(mon) else mon
    if d.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for _, r in d.sort_values("day").groupby(["role", "model_version"]).tail(1).iterrows():
        for i, (p, o, n) in enumerate(zip(r["decile_predicted"], r["decile_observed"], r["decile_count"], strict=True)):
            rows.append({"model": f"{r['role']} v{r['model_version']}", "day": r["day"], "decile": i + 1,
                         "predicted": p, "observed": o, "readings": int(n)})
    return pd.DataFrame(rows, columns=cols)


def system_alerts(mon: pd.DataFrame) -> list[str]:
    """The health page's system alerts: each distinct breach, newest day first (a drift is the
    same for every horizon and model: said once)."""
    if mon.empty or "breaches" not in mon:
        return []
    out: list[str] = []
    for _, r in mon.sort_values("day", ascending=False).iterrows():
        for b in (r["breaches"] if r["breaches"] is not None else []):
            line = f"{pd.Timestamp(r['day']):%Y-%m-%d}: {b}"
            if line not in out:
                out.append(line)
    return out
