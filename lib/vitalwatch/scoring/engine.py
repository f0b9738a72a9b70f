"""Advancing patients' scoring state by a batch of new silver rows — pure pandas, no Spark.

The streaming job calls :func:`advance` per patient group inside
``applyInPandasWithState``; :func:`score_batch` calls it once on a whole table (batch
rescoring, the parity tests). Both use :mod:`vitalwatch.features.vector` for the vector,
the registered :class:`~vitalwatch.models.scorer.RiskScorer` for the risks and
:mod:`vitalwatch.alerts.policy` for alerts, so streaming and batch cannot disagree.

**State** per patient: the silver rows (``ROW_COLUMNS``) of the last ``history_readings``
readings plus the other vitals recent enough to belong to them, and the patient's
:class:`~vitalwatch.alerts.policy.AlertState`.

**Late and out-of-order readings** (docs/streaming.md, "Late readings and bad clocks"):
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

import copy
import logging
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
from vitalwatch.scoring.model_ref import ModelRef

__all__ = ["Advanced", "ModelRef", "advance", "advance_safely", "apply_policy", "crisis_only", "empty_rows",
           "normalise", "output_columns", "score_batch", "shadow_columns"]

log = logging.getLogger(__name__)
SOURCE_COLUMNS = ["kafka_timestamp", "silver_time"]  # carried from the reading's BP row, for latency


@dataclass
class Advanced:
    out: pd.DataFrame                 # one row per new reading (``output_columns`` + ``effective_time``)
    rows: pd.DataFrame                # the retained rows (``STATE_COLUMNS``)
    alerts: dict[str, AlertState]     # per patient


# What the engine keeps of a row: the features' columns, the version (a re-send of the same
# version never replaces the first; a new version is an amendment) and the arrival (ms since
# the epoch, -1 unknown), which says whether the row's time can be the patient's "now".
STATE_COLUMNS = [*ROW_COLUMNS, "version_id", "arrival_ms"]
ROW_KEY = ["patient_id", "observation_id", "vital"]  # an observation id is unique only within its patient
# numpy/pandas nanosecond times hold 1677-09-21 .. 2262-04-11; the parser's bounds keep silver
# inside, and a time outside (an old lake, another writer) is taken as untimely, never an error.
_MIN_US, _MAX_US = pd.Timestamp.min.value // 1000 + 1, pd.Timestamp.max.value // 1000


def output_columns(clinical: ClinicalConfig) -> list[str]:
    risks = [f"risk_{h}h" for h in clinical.horizons_hours]
    return ["patient_id", "observation_id", "effective_us", "systolic", "diastolic", "heart_rate",
            "respiratory_rate", "spo2", "temperature", "minutes_since_previous", "features", *risks,
            "score_status", "level", "level_reasons", "crisis_now", "news2", "news2_partial",
            "news2_red_flag", "bp_ratio", "model_name", "model_version", "alert_id", "alert_kind",
            "alert_level", "alert_previous_level", "alert_late", *SOURCE_COLUMNS, *shadow_columns(clinical)]


def shadow_columns(clinical: ClinicalConfig) -> list[str]:
    """The shadow model's version and risks (``gold.shadow_alias``): null without one."""
    return ["shadow_model_version", *(f"shadow_risk_{h}h" for h in clinical.horizons_hours)]


def _shadow_risks(model: ModelRef, x: np.ndarray, n_horizons: int) -> np.ndarray:
    """The shadow's risks for the vectors ``x`` — NaN when there is none or it fails: a shadow
    is observed, never relied on, so its failure is logged and changes nothing else."""
    out = np.full((len(x), n_horizons), np.nan)
    if model.shadow is None or not len(x):
        return out
    try:
        out[:] = model.shadow.scorer.predict(x)
    except Exception:
        log.exception("shadow model %s %s failed on %d readings; its risks are left empty",
                      model.shadow.name, model.shadow.version, len(x))
    return out


def _ms(t: pd.Series) -> np.ndarray:
    return t.to_numpy("datetime64[ms]").astype(np.int64)


