"""Advancing patients' scoring state by a batch of new silver rows — pure pandas, no Spark.

The streaming job calls :func:`advance` per patient group inside
``applyInPandasWithState``; :func:`score_batch` calls it once on a whole table (batch
rescoring, the parity tests). Both use :mod:`vitalwatch.features.vector` for the vector,
the registered :class:`~vitalwatch.models.scorer.RiskScorer` for the risks and
:mod:`vitalwatch.alerts.policy` for alerts, so streaming and batch cannot disagree.

**State** per patient: the silver rows (``ROW_COLUMNS``) of the last ``history_readings``
readings plus the other vitals recent enough to belong to them, and the patient's
:class:`~vitalwatch.alerts.policy.AlertState`.

**Late and out-of-order readings** (README, "Late readings"):
- a new reading is scored in the batch it arrives in, with the history known by then;
- one older than the patient's newest reading is inserted in time order, scored with the
  history before it and marked ``late``; it never moves the patient's level (the policy);
- one older than that newest reading by more than ``gold.late_tolerance_minutes``, or older
  than the whole retained history, is recorded with ``score_status = too_late`` and no
  risks (its values stay in silver; batch rescoring can score it);
- a repeated observation id (duplicate or amendment) replaces the stored values for later
  vectors but is not scored twice;
- a companion vital (heart rate…) arriving after its reading was scored serves later
  vectors, as the batch builder would, but does not re-score that reading.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitalwatch.alerts.policy import AlertState, Assessment, decide
from vitalwatch.config import AlertsConfig, ClinicalConfig
from vitalwatch.features.vector import (
    BP_VITALS,
    ROW_COLUMNS,
    feature_matrix,
    readings,
    scoring_columns,
)

SOURCE_COLUMNS = ["kafka_timestamp", "silver_time"]  # carried from the reading's BP row, for latency


@dataclass(frozen=True)
class ModelRef:
    """The model behind every score: registry identity plus the scorer.

    Pickled (into the streaming scorer's Python function, once per task) as its identity, a
    digest and the scorer's bytes; a Python worker that already holds that scorer reuses it
    instead of loading the boosters again (measured: 70 ms a task for three boosters)."""

    name: str
    version: str
    scorer: object  # RiskScorer

    def __reduce__(self):
        payload = pickle.dumps(self.scorer, protocol=pickle.HIGHEST_PROTOCOL)
        return _worker_model, (self.name, self.version, hashlib.sha256(payload).hexdigest(), payload)


_WORKER_MODELS: dict[tuple[str, str, str], object] = {}  # this process's scorers, by identity and digest


def _worker_model(name: str, version: str, digest: str, payload: bytes) -> ModelRef:
    key = (name, version, digest)
    scorer = _WORKER_MODELS.get(key)
    if scorer is None:
        scorer = pickle.loads(payload)
        _WORKER_MODELS.clear()  # a worker serves one champion at a time
        _WORKER_MODELS[key] = scorer
    return ModelRef(name, version, scorer)


@dataclass
class Advanced:
    out: pd.DataFrame                 # one row per new reading (``output_columns``)
    rows: pd.DataFrame                # the retained silver rows (``ROW_COLUMNS``)
    alerts: dict[str, AlertState]     # per patient


def output_columns(clinical: ClinicalConfig) -> list[str]:
    risks = [f"risk_{h}h" for h in clinical.horizons_hours]
    return ["patient_id", "observation_id", "effective_time", "systolic", "diastolic", "heart_rate",
            "respiratory_rate", "spo2", "temperature", "minutes_since_previous", "features", *risks,
            "score_status", "level", "level_reasons", "crisis_now", "news2", "news2_partial",
            "news2_red_flag", "bp_ratio", "model_name", "model_version", "alert_id", "alert_kind",
            "alert_level", "alert_previous_level", "alert_late", *SOURCE_COLUMNS]


def _ms(t: pd.Series) -> np.ndarray:
    return t.to_numpy("datetime64[ms]").astype(np.int64)


def advance(rows: pd.DataFrame, alerts: dict[str, AlertState], new: pd.DataFrame, model: ModelRef,
            clinical: ClinicalConfig, alerts_cfg: AlertsConfig, late_tolerance_minutes: float) -> Advanced:
    """Score the new readings in ``new`` (silver rows, ``ROW_COLUMNS`` + ``SOURCE_COLUMNS``)
    against the retained ``rows``; return the scored readings and the next state."""
    history = clinical.history_readings
    new = new.drop_duplicates(["observation_id", "vital"], keep="last")
    is_bp_old = rows["vital"].isin(BP_VITALS)
    known = set(rows.loc[is_bp_old, "observation_id"])
    newest_before = rows[is_bp_old].groupby("patient_id")["effective_time"].max()
    oldest_kept = rows[is_bp_old].groupby("patient_id")["effective_time"].min()
    n_kept = rows[is_bp_old].groupby("patient_id")["observation_id"].nunique()

    parts = [f[ROW_COLUMNS] for f in (rows, new) if len(f)]
    combined = (pd.concat(parts, ignore_index=True) if parts else empty_rows()).drop_duplicates(
        ["observation_id", "vital"], keep="last")
    r = readings(combined, clinical)
    fresh_ids = set(new.loc[new["vital"].isin(BP_VITALS), "observation_id"]) - known
    is_new = r["observation_id"].isin(fresh_ids).to_numpy()

    nb = r["patient_id"].map(newest_before)
    late = is_new & nb.notna().to_numpy() & (r["effective_time"] < nb).to_numpy()
    if np.isfinite(late_tolerance_minutes):
        too_old = (r["effective_time"] < nb - pd.Timedelta(minutes=late_tolerance_minutes)).fillna(False).to_numpy()
    else:
        too_old = np.zeros(len(r), bool)
    full = (r["patient_id"].map(n_kept).fillna(0) >= history).to_numpy()
    before_kept = (r["effective_time"] < r["patient_id"].map(oldest_kept)).fillna(False).to_numpy()
    too_late = is_new & (too_old | (full & before_kept))
    scored = is_new & ~too_late

    x = feature_matrix(r, history)
    sel = r[is_new].copy()
    sel["features"] = list(x[is_new])
    risk = np.full((len(sel), len(clinical.horizons_hours)), np.nan)
    s_in_sel = scored[is_new]
    if s_in_sel.any():
        risk[s_in_sel] = model.scorer.predict(x[scored])
    for i, h in enumerate(clinical.horizons_hours):
        sel[f"risk_{h}h"] = risk[:, i]
    sel = pd.concat([sel, scoring_columns(sel, clinical)], axis=1)
    sel["score_status"] = np.where(too_late[is_new], "too_late", np.where(late[is_new], "late", "scored"))
    sel["model_name"], sel["model_version"] = model.name, model.version
    src = (new[new["vital"].isin(BP_VITALS)].drop_duplicates("observation_id", keep="last")
           .set_index("observation_id")[SOURCE_COLUMNS])
    for c in SOURCE_COLUMNS:
        sel[c] = sel["observation_id"].map(src[c])

    out = _apply_policy(sel, alerts, clinical, alerts_cfg)
    return Advanced(out[output_columns(clinical)].reset_index(drop=True), _retain(combined, r, clinical), alerts)


def _apply_policy(sel: pd.DataFrame, alerts: dict[str, AlertState], clinical: ClinicalConfig,
                  cfg: AlertsConfig) -> pd.DataFrame:
    sel = sel.sort_values(["patient_id", "effective_time", "observation_id"], kind="mergesort")
    risk_col = f"risk_{clinical.alert_horizon_hours}h"
    cols = {k: [] for k in ("level", "level_reasons", "alert_id", "alert_kind", "alert_level",
                            "alert_previous_level", "alert_late")}
    t_ms = _ms(sel["effective_time"])
    for i, row in enumerate(sel.itertuples(index=False)):
        if row.score_status == "too_late":
            for k in cols:
                cols[k].append(None)
            continue
        st = alerts.setdefault(row.patient_id, AlertState())
        a = Assessment(row.patient_id, row.observation_id, int(t_ms[i]), float(getattr(row, risk_col)),
                       bool(row.crisis_now), float(row.news2), bool(row.news2_red_flag))
        d = decide(st, a, clinical, cfg)
        e = d.event
        cols["level"].append(d.level)
        cols["level_reasons"].append(list(d.reasons))
        cols["alert_id"].append(e.alert_id if e else None)
        cols["alert_kind"].append(e.kind if e else None)
        cols["alert_level"].append(e.level if e else None)
        cols["alert_previous_level"].append(e.previous_level if e else None)
        cols["alert_late"].append(e.late if e else None)
    for k, v in cols.items():
        sel[k] = pd.Series(v, index=sel.index, dtype=object)
    return sel


def _retain(combined: pd.DataFrame, r: pd.DataFrame, clinical: ClinicalConfig) -> pd.DataFrame:
    """The rows the next batch needs: each patient's last ``history_readings`` readings and the
    other vitals from ``other_vitals_window_minutes`` before the oldest of them onwards."""
    keep_r = r.groupby("patient_id", sort=False).tail(clinical.history_readings)
    keep_ids = set(keep_r["observation_id"])
    oldest = keep_r.groupby("patient_id")["effective_time"].min()
    newest = combined.groupby("patient_id")["effective_time"].max()
    anchor = combined["patient_id"].map(oldest).fillna(combined["patient_id"].map(newest))  # no reading yet
    since = anchor - pd.Timedelta(minutes=clinical.other_vitals_window_minutes)
    is_bp = combined["vital"].isin(BP_VITALS)
    keep = (is_bp & combined["observation_id"].isin(keep_ids)) | (~is_bp & (combined["effective_time"] >= since))
    return combined[keep.to_numpy()][ROW_COLUMNS].reset_index(drop=True)


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": pd.Series(dtype=object), "observation_id": pd.Series(dtype=object),
                         "effective_time": pd.Series(dtype="datetime64[ns]"),
                         "vital": pd.Series(dtype=object), "value": pd.Series(dtype=float)})


def score_batch(rows: pd.DataFrame, model: ModelRef, clinical: ClinicalConfig,
                alerts_cfg: AlertsConfig) -> pd.DataFrame:
    """Score every reading of ``rows`` at once, as if each patient's data arrived in time
    order: what the stream must produce for in-order data, whatever its batch boundaries."""
    new = rows.copy()
    for c in SOURCE_COLUMNS:
        if c not in new:
            new[c] = pd.NaT
    return advance(empty_rows(), {}, new, model, clinical, alerts_cfg, float("inf")).out
