"""Fixtures of the unit tests: a real (small) XGBoost scorer for the pure scoring engine."""

from __future__ import annotations

import numpy as np
import pytest

from vitalwatch.config import Settings
from vitalwatch.scoring.engine import ModelRef


@pytest.fixture(scope="session")
def model() -> ModelRef:
    """Three boosters trained here on the simulator's physiology (no registry or Spark needed)."""
    import xgboost as xgb

    from vitalwatch.features.vector import training_examples
    from vitalwatch.models.datasets import synthetic_pandas
    from vitalwatch.models.scorer import RiskScorer

    s = Settings()
    clin = s.clinical
    ex = training_examples(synthetic_pandas(s.models.synthetic, 80), clin)
    x = np.stack(ex["features"].to_numpy())
    boosters = {h: xgb.train({"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "nthread": 1},
                             xgb.DMatrix(x, ex[f"label_{h}h"], missing=np.nan), 15) for h in clin.horizons_hours}
    return ModelRef("test-model", "7", RiskScorer(clin.horizons_hours, [], boosters, {}))