def normalise(new: pd.DataFrame, clock_skew_ms: float) -> pd.DataFrame:
    """New rows with every column the engine reads, times made safe.

    ``effective_us`` (int64 microseconds) is the time as Spark sent it; ``effective_time`` its
    pandas form, NaT where pandas cannot hold it. A row is ``untimely`` when the parser said so,
    when its time cannot be held, or when it is ahead of its own arrival by more than the clock
    skew: such a row never enters the patient's history (one bad clock must not make the
    patient's later readings late), but a crisis in it still alerts."""
    new = new.copy()
    for c in SOURCE_COLUMNS:
        if c not in new:
            new[c] = pd.NaT
    if "effective_us" not in new:
        new["effective_us"] = new["effective_time"].to_numpy("datetime64[us]").astype(np.int64)
    us = new["effective_us"].to_numpy(dtype=np.int64)
    holdable = (us >= _MIN_US) & (us <= _MAX_US)
    new["effective_time"] = pd.to_datetime(np.where(holdable, us, 0), unit="us").where(holdable, pd.NaT)
    if "version_id" not in new:
        new["version_id"] = ""
    new["version_id"] = new["version_id"].fillna("").astype(object)
    arrival = new["kafka_timestamp"]
    new["arrival_ms"] = np.where(arrival.notna(), _ms(arrival.fillna(pd.Timestamp(0))), -1).astype(np.int64)
    ahead = (new["arrival_ms"].to_numpy() >= 0) & (us // 1000 > new["arrival_ms"].to_numpy() + clock_skew_ms)
    flagged = new["untimely"].fillna(False).to_numpy(dtype=bool) if "untimely" in new else np.zeros(len(new), bool)
    new["untimely"] = flagged | ~holdable | ahead
    return new


def _first_wins(rows: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The new rows that change something: a value key (patient, observation, vital) re-sent
    with the version already held is dropped (the first stays, as silver's dedupe keeps it); a
    new version replaces the held value (an amendment)."""
    new = new.sort_values("arrival_ms", kind="mergesort").drop_duplicates([*ROW_KEY, "version_id"], keep="first")
    if len(rows) and len(new):
        held = pd.MultiIndex.from_frame(rows[[*ROW_KEY, "version_id"]])
        new = new[~pd.MultiIndex.from_frame(new[[*ROW_KEY, "version_id"]]).isin(held)]
    return new


def advance(rows: pd.DataFrame, alerts: dict[str, AlertState], new: pd.DataFrame, model: ModelRef,
            clinical: ClinicalConfig, alerts_cfg: AlertsConfig, late_tolerance_minutes: float,
            clock_skew_ms: float = 600_000) -> Advanced:
    """Score the new readings in ``new`` (silver rows: ``ROW_COLUMNS``, optionally
    ``version_id``, ``effective_us``, ``untimely`` and ``SOURCE_COLUMNS``) against the retained
    ``rows``; return the scored readings and the next state."""
    rows = _state_rows(rows)
    new = _first_wins(rows, normalise(new, clock_skew_ms))
    untimely = new[new["untimely"].to_numpy(dtype=bool)]
    new = new[~new["untimely"].to_numpy(dtype=bool)]
    history = clinical.history_readings
    held = _held(rows, clock_skew_ms)

    parts = [f[STATE_COLUMNS] for f in (rows, new) if len(f)]
    combined = (pd.concat(parts, ignore_index=True) if parts else _state_rows(None)).drop_duplicates(ROW_KEY, keep="last")
    r = readings(combined, clinical)
    new_bp = new[new["vital"].isin(BP_VITALS)]
    fresh = pd.MultiIndex.from_frame(new_bp[["patient_id", "observation_id"]]).difference(held.known)
    is_new = pd.MultiIndex.from_frame(r[["patient_id", "observation_id"]]).isin(fresh)
    late, too_late = _lateness(r, is_new, held, history, late_tolerance_minutes)
    scored = is_new & ~too_late

    x = feature_matrix(r, history)
    sel = r[is_new].copy()
    sel["features"] = list(x[is_new])
    n_h = len(clinical.horizons_hours)
    risk, shadow = np.full((len(sel), n_h), np.nan), np.full((len(sel), n_h), np.nan)
    s_in_sel = scored[is_new]
    if s_in_sel.any():
        risk[s_in_sel] = model.scorer.predict(x[scored])
        shadow[s_in_sel] = _shadow_risks(model, x[scored], n_h)
    for i, h in enumerate(clinical.horizons_hours):
        sel[f"risk_{h}h"] = risk[:, i]
        sel[f"shadow_risk_{h}h"] = shadow[:, i]
    sel = pd.concat([sel, scoring_columns(sel, clinical)], axis=1)
    sel["score_status"] = np.where(too_late[is_new], "too_late", np.where(late[is_new], "late", "scored"))
    sel = _with_sources(sel, new_bp)
    sel["effective_us"] = sel["effective_time"].to_numpy("datetime64[us]").astype(np.int64)
    unt = _untimely_readings(untimely, clinical)
    if len(unt):
        sel = unt if sel.empty else pd.concat([sel, unt.dropna(axis=1, how="all")], ignore_index=True)
        # a vector or nothing: Arrow takes None for a missing list, never NaN
        sel["features"] = pd.Series([f if isinstance(f, np.ndarray | list) else None for f in sel["features"]],
                                    index=sel.index, dtype=object)
    sel["model_name"], sel["model_version"] = model.name, model.version
    sel = _with_shadow_version(sel, model, clinical)

    out = apply_policy(sel, alerts, clinical, alerts_cfg)
    out["effective_time"] = pd.to_datetime(out["effective_us"], unit="us", errors="coerce")  # for pandas readers
    return Advanced(out[[*output_columns(clinical), "effective_time"]].reset_index(drop=True),
                    _retain(combined, r, clinical), alerts)


@dataclass
class _Held:
    """What the retained readings say about each patient before this batch."""

    known: pd.MultiIndex      # (patient, observation) of the readings held
    newest_before: pd.Series  # the patient's "now": the newest reading whose time is credible
    oldest_kept: pd.Series    # the oldest reading held
    n_kept: pd.Series         # how many readings are held


def _held(rows: pd.DataFrame, clock_skew_ms: float) -> _Held:
    """The held readings' ids and time bounds; a reading ahead of its own arrival by more than
    the clock skew is held but never the patient's "now"."""
    is_bp_old = rows["vital"].isin(BP_VITALS).to_numpy()
    known = pd.MultiIndex.from_frame(rows.loc[is_bp_old, ["patient_id", "observation_id"]])
    bp_old = rows[is_bp_old]
    credible = bp_old[(bp_old["arrival_ms"] < 0)
                      | (_ms(bp_old["effective_time"]) <= bp_old["arrival_ms"] + clock_skew_ms)]
    return _Held(known, credible.groupby("patient_id")["effective_time"].max(),
                 bp_old.groupby("patient_id")["effective_time"].min(),
                 bp_old.groupby("patient_id")["observation_id"].nunique())


def _lateness(r: pd.DataFrame, is_new: np.ndarray, held: _Held, history: int,
              late_tolerance_minutes: float) -> tuple[np.ndarray, np.ndarray]:
    """(late, too_late) per reading of ``r``: a new reading older than the patient's "now" is
    late; too late if older by more than the tolerance, or older than a full retained history."""
    nb = r["patient_id"].map(held.newest_before)
    late = is_new & nb.notna().to_numpy() & (r["effective_time"] < nb).to_numpy()
    if np.isfinite(late_tolerance_minutes):
        too_old = (r["effective_time"] < nb - pd.Timedelta(minutes=late_tolerance_minutes)).fillna(False).to_numpy()
    else:
        too_old = np.zeros(len(r), bool)
    full = (r["patient_id"].map(held.n_kept).fillna(0) >= history).to_numpy()
    before_kept = (r["effective_time"] < r["patient_id"].map(held.oldest_kept)).fillna(False).to_numpy()
    return late, is_new & (too_old | (full & before_kept))


def _with_sources(sel: pd.DataFrame, new_bp: pd.DataFrame) -> pd.DataFrame:
    """Each reading's source times (kafka, silver) and arrival, from its blood-pressure row."""
    src = new_bp.drop_duplicates(["patient_id", "observation_id"], keep="last").set_index(
        ["patient_id", "observation_id"])
    idx = pd.MultiIndex.from_frame(sel[["patient_id", "observation_id"]])
    for c in [*SOURCE_COLUMNS, "arrival_ms"]:
        sel[c] = src[c].reindex(idx).to_numpy() if len(src) else pd.Series(np.nan, index=sel.index)
    return sel


def _untimely_readings(untimely: pd.DataFrame, clinical: ClinicalConfig) -> pd.DataFrame:
    """Readings whose time is outside the bounds (or ahead of their arrival): no history, no
    score, but their own values say whether they are a crisis now (docs/requirements.md: crisis readings
    always alert). Their other vitals are the ones sent with them."""
    if untimely.empty or not untimely["vital"].isin(BP_VITALS).any():
        return pd.DataFrame()
    u = untimely.copy()
    u["effective_time"] = pd.to_datetime(u["arrival_ms"].clip(lower=0), unit="ms")  # one instant per message
    r = readings(u[ROW_COLUMNS], clinical)
    r = pd.concat([r, scoring_columns(r, clinical)], axis=1)
    r["minutes_since_previous"] = np.nan
    r["features"] = None
    for h in clinical.horizons_hours:
        r[f"risk_{h}h"] = np.nan
    r["score_status"] = "untimely"
    bp = untimely[untimely["vital"].isin(BP_VITALS)]
    claimed = bp.drop_duplicates(["patient_id", "observation_id"], keep="last").set_index(
        ["patient_id", "observation_id"])["effective_us"]
    r["effective_us"] = claimed.reindex(pd.MultiIndex.from_frame(r[["patient_id", "observation_id"]])).to_numpy(np.int64)
    return _with_sources(r, bp.drop_duplicates(["patient_id", "observation_id"], keep="last"))


def advance_safely(rows: pd.DataFrame, alerts: dict[str, AlertState], new: pd.DataFrame, model: ModelRef,
                   clinical: ClinicalConfig, alerts_cfg: AlertsConfig, late_tolerance_minutes: float,
                   clock_skew_ms: float = 600_000) -> Advanced:
    """:func:`advance`, or — if it raises — :func:`crisis_only` on the alert state as it was, so
    that no batch can silence the alert path (a query that failed would replay the same batch
    and fail again, forever)."""
    try:
        return advance(rows, copy.deepcopy(alerts), new, model, clinical, alerts_cfg, late_tolerance_minutes,
                       clock_skew_ms)
    except Exception:
        log.exception("scoring engine failed on %d new rows; alerting on crisis readings alone", len(new))
        return crisis_only(rows, alerts, new, model, clinical, alerts_cfg, clock_skew_ms)


def crisis_only(rows: pd.DataFrame, alerts: dict[str, AlertState], new: pd.DataFrame, model: ModelRef,
                clinical: ClinicalConfig, alerts_cfg: AlertsConfig, clock_skew_ms: float = 600_000) -> Advanced:
    """The last line when :func:`advance` fails on a batch (a bug, an input nobody foresaw): no
    model, no history, no state change but the alert state — each new blood-pressure reading
    that is a crisis in its own values is CRITICAL and alerts (``score_status = engine_error``).
    Logged by the caller; the next batch tries :func:`advance` again."""
    new = normalise(new, clock_skew_ms)
    bp = new[new["vital"].isin(list(BP_VITALS))]
    wide = (bp.pivot_table(index=["patient_id", "observation_id"], columns="vital", values="value", aggfunc="last")
            .reindex(columns=list(BP_VITALS)).rename(columns=BP_VITALS).reset_index()) if len(bp) else pd.DataFrame()
    if wide.empty:
        return Advanced(pd.DataFrame(columns=[*output_columns(clinical), "effective_time"]), rows, alerts)
    key = ["patient_id", "observation_id"]
    first = bp.drop_duplicates(key, keep="last").set_index(key)
    idx = pd.MultiIndex.from_frame(wide[key])
    for c in ("effective_us", "arrival_ms", *SOURCE_COLUMNS):
        wide[c] = first[c].reindex(idx).to_numpy()
    wide["effective_time"] = pd.to_datetime(wide["arrival_ms"].clip(lower=0), unit="ms")  # placed at arrival
    for c in ("heart_rate", "respiratory_rate", "spo2", "temperature", "minutes_since_previous"):
        wide[c] = np.nan
    wide = pd.concat([wide, scoring_columns(wide, clinical)], axis=1)
    wide["features"] = None
    for h in clinical.horizons_hours:
        wide[f"risk_{h}h"] = np.nan
    wide["score_status"] = "engine_error"
    wide["model_name"], wide["model_version"] = model.name, model.version
    wide = _with_shadow_version(wide, model, clinical)
    out = apply_policy(wide, alerts, clinical, alerts_cfg)
    out["effective_time"] = pd.to_datetime(out["effective_us"], unit="us", errors="coerce")
    return Advanced(out[[*output_columns(clinical), "effective_time"]].reset_index(drop=True), rows, alerts)


def _with_shadow_version(sel: pd.DataFrame, model: ModelRef, clinical: ClinicalConfig) -> pd.DataFrame:
    """Every shadow column present (NaN risks where unscored) and the shadow's version on
    the rows it scored."""
    for h in clinical.horizons_hours:
        if f"shadow_risk_{h}h" not in sel:
            sel[f"shadow_risk_{h}h"] = np.nan
    scored_by_shadow = sel[f"shadow_risk_{clinical.horizons_hours[0]}h"].notna().to_numpy()
    version = model.shadow.version if model.shadow is not None else None
    sel["shadow_model_version"] = pd.Series(np.where(scored_by_shadow, version, None), index=sel.index, dtype=object)
    return sel


def apply_policy(sel: pd.DataFrame, alerts: dict[str, AlertState], clinical: ClinicalConfig,
                  cfg: AlertsConfig) -> pd.DataFrame:
    """The policy over the readings in time order. A ``too_late`` or ``untimely`` reading is out
    of order: it never moves the patient's level and has no level of its own unless it is a
    crisis now, which is CRITICAL and alerts (marked late) like any late crisis. An untimely
    reading is placed at its arrival, since its own time is not to be trusted."""
    sel = sel.sort_values(["patient_id", "effective_time", "observation_id"], kind="mergesort")
    risk_col = f"risk_{clinical.alert_horizon_hours}h"
    cols = {k: [] for k in ("level", "level_reasons", "alert_id", "alert_kind", "alert_level",
                            "alert_previous_level", "alert_late")}
    t_ms = _ms(sel["effective_time"])
    for i, row in enumerate(sel.itertuples(index=False)):
        out_of_order = row.score_status in ("too_late", "untimely", "engine_error")
        st = alerts.setdefault(row.patient_id, AlertState())
        a = Assessment(row.patient_id, row.observation_id, int(t_ms[i]), float(getattr(row, risk_col)),
                       bool(row.crisis_now), float(row.news2), bool(row.news2_red_flag), out_of_order)
        d = decide(st, a, clinical, cfg)
        e = d.event
        unassessed = out_of_order and not row.crisis_now
        cols["level"].append(None if unassessed else d.level)
        cols["level_reasons"].append(None if unassessed else list(d.reasons))
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
    keep_ids = pd.MultiIndex.from_frame(keep_r[["patient_id", "observation_id"]])
    oldest = keep_r.groupby("patient_id")["effective_time"].min()
    newest = combined.groupby("patient_id")["effective_time"].max()
    anchor = combined["patient_id"].map(oldest).fillna(combined["patient_id"].map(newest))  # no reading yet
    since = anchor - pd.Timedelta(minutes=clinical.other_vitals_window_minutes)
    is_bp = combined["vital"].isin(BP_VITALS)
    kept_reading = pd.MultiIndex.from_frame(combined[["patient_id", "observation_id"]]).isin(keep_ids)
    keep = (is_bp & kept_reading) | (~is_bp & (combined["effective_time"] >= since))
    return combined[keep.to_numpy()][STATE_COLUMNS].reset_index(drop=True)


def _state_rows(rows: pd.DataFrame | None) -> pd.DataFrame:
    """``rows`` with every state column (a state written before versions and arrivals were kept
    gets "" and -1), or an empty state."""
    if rows is None:
        return empty_rows()
    rows = rows.copy()
    if "version_id" not in rows:
        rows["version_id"] = ""
    if "arrival_ms" not in rows:
        rows["arrival_ms"] = np.int64(-1)
    return rows[STATE_COLUMNS]


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": pd.Series(dtype=object), "observation_id": pd.Series(dtype=object),
                         "effective_time": pd.Series(dtype="datetime64[ns]"),
                         "vital": pd.Series(dtype=object), "value": pd.Series(dtype=float),
                         "version_id": pd.Series(dtype=object), "arrival_ms": pd.Series(dtype=np.int64)})


def score_batch(rows: pd.DataFrame, model: ModelRef, clinical: ClinicalConfig,
                alerts_cfg: AlertsConfig) -> pd.DataFrame:
    """Score every reading of ``rows`` at once, as if each patient's data arrived in time
    order: what the stream must produce for in-order data, whatever its batch boundaries."""
    new = rows.copy()
    for c in SOURCE_COLUMNS:
        if c not in new:
            new[c] = pd.NaT
    return advance(empty_rows(), {}, new, model, clinical, alerts_cfg, float("inf")).out
