"""The crisis-risk scorer: one XGBoost booster per horizon plus its calibration map.

The same object serves training evaluation, the MLflow pyfunc model and the streaming job,
so a score means the same thing everywhere. Prediction is native ``inplace_predict`` on the
120-feature matrix (NaN = missing), then the horizon's isotonic calibration if it has one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Calibration:
    """A monotone map from raw to calibrated probability (isotonic breakpoints)."""

    x: list[float]
    y: list[float]

    def apply(self, p: np.ndarray) -> np.ndarray:
        return np.interp(p, self.x, self.y)


@dataclass
class RiskScorer:
    horizons: list[int]
    feature_names: list[str]
    boosters: dict[int, object]  # xgboost.Booster per horizon (hours)
    calibration: dict[int, Calibration | None] = field(default_factory=dict)
    # the training feature reference for drift (models.drift.reference); None for older versions
    reference: dict | None = None

    @property
    def output_names(self) -> list[str]:
        return [f"risk_{h}h" for h in self.horizons]

    def raw(self, x: np.ndarray, horizon: int) -> np.ndarray:
        """Uncalibrated probability from the booster."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(self.boosters[horizon].inplace_predict(x, missing=np.nan), dtype=float)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Risk per horizon, shape (n, len(horizons)), in [0, 1]."""
        cols = []
        for h in self.horizons:
            p = self.raw(x, h)
            cal = self.calibration.get(h)
            cols.append(cal.apply(p) if cal is not None else p)
        return np.column_stack(cols) if cols else np.zeros((len(x), 0))

    def save(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        for h, b in self.boosters.items():
            b.save_model(str(path / f"xgb_{h}h.json"))
        meta = {"horizons": self.horizons, "feature_names": self.feature_names,
                "calibration": {str(h): (None if c is None else {"x": list(c.x), "y": list(c.y)})
                                for h, c in self.calibration.items()}}
        (path / "scorer.json").write_text(json.dumps(meta, indent=1))
        if self.reference is not None:
            from vitalwatch.models.drift import REFERENCE_FILE

            (path / REFERENCE_FILE).write_text(json.dumps(self.reference))
        return path

    @classmethod
    def load(cls, path: Path) -> RiskScorer:
        import xgboost as xgb

        meta = json.loads((path / "scorer.json").read_text())
        boosters = {}
        for h in meta["horizons"]:
            b = xgb.Booster()
            b.load_model(str(path / f"xgb_{h}h.json"))
            b.set_param({"nthread": 1})  # scoring runs inside Spark tasks: one core each
            boosters[h] = b
        cal = {int(h): (None if c is None else Calibration(c["x"], c["y"])) for h, c in meta["calibration"].items()}
        from vitalwatch.models.drift import REFERENCE_FILE

        ref = json.loads((path / REFERENCE_FILE).read_text()) if (path / REFERENCE_FILE).exists() else None
        return cls(meta["horizons"], meta["feature_names"], boosters, cal, ref)


@dataclass
class NoModel:
    """What scoring uses while no trustworthy model can be loaded (registry unreachable, no
    champion, a champion whose files fail their checksum): every risk is unknown (NaN), so
    levels come from the rules that need no model — a crisis reading is CRITICAL, NEWS2 —
    and the alert path keeps running (docs/requirements.md: when in doubt, alert)."""

    horizons: list[int]

    @property
    def output_names(self) -> list[str]:
        return [f"risk_{h}h" for h in self.horizons]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), len(self.horizons)), np.nan)


def fit_calibration(p: np.ndarray, y: np.ndarray) -> Calibration:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return Calibration([float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_])
