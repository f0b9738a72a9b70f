"""Readings, the 120-feature vector and the crisis labels, as pure pandas/numpy functions.

This is the one implementation (PRODUCT §4). It works on any set of patients' silver rows —
the whole lake for training (:mod:`vitalwatch.features.build` runs it per patient on Spark)
or one patient's state plus new rows in the streaming scorer — so the vectors cannot drift
apart between training and serving.

- A **reading** is one blood-pressure observation (systolic and/or diastolic). Its other
  vitals are the patient's latest values within ``other_vitals_window_minutes`` before it,
  the reading's own time included (monitors send them together).
- Readings are ordered by (patient, effective time, observation id): out-of-order input is
  sorted, and ties (two readings at the same instant) are broken by observation id, the
  later one seeing the earlier with 0 minutes between them.
- The **vector** of a reading is its patient's last ``history_readings`` readings up to and
  including itself, oldest first, each as (systolic, diastolic, heart rate, minutes since
  the previous reading). Slots before the first reading, a missing heart rate and the first
  reading's interval are NaN (XGBoost's missing value).
- The **label** for horizon h is 1 when a later reading of the patient within (t, t + h] is a
  crisis event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitalwatch.clinical.crisis import bp_ratio, is_crisis
from vitalwatch.clinical.news2 import news2
from vitalwatch.config import ClinicalConfig

# silver vital name -> reading column
BP_VITALS = {"systolic_bp": "systolic", "diastolic_bp": "diastolic"}
OTHER_VITALS = {"heart_rate": "heart_rate", "respiratory_rate": "respiratory_rate",
                "spo2": "spo2", "body_temperature": "temperature"}
ROW_COLUMNS = ["patient_id", "observation_id", "effective_time", "vital", "value"]
READING_COLUMNS = ["patient_id", "observation_id", "effective_time", "systolic", "diastolic",
                   "heart_rate", "respiratory_rate", "spo2", "temperature", "minutes_since_previous"]
SLOT_FEATURES = ("sbp", "dbp", "hr", "dt")  # per slot: systolic, diastolic, heart rate, minutes since previous
_SLOT_SOURCE = ("systolic", "diastolic", "heart_rate", "minutes_since_previous")
_ORDER = ["patient_id", "effective_time", "observation_id"]


def feature_names(history: int = 30) -> list[str]:
    """``r00_sbp … r29_dt``: slot 00 is the oldest reading, the last slot the scored one."""
    width = max(2, len(str(history - 1)))
    return [f"r{s:0{width}d}_{f}" for s in range(history) for f in SLOT_FEATURES]


def readings(rows: pd.DataFrame, cfg: ClinicalConfig) -> pd.DataFrame:
    """Silver rows (``ROW_COLUMNS``, long format) → one row per BP reading, sorted, with its
    other vitals and the minutes since the patient's previous reading."""
    rows = rows[ROW_COLUMNS]
    bp = rows[rows["vital"].isin(BP_VITALS)]
    if bp.empty:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in READING_COLUMNS})
    wide = (bp.pivot_table(index=["patient_id", "observation_id", "effective_time"], columns="vital",
                           values="value", aggfunc="last")
            .rename(columns=BP_VITALS).reset_index())
    wide.columns.name = None
    for c in BP_VITALS.values():
        if c not in wide:
            wide[c] = np.nan
    wide = wide.sort_values(["effective_time", "patient_id", "observation_id"], kind="mergesort")
    tol = pd.Timedelta(minutes=cfg.other_vitals_window_minutes)
    for vital, col in OTHER_VITALS.items():
        other = (rows[rows["vital"] == vital]
                 .sort_values(["effective_time", "observation_id"], kind="mergesort")
                 [["patient_id", "effective_time", "value"]].rename(columns={"value": col}))
        wide = pd.merge_asof(wide, other, on="effective_time", by="patient_id", tolerance=tol,
                             direction="backward", allow_exact_matches=True)
    out = wide.sort_values(_ORDER, kind="mergesort").reset_index(drop=True)
    return add_intervals(out)[READING_COLUMNS]


