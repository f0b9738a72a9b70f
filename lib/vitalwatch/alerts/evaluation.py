"""Event-level evaluation of the whole alert path: what a ward feels, not AUROC per reading.

One implementation, on the pandas output of :func:`vitalwatch.scoring.engine.score_batch`
(or any frame with its columns), used by ``vitalwatch train``, ``vitalwatch models
alert-policy`` and the tests. Definitions (the model card's "Alert policy" section):

- **crisis onset**: a crisis reading of a patient who had at least one reading and no crisis
  reading in the ``window_h`` (6 h) before it;
- **warned at level L**: an alert event (raised, escalated or repeated) at level ≥ L for that
  patient in [onset − window_h, onset); **lead time**: onset − the first such event;
- **alert burden**: alert events (not resolutions) per patient-hour observed, at level ≥ L
  (observed: per patient, last minus first reading, at least one hour).

Baselines go through the same policy: their score is mapped onto the model's risk scale by
quantile (a baseline value at percentile q becomes the model's risk at percentile q on the same
reference readings), so the same thresholds give the same share of readings above each level.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from vitalwatch.config import ALERT_LEVELS, AlertPolicyConfig, AlertsConfig, ClinicalConfig
from vitalwatch.models.metrics import patient_hours

EVENT_KINDS = ("raised", "escalated", "repeated")
_RANK = {lvl: i + 1 for i, lvl in enumerate(ALERT_LEVELS)}
HOUR_MS = 3_600_000


def patient_time_keys(patient_id: pd.Series, time: pd.Series, codes: pd.Index, origin_ms: int,
                      span_ms: int) -> np.ndarray:
    """One sortable int64 per (patient, time): patient index × ``span_ms`` + ms since
    ``origin_ms``. With ``span_ms`` beyond every time plus the widest window, a window around
    one patient's key never reaches another patient's (any time pandas holds, 1677 on)."""
    idx = codes.get_indexer(patient_id.to_numpy()).astype(np.int64)
    return idx * span_ms + (time.to_numpy("datetime64[ms]").astype(np.int64) - origin_ms)


def key_frame(times: pd.Series, pad_ms: int) -> tuple[int, int]:
    """(origin, span) for :func:`patient_time_keys` over ``times`` and windows up to ``pad_ms``."""
    ms = times.to_numpy("datetime64[ms]").astype(np.int64)
    if not len(ms):
        return 0, pad_ms + 1
    return int(ms.min()), int(ms.max() - ms.min()) + 2 * pad_ms + 1


def onsets(scored: pd.DataFrame, window_h: float = 6.0) -> pd.DataFrame:
    """The crisis onsets: ``patient_id``, ``effective_time`` of each (definition above)."""
    r = scored[scored["effective_time"].notna()].sort_values(["patient_id", "effective_time"], kind="mergesort")
    codes = pd.Index(r["patient_id"].unique())
    w = int(window_h * HOUR_MS)
    key = patient_time_keys(r["patient_id"], r["effective_time"], codes, *key_frame(r["effective_time"], w))
    crisis = r["crisis_now"].fillna(False).to_numpy(bool)
    lo = np.searchsorted(key, key - w, "left")
    before = np.searchsorted(key, key, "left")           # first reading at this instant
    cum = np.concatenate([[0], np.cumsum(crisis)])
    had_reading = before > lo
    no_crisis = (cum[before] - cum[lo]) == 0
    on = crisis & had_reading & no_crisis
    # two crisis readings of a patient at one instant are one onset
    return r.loc[on, ["patient_id", "effective_time"]].drop_duplicates().reset_index(drop=True)


def alert_events(scored: pd.DataFrame) -> pd.DataFrame:
    """The alert events a clinician receives (not resolutions): patient, time, level."""
    e = scored[scored["alert_kind"].isin(EVENT_KINDS)]
    return e[["patient_id", "effective_time", "alert_kind", "alert_level"]].reset_index(drop=True)


def event_metrics(scored: pd.DataFrame, window_h: float = 6.0, lead_target_h: float = 2.0,
                  since: pd.Timestamp | None = None) -> dict[str, float]:
    """Burden, onsets warned and lead times (hours) per level ≥ MEDIUM/HIGH/CRITICAL.

    Keys: ``patients``, ``patient_hours``, ``onsets``, and per level (lower case)
    ``burden_ph_<l>``, ``warned_<l>`` (share of onsets), ``warned_<lead_target>h_<l>`` (share
    warned at least ``lead_target_h`` ahead), ``lead_median_h_<l>``, ``lead_q1_h_<l>``,
    ``lead_q3_h_<l>`` (over warned onsets; NaN when none).

    ``since``: count only onsets, events and observed time from then on; the readings before
    are context (whether a crisis is an onset, and warnings of the onsets just after ``since``)
    — one day of a live stream is judged like that (:mod:`vitalwatch.models.monitoring`)."""
    timed = scored[scored["effective_time"].notna()]
    counted = timed if since is None else timed[(timed["effective_time"] >= since).to_numpy()]
    hours = patient_hours(counted["patient_id"], counted["effective_time"]) if len(counted) else 0.0
    on = onsets(timed, window_h)
    ev = alert_events(timed)
    if since is not None:
        on = on[(on["effective_time"] >= since).to_numpy()]
    counted_events = ev if since is None else ev[(ev["effective_time"] >= since).to_numpy()]
    codes = pd.Index(timed["patient_id"].unique())
    w = int(window_h * HOUR_MS)
    frame = key_frame(timed["effective_time"], w)
    on_key = patient_time_keys(on["patient_id"], on["effective_time"], codes, *frame)
    out: dict[str, float] = {"patients": float(counted["patient_id"].nunique()), "patient_hours": hours,
                             "onsets": float(len(on))}
    for lvl in ALERT_LEVELS:
        at = ev[ev["alert_level"].map(_RANK).fillna(0).to_numpy() >= _RANK[lvl]]
        name = lvl.lower()
        n_counted = int((counted_events["alert_level"].map(_RANK).fillna(0).to_numpy() >= _RANK[lvl]).sum())
        out[f"burden_ph_{name}"] = n_counted / hours if hours else float("nan")
        key = np.sort(patient_time_keys(at["patient_id"], at["effective_time"], codes, *frame))
        first = np.searchsorted(key, on_key - w, "left")
        found = first < len(key)
        first_key = np.where(found, key[np.minimum(first, max(len(key) - 1, 0))] if len(key) else 0, 0)
        warned = found & (first_key < on_key)
        lead_h = (on_key - first_key)[warned] / HOUR_MS
        n = len(on)
        out[f"warned_{name}"] = warned.sum() / n if n else float("nan")
        out[f"warned_{lead_target_h:g}h_{name}"] = (lead_h >= lead_target_h).sum() / n if n else float("nan")
        q = np.quantile(lead_h, [0.25, 0.5, 0.75]) if len(lead_h) else [float("nan")] * 3
        out[f"lead_q1_h_{name}"], out[f"lead_median_h_{name}"], out[f"lead_q3_h_{name}"] = map(float, q)
    return out


def cause(reasons: Iterable[str] | None) -> str:
    """What raised an event, most important first: a crisis reading, NEWS2 ≥ threshold, the
    model's risk, a NEWS2 red flag."""
    r = list(reasons if reasons is not None else [])
    if "crisis_now" in r:
        return "crisis reading"
    if any(x.startswith("news2>=") for x in r):
        return "NEWS2 aggregate"
    if any(x.startswith("risk") for x in r):
        return "model risk"
    return "NEWS2 red flag" if "news2_red_flag" in r else "other"


