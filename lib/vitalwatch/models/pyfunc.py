"""The MLflow pyfunc face of the crisis-risk scorer (what the registry stores).

Input: the 120 named features (``r00_sbp … r29_dt``, NaN = missing). Output: risk_1h,
risk_6h, risk_24h. The boosters and calibration travel as the model's artifacts."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class CrisisRiskPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from pathlib import Path

        from vitalwatch.models.scorer import RiskScorer

        self.scorer = RiskScorer.load(Path(context.artifacts["scorer"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        x = model_input[self.scorer.feature_names].to_numpy(dtype=float)
        return pd.DataFrame(self.scorer.predict(x), columns=self.scorer.output_names, index=model_input.index)


def signature(feature_names: list[str], outputs: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("double", n, required=False) for n in feature_names]),
                          outputs=Schema([ColSpec("double", n) for n in outputs]))


def requirements() -> list[str]:
    """Pinned to what trained the model (no slow requirement inference)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("xgboost", "numpy", "pandas", "scikit-learn", "mlflow")]
