"""Evaluation metrics for risk scores (docs/requirements.md §7 and the source project's regression view).

ECE: readings are put in ``bins`` equal-width probability bins; ECE is the reading-weighted
mean |mean predicted − observed rate| over non-empty bins. Alerts per patient-hour count the
readings at or above a threshold (before any suppression) over the patients' observed time
(per patient: last minus first reading, at least one hour)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), 0, 1)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / max(len(y), 1))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Per non-empty bin: mean predicted, observed rate, count (the reliability diagram)."""
    idx = np.minimum((np.clip(p, 0, 1) * bins).astype(int), bins - 1)
    df = pd.DataFrame({"bin": idx, "p": p, "y": y}).groupby("bin").agg(predicted=("p", "mean"),
                                                                       observed=("y", "mean"), n=("y", "size"))
    return df.reset_index()


def patient_hours(patient_id: pd.Series, time: pd.Series) -> float:
    span = pd.DataFrame({"p": patient_id.values, "t": pd.to_datetime(time.values)}).groupby("p")["t"].agg(["min", "max"])
    return float(np.maximum((span["max"] - span["min"]).dt.total_seconds() / 3600, 1.0).sum())


def finite_scores(score: np.ndarray) -> np.ndarray:
    """A baseline that cannot be computed (NaN) ranks below every computed one."""
    s = np.asarray(score, float)
    floor = np.nanmin(s) - 1 if np.isfinite(s).any() else 0.0
    return np.where(np.isnan(s), floor, s)


def ranking_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    y = np.asarray(y)
    score = finite_scores(score)
    if y.min() == y.max():
        return {"auroc": float("nan"), "auprc": float("nan")}
    return {"auroc": float(roc_auc_score(y, score)), "auprc": float(average_precision_score(y, score))}


def probability_metrics(y: np.ndarray, p: np.ndarray, thresholds: dict[str, float], hours: float,
                        bins: int = 15) -> dict[str, float]:
    """Everything the model card reports for one horizon on one set of readings."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    out = ranking_metrics(y, p)
    out.update({
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, bins),
        "mae": float(mean_absolute_error(y, p)),
        "rmse": float(np.sqrt(mean_squared_error(y, p))),
        "r2": float(r2_score(y, p)),
        "prevalence": float(y.mean()),
        "n": float(len(y)),
    })
    pos = y == 1
    for level, thr in thresholds.items():
        hit = p >= thr
        out[f"sens_{level.lower()}"] = float(hit[pos].mean()) if pos.any() else float("nan")
        out[f"alerts_per_ph_{level.lower()}"] = float(hit.sum() / hours) if hours > 0 else float("nan")
    return out