def burden_by_cause(scored: pd.DataFrame) -> dict[str, float]:
    """Alert events (≥ MEDIUM) per patient-hour by :func:`cause`: where the burden comes from."""
    timed = scored[scored["effective_time"].notna()]
    hours = patient_hours(timed["patient_id"], timed["effective_time"]) if len(timed) else 0.0
    e = timed[timed["alert_kind"].isin(EVENT_KINDS)]
    counts = e["level_reasons"].map(cause).value_counts()
    return {k: float(counts.get(k, 0)) / hours if hours else float("nan")
            for k in ("crisis reading", "NEWS2 aggregate", "model risk", "NEWS2 red flag", "other")}


def apply_policy(scored: pd.DataFrame, clinical: ClinicalConfig, cfg: AlertsConfig,
                 risk: pd.Series | np.ndarray | None = None) -> pd.DataFrame:
    """``scored`` with its levels and alert events recomputed under ``cfg`` (the engine's own
    policy pass, from an empty alert state), the alert-horizon risk replaced by ``risk`` if given."""
    from vitalwatch.scoring.engine import apply_policy as engine_policy

    s = scored.copy()
    if risk is not None:
        s[f"risk_{clinical.alert_horizon_hours}h"] = np.asarray(risk, float)
    return engine_policy(s, {}, clinical, cfg)


