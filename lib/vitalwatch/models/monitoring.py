"""The model live, on delayed outcomes: one row per scored reading and horizon once its outcome
is known (``gold/model_outcomes``), and per day the model's quality on them
(``gold/model_monitoring``). Pure pandas; the ``model_outcomes`` stage
(:mod:`vitalwatch.pipeline.model_outcomes`) does the I/O.

Per (day, model, version, horizon) — ``champion`` is the model that alerted, ``shadow`` the
challenger scored beside it (``gold.shadow_alias``):
- AUROC / AUPRC (NaN unless both outcomes occur), ECE (``models.ece_bins``), mean predicted vs
  observed rate, and observed vs predicted per decile of predicted risk;
- the day's alert path (champion rows): alert burden per level and crisis onsets warned, by
  :func:`vitalwatch.alerts.evaluation.event_metrics` with the 6 h before the day as context;
- feature drift: PSI per slot group against the training reference stored with the champion
  (:mod:`vitalwatch.models.drift`), the same for every row of the day;
- ``breaches``: what crosses ``models.monitoring`` bounds on a day with enough known outcomes —
  a system alert on the health page, never a patient alert.
A day is labelled by its readings' effective date; its outcomes keep arriving for up to the
longest horizon after it, and its row is recomputed as they do.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from vitalwatch.config import MonitoringConfig
from vitalwatch.models.metrics import expected_calibration_error, ranking_metrics
from vitalwatch.models.outcomes import outcomes, timed_readings

OUTCOME_COLUMNS = ["patient_id", "observation_id", "effective_time", "effective_date", "horizon_h", "model_version",
                   "risk", "shadow_model_version", "shadow_risk", "outcome", "outcome_known_time"]
QUALITY_COLUMNS = ["horizon_h", "model_version", "risk", "shadow_model_version", "shadow_risk", "outcome"]
ROLES = (("champion", "model_version", "risk"), ("shadow", "shadow_model_version", "shadow_risk"))
EVENT_KEYS = ("burden_ph_medium", "burden_ph_high", "burden_ph_critical", "warned_medium", "warned_high",
              "lead_median_h_medium")


def outcome_rows(scores: pd.DataFrame, horizons: list[int]) -> pd.DataFrame:
    """``gold/risk_scores`` rows → one row per trusted reading (:func:`timed_readings`) and
    horizon whose outcome is known (:data:`OUTCOME_COLUMNS`; ``outcome`` 1 or 0)."""
    r = outcomes(timed_readings(scores), horizons)
    parts = []
    for h in horizons:
        k = r[r[f"outcome_{h}h"].notna().to_numpy()]
        parts.append(pd.DataFrame({
            "patient_id": k["patient_id"], "observation_id": k["observation_id"],
            "effective_time": k["effective_time"], "effective_date": pd.to_datetime(k["effective_time"]).dt.date,
            "horizon_h": h, "model_version": k.get("model_version"), "risk": k.get(f"risk_{h}h"),
            "shadow_model_version": k.get("shadow_model_version"), "shadow_risk": k.get(f"shadow_risk_{h}h"),
            "outcome": k[f"outcome_{h}h"].astype("int32"), "outcome_known_time": k[f"outcome_{h}h_known_time"]}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=OUTCOME_COLUMNS)
    for c in ("risk", "shadow_risk"):
        out[c] = out[c].astype(float)
    return out[OUTCOME_COLUMNS]


def changed_outcomes(window: pd.DataFrame, horizons: list[int]) -> pd.DataFrame:
    """One patient's outcome rows that readings at or after ``since`` (its earliest new one, a
    column of ``window``) can have set or changed: those of readings from its previous trusted
    reading − the longest horizon on. ``window`` must hold every reading of the patient from
    before that previous one on (a new crisis settles 1s up to a horizon before it; a new
    reading settles 0s up to a horizon before the reading it follows)."""
    since = pd.Timestamp(window["since"].iloc[0])
    out = outcome_rows(window.drop(columns="since"), horizons)
    t = timed_readings(window)["effective_time"]
    earlier = t[(t < since).to_numpy()]
    anchor = min(pd.Timestamp(earlier.max()), since) if len(earlier) else since
    return out[(out["effective_time"] >= anchor - pd.Timedelta(hours=max(horizons))).to_numpy()]


def deciles(y: np.ndarray, p: np.ndarray) -> dict[str, list]:
    """Observed rate vs mean predicted risk per decile of predicted risk (fewer bins when many
    readings share a risk)."""
    if len(p) == 0:
        return {"decile_predicted": [], "decile_observed": [], "decile_count": []}
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)[1:-1]))
    idx = np.searchsorted(edges, p, side="right")
    g = pd.DataFrame({"b": idx, "p": p, "y": y}).groupby("b").agg(p=("p", "mean"), y=("y", "mean"), n=("y", "size"))
    return {"decile_predicted": g["p"].tolist(), "decile_observed": g["y"].tolist(),
            "decile_count": [int(n) for n in g["n"]]}


def quality(y: np.ndarray, p: np.ndarray, ece_bins: int) -> dict[str, Any]:
    """Ranking, calibration and deciles of risks ``p`` against outcomes ``y``."""
    rank = ranking_metrics(y, p) if len(y) else {"auroc": math.nan, "auprc": math.nan}
    return {"readings": len(y), "positives": int(y.sum()), **rank,
            "ece": expected_calibration_error(y, p, ece_bins) if len(y) else math.nan,
            "mean_predicted": float(p.mean()) if len(p) else math.nan,
            "observed_rate": float(y.mean()) if len(y) else math.nan, **deciles(y, p)}


def day_events(context: pd.DataFrame, day: pd.Timestamp, window_h: float) -> dict[str, float]:
    """The alert path on ``day``: ``context`` is the day's ``gold/risk_scores`` readings plus
    the ``window_h`` before it (whether a crisis is an onset; warnings before midnight)."""
    from vitalwatch.alerts.evaluation import event_metrics

    r = timed_readings(context)
    r = r[(r["effective_time"] < day + pd.Timedelta(days=1)).to_numpy()]
    if not (r["effective_time"] >= day).any():
        return {k: math.nan for k in ("patients", "patient_hours", "onsets", *EVENT_KEYS)}
    m = event_metrics(r, window_h, since=day)
    return {k: m[k] for k in ("patients", "patient_hours", "onsets", *EVENT_KEYS)}


def day_rows(day_outcomes: pd.DataFrame, events: dict[str, float], drift: dict[str, float] | None,
             drift_readings: int, reference_version: str | None, cfg: MonitoringConfig,
             ece_bins: int) -> list[dict[str, Any]]:
    """The monitoring rows of one day (module doc): one per (role, version, horizon)."""
    psi_max, psi_group = _worst(drift)
    rows = []
    for role, vcol, pcol in ROLES:
        d = day_outcomes[day_outcomes[vcol].notna().to_numpy() & day_outcomes[pcol].notna().to_numpy()]
        for (version, h), g in d.groupby([vcol, "horizon_h"], sort=True):
            row = {"role": role, "model_version": str(version), "horizon_h": int(h),
                   **quality(g["outcome"].to_numpy(float), g[pcol].to_numpy(float), ece_bins),
                   **{k: (events.get(k, math.nan) if role == "champion" else math.nan)
                      for k in ("patients", "patient_hours", "onsets", *EVENT_KEYS)},
                   "psi": dict(drift or {}), "psi_max": psi_max, "psi_group": psi_group,
                   "drift_readings": int(drift_readings), "reference_version": reference_version}
            row["breaches"] = breaches(row, cfg)
            rows.append(row)
    return rows


def breaches(row: dict[str, Any], cfg: MonitoringConfig) -> list[str]:
    """What in one monitoring row crosses its bounds — only on a day with at least
    ``min_readings`` known outcomes (ECE) or scored vectors (PSI): a quiet ward is not drift."""
    out = []
    if row["readings"] >= cfg.min_readings and row["ece"] > cfg.ece_bound:
        out.append(f"calibration: {row['role']} v{row['model_version']} {row['horizon_h']} h ECE "
                   f"{row['ece']:.3f} > {cfg.ece_bound:g} over {row['readings']} readings")
    if row["drift_readings"] >= cfg.min_readings:
        for group, v in sorted((row.get("psi") or {}).items()):
            if v > cfg.psi_bound:
                out.append(f"drift: {group} PSI {v:.2f} > {cfg.psi_bound:g} over {row['drift_readings']} readings")
    return out


def _worst(drift: dict[str, float] | None) -> tuple[float, str | None]:
    finite = {k: v for k, v in (drift or {}).items() if v == v}
    if not finite:
        return math.nan, None
    group = max(finite, key=finite.__getitem__)
    return finite[group], group
