"""Delayed outcomes: what happened after each scored reading, once it is known.

For a reading at time t and a horizon h, the outcome is
- **1** as soon as a crisis reading of the same patient falls in (t, t + h] (the training label);
- **0** once the patient has a reading after t + h and none of the readings in (t, t + h] was
  a crisis (the horizon passed, observed);
- **unknown** (NaN) otherwise: still inside the horizon, or the patient's readings stopped
  before it ended (a discharge censors; training calls that 0, monitoring does not guess).

Pure pandas over the readings' times and crisis flags, so a batch over the lake and a stream
over its new rows give the same outcomes. Only readings whose time is trusted take part
(``score_status`` scored, late, too_late or engine_error — which keeps the time the reading
claims): an untimely reading's claimed time is not trusted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitalwatch.alerts.evaluation import HOUR_MS, key_frame, patient_time_keys

TIMED_STATUSES = ("scored", "late", "too_late", "engine_error")


def timed_readings(scores: pd.DataFrame) -> pd.DataFrame:
    """The readings whose time can be trusted (module doc), sorted by patient and time."""
    ok = scores["observation_id"].notna() & scores["effective_time"].notna()
    if "score_status" in scores:
        ok &= scores["score_status"].isin(TIMED_STATUSES)
    return scores[ok.to_numpy()].sort_values(["patient_id", "effective_time", "observation_id"], kind="mergesort")


def outcomes(readings: pd.DataFrame, horizons_h: list[int]) -> pd.DataFrame:
    """``readings`` (``patient_id``, ``effective_time``, ``crisis_now``) with ``outcome_<h>h``
    (1.0 / 0.0 / NaN, module doc) and ``outcome_<h>h_known_time`` (the effective time of the
    reading that settled it) for each horizon, and ``outcome_known_time``: when the last of
    its outcomes became known (NaT while one is unknown)."""
    r = readings.reset_index(drop=True)
    codes = pd.Index(r["patient_id"].unique())
    origin, span = key_frame(r["effective_time"], max(horizons_h) * HOUR_MS)
    key = patient_time_keys(r["patient_id"], r["effective_time"], codes, origin, span)
    crisis = r["crisis_now"].fillna(False).to_numpy(bool)
    crisis_keys = np.sort(key[crisis])
    later = np.sort(key)
    last = pd.Series(key).groupby(r["patient_id"].to_numpy()).transform("max").to_numpy()
    nxt = np.searchsorted(crisis_keys, key, "right")
    first_crisis = np.where(nxt < len(crisis_keys), crisis_keys[np.minimum(nxt, max(len(crisis_keys) - 1, 0))]
                            if len(crisis_keys) else 0, np.iinfo(np.int64).max)
    same_patient = (first_crisis // span) == (key // span)
    out = r.copy()
    known_at = np.zeros(len(r), np.int64)
    all_known = np.ones(len(r), bool)
    for h in horizons_h:
        end = key + h * HOUR_MS
        hit = same_patient & (first_crisis <= end)
        passed = last > end
        out[f"outcome_{h}h"] = np.where(hit, 1.0, np.where(passed, 0.0, np.nan))
        after = later[np.minimum(np.searchsorted(later, end, "right"), len(later) - 1)]  # first reading past the horizon
        known = np.where(hit, first_crisis, np.where(passed, after, 0)) % span
        out[f"outcome_{h}h_known_time"] = pd.to_datetime(np.where(hit | passed, known + origin, 0), unit="ms").where(
            hit | passed, pd.NaT)
        known_at = np.maximum(known_at, known)
        all_known &= hit | passed
    out["outcome_known_time"] = pd.to_datetime(np.where(all_known, known_at + origin, 0), unit="ms").where(
        all_known, pd.NaT)
    return out
