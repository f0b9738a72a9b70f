"""The hypertensive-crisis event: systolic ≥ 180 or diastolic ≥ 120 mmHg (ACC/AHA 2017, "≥" as
in JMIR Med Inform 2024). One implementation for labels, baselines and the crisis-now override."""

from __future__ import annotations

import numpy as np

from vitalwatch.config import ClinicalConfig


def is_crisis(systolic: np.ndarray, diastolic: np.ndarray, cfg: ClinicalConfig) -> np.ndarray:
    """Boolean per reading; a missing component (NaN) cannot make a reading a crisis."""
    s = np.asarray(systolic, dtype=float)
    d = np.asarray(diastolic, dtype=float)
    with np.errstate(invalid="ignore"):
        return (s >= cfg.crisis_systolic) | (d >= cfg.crisis_diastolic)


def bp_ratio(systolic: np.ndarray, diastolic: np.ndarray, cfg: ClinicalConfig) -> np.ndarray:
    """max(SBP/180, DBP/120): how close a reading is to the crisis thresholds (a baseline)."""
    s = np.asarray(systolic, dtype=float) / cfg.crisis_systolic
    d = np.asarray(diastolic, dtype=float) / cfg.crisis_diastolic
    return np.fmax(s, d)