def add_intervals(readings_df: pd.DataFrame) -> pd.DataFrame:
    """Minutes since the same patient's previous reading (NaN for the first); input sorted."""
    out = readings_df.copy()
    prev = out.groupby("patient_id", sort=False)["effective_time"].shift(1)
    out["minutes_since_previous"] = (out["effective_time"] - prev).dt.total_seconds() / 60.0
    return out


def _group_positions(patient_ids: pd.Series) -> np.ndarray:
    """Index of each row within its patient's (contiguous) block."""
    codes = pd.factorize(patient_ids, sort=False)[0]
    starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
    block_start = np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    return np.arange(len(codes)) - block_start


def feature_matrix(readings_df: pd.DataFrame, history: int = 30) -> np.ndarray:
    """The vectors of every reading (rows sorted by patient and time): shape (n, 4·history)."""
    n = len(readings_df)
    base = readings_df[list(_SLOT_SOURCE)].to_numpy(dtype=float)
    pos = _group_positions(readings_df["patient_id"]) if n else np.zeros(0, int)
    out = np.full((n, history * len(_SLOT_SOURCE)), np.nan)
    idx = np.arange(n)
    for slot in range(history):
        lag = history - 1 - slot
        ok = pos >= lag
        out[ok, slot * 4:(slot + 1) * 4] = base[idx[ok] - lag]
    return out


def labels(readings_df: pd.DataFrame, cfg: ClinicalConfig) -> dict[int, np.ndarray]:
    """Per horizon (hours): 1 where a later crisis reading of the patient lies in (t, t + h]."""
    n = len(readings_df)
    if n == 0:
        return {h: np.zeros(0, np.int32) for h in cfg.horizons_hours}
    codes = pd.factorize(readings_df["patient_id"], sort=False)[0].astype(np.int64)
    t_ms = readings_df["effective_time"].to_numpy("datetime64[ms]").astype(np.int64)
    t_ms = t_ms - t_ms.min()
    span = int(t_ms.max()) + max(cfg.horizons_hours) * 3_600_000 + 1
    key = codes * span + t_ms  # sorted, since rows are sorted by (patient, time)
    crisis = is_crisis(readings_df["systolic"], readings_df["diastolic"], cfg)
    cum = np.r_[0, np.cumsum(crisis)]
    after = np.searchsorted(key, key, side="right")
    out = {}
    for h in cfg.horizons_hours:
        until = np.searchsorted(key, key + h * 3_600_000, side="right")
        out[h] = ((cum[until] - cum[after]) > 0).astype(np.int32)
    return out


def scoring_columns(readings_df: pd.DataFrame, cfg: ClinicalConfig) -> pd.DataFrame:
    """What every scored reading carries besides its vector: crisis now, NEWS2, BP ratio."""
    r = readings_df
    n2 = news2(r["respiratory_rate"], r["spo2"], r["systolic"], r["heart_rate"], r["temperature"])
    return pd.DataFrame({
        "crisis_now": is_crisis(r["systolic"], r["diastolic"], cfg),
        "news2": n2.total, "news2_partial": n2.partial, "news2_red_flag": n2.red_flag,
        "bp_ratio": bp_ratio(r["systolic"], r["diastolic"], cfg),
    }, index=r.index)


def training_examples(rows: pd.DataFrame, cfg: ClinicalConfig) -> pd.DataFrame:
    """Rows → readings with their vector (``features``, a list per row), scoring columns and
    labels ``label_<h>h``: the training/evaluation set for a group of patients."""
    r = readings(rows, cfg)
    x = feature_matrix(r, cfg.history_readings)
    out = pd.concat([r, scoring_columns(r, cfg)], axis=1)
    out["features"] = pd.Series(list(x), index=out.index, dtype=object)
    for h, y in labels(r, cfg).items():
        out[f"label_{h}h"] = y
    return out


def _dtype(col: str) -> str:
    return {"patient_id": "object", "observation_id": "object", "effective_time": "datetime64[ns]"}.get(col, "float64")
