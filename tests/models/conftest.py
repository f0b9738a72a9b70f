"""Model tests: a private MLflow store (SQLite + file artifacts, no server) per module."""

from __future__ import annotations

import pytest

from vitalwatch.config import Settings


@pytest.fixture(scope="module")
def model_settings(base_settings: Settings, tmp_path_factory) -> Settings:
    d = tmp_path_factory.mktemp("mlflow")
    m = base_settings.models
    return base_settings.with_updates(
        models={"mlflow_dir": str(d), "num_workers": 2,
                "xgboost": {**m.xgboost, "n_estimators": 40, "max_depth": 4},
                "random_forest": {"num_trees": 8, "max_depth": 6}, "synthetic": {"hours": 24}},
    )