def on_model_scale(score: np.ndarray, ref_score: np.ndarray, ref_risk: np.ndarray) -> np.ndarray:
    """A baseline ``score`` mapped onto the model's risk scale by quantile (module doc); NaN
    scores (not computable) map to the lowest risk."""
    ref = np.sort(ref_score[np.isfinite(ref_score)])
    risk = np.asarray(ref_risk, float)
    risk = risk[np.isfinite(risk)]
    if not len(ref) or not len(risk):
        return np.zeros(len(score))
    q = np.searchsorted(ref, np.nan_to_num(score, nan=-np.inf), "right") / len(ref)
    return np.quantile(risk, np.clip(q, 0, 1))


def scaled(policy: AlertPolicyConfig, factor: float) -> AlertPolicyConfig:
    """``policy`` with every threshold multiplied by ``factor`` (capped at 1)."""
    return policy.model_copy(update={"thresholds": {k: min(v * factor, 1.0) for k, v in policy.thresholds.items()}})


def sweep(scored: pd.DataFrame, clinical: ClinicalConfig, cfg: AlertsConfig, factors: Iterable[float],
          risk: np.ndarray | None = None, window_h: float = 6.0) -> pd.DataFrame:
    """Warned onsets vs burden as the policy's thresholds move together (the main threshold
    being MEDIUM's): one row per factor."""
    rows = []
    for f in factors:
        pol = scaled(cfg.policy, f)
        m = event_metrics(apply_policy(scored, clinical, cfg.with_policy(pol), risk), window_h)
        rows.append({"factor": f, "medium_threshold": pol.thresholds["MEDIUM"], **m})
    return pd.DataFrame(rows)


def summary_row(name: str, m: dict[str, float], lead_target_h: float = 2.0) -> dict[str, object]:
    """The model card's columns for one policy or baseline."""
    row: dict[str, object] = {"policy": name, "onsets": int(m["onsets"]), "patient_hours": round(m["patient_hours"])}
    for lvl in ALERT_LEVELS:
        n = lvl.lower()
        row |= {f"burden_ph_{n}": m[f"burden_ph_{n}"], f"warned_{n}": m[f"warned_{n}"],
                f"warned_{lead_target_h:g}h_{n}": m[f"warned_{lead_target_h:g}h_{n}"],
                f"lead_median_h_{n}": m[f"lead_median_h_{n}"]}
    return row


def markdown(table: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A Markdown table (floats to 3 places, NaN as —)."""
    from vitalwatch.bench.report import markdown_table

    cols = columns or list(table.columns)
    return markdown_table(cols, ([("—" if isinstance(v, float) and np.isnan(v) else f"{v:.3f}"
                                   if isinstance(v, float) else str(v)) for v in r]
                                 for r in table[cols].itertuples(index=False)))
