"""Readings, the 120-feature vector and the crisis labels, as pure pandas/numpy functions.

This is the one implementation (docs/requirements.md §4). It works on any set of patients' silver rows —
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


def feature_names(history: int = 30) -> list[str]:
    """``r00_sbp … r29_dt``: slot 00 is the oldest reading, the last slot the scored one."""
    width = max(2, len(str(history - 1)))
    return [f"r{s:0{width}d}_{f}" for s in range(history) for f in SLOT_FEATURES]


def readings(rows: pd.DataFrame, cfg: ClinicalConfig) -> pd.DataFrame:
    """Silver rows (``ROW_COLUMNS``, long format) → one row per BP reading, sorted, with its
    other vitals and the minutes since the patient's previous reading.

    A reading's systolic/diastolic is the last non-missing value given for it; its other vital
    is the patient's latest value at or before its time and within the window (ties at one
    instant: the greatest observation id, then the last given). Written with numpy sorts and
    binary searches, not pivot_table/merge_asof: the streaming scorer calls this once per state
    bucket and batch, where pandas' fixed cost per operation dominated (measured: 58 of the
    76 ms of one call)."""
    rows = rows[ROW_COLUMNS]
    rows = rows[rows["patient_id"].notna().to_numpy() & rows["observation_id"].notna().to_numpy()
                & rows["effective_time"].notna().to_numpy()]
    vital = rows["vital"].to_numpy(dtype=object)
    is_bp = np.isin(vital, list(BP_VITALS))
    if not is_bp.any():
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in READING_COLUMNS})
    pcode, pids = pd.factorize(rows["patient_id"], sort=True)
    t_ns = rows["effective_time"].to_numpy("datetime64[ns]").view(np.int64)
    value = rows["value"].to_numpy(dtype=float)

    # readings: BP rows grouped by (patient, time, observation), in that order
    bp = np.flatnonzero(is_bp)
    ocode, obs = pd.factorize(rows["observation_id"].to_numpy(dtype=object)[bp], sort=True)
    srt = np.lexsort((ocode, t_ns[bp], pcode[bp]))  # stable: a group's rows keep their order
    order, o_sorted = bp[srt], ocode[srt]
    new_group = np.r_[True, (np.diff(pcode[order]) != 0) | (np.diff(t_ns[order]) != 0) | (np.diff(o_sorted) != 0)]
    gid = np.cumsum(new_group) - 1
    n = int(gid[-1]) + 1
    first = np.flatnonzero(new_group)
    bp_values = {}
    for v, col in BP_VITALS.items():
        out = np.full(n, np.nan)
        hit = np.flatnonzero((vital[order] == v) & ~np.isnan(value[order]))
        last = hit[np.r_[gid[hit][1:] != gid[hit][:-1], True]] if len(hit) else hit
        out[gid[last]] = value[order[last]]
        bp_values[col] = out
    keep = ~(np.isnan(bp_values["systolic"]) & np.isnan(bp_values["diastolic"]))
    first = first[keep]
    r_idx = order[first]                        # a row of each reading, for its keys
    r_p, r_t = pcode[r_idx], t_ns[r_idx]
    out_cols: dict[str, object] = {
        "patient_id": np.asarray(pids, dtype=object)[r_p],
        "observation_id": np.asarray(obs, dtype=object)[o_sorted[first]],
        "effective_time": rows["effective_time"].to_numpy()[r_idx],
        **{c: v[keep] for c, v in bp_values.items()},
    }

    # other vitals: the latest row of the patient at or before the reading, within the window
    tol = int(pd.Timedelta(minutes=cfg.other_vitals_window_minutes).value)
    for v, col in OTHER_VITALS.items():
        o = np.flatnonzero(vital == v)
        res = np.full(len(r_idx), np.nan)
        if len(o):
            oc = pd.factorize(rows["observation_id"].to_numpy(dtype=object)[o], sort=True)[0]
            o = o[np.lexsort((oc, t_ns[o], pcode[o]))]
            times = np.unique(np.concatenate([t_ns[o], r_t]))
            span = len(times) + 1
            key_o = pcode[o].astype(np.int64) * span + np.searchsorted(times, t_ns[o])
            key_r = r_p.astype(np.int64) * span + np.searchsorted(times, r_t)
            j = np.searchsorted(key_o, key_r, side="right") - 1
            jj = np.maximum(j, 0)
            ok = (j >= 0) & (pcode[o][jj] == r_p) & (r_t - t_ns[o][jj] <= tol)
            res[ok] = value[o][jj[ok]]
        out_cols[col] = res
    prev_ok = np.r_[False, r_p[1:] == r_p[:-1]] if len(r_p) else np.zeros(0, bool)
    gap = np.full(len(r_idx), np.nan)
    gap[prev_ok] = (np.diff(r_t)[prev_ok[1:]] / 10**9) / 60.0
    out_cols["minutes_since_previous"] = gap
    return pd.DataFrame(out_cols)[READING_COLUMNS]


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
