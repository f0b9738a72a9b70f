"""The fitting and scoring pieces of the crisis-risk training (:mod:`vitalwatch.models.train_risk`):
XGBoost per horizon, the Spark ML Random Forest comparison, cross-fitted calibration, the drift
reference and the metrics on held-out readings. Kept apart so the training reads as its steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vitalwatch.config import ModelsConfig
from vitalwatch.models.metrics import expected_calibration_error, patient_hours, probability_metrics
from vitalwatch.models.scorer import Calibration, fit_calibration

# what the evaluation needs of each validation and test reading, besides its labels and features
EVAL_COLUMNS = ["patient_id", "observation_id", "effective_time", "systolic", "bp_ratio", "news2_partial", "crisis_now"]


def collect_examples(df: DataFrame, horizons: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
    """The readings' evaluation columns and labels (pandas) and their feature matrix (float32)."""
    cols = [*EVAL_COLUMNS, *(f"label_{h}h" for h in horizons), "features"]
    pdf = df.select(*cols).toPandas()
    x = np.array(pdf.pop("features").tolist(), dtype=np.float32).reshape(len(pdf), -1)
    return pdf, x


def feature_reference(train: DataFrame, n: int, m: ModelsConfig, history_readings: int) -> dict:
    """The training features' drift reference (:mod:`vitalwatch.models.drift`), from a seeded
    sample of at most ``models.monitoring.reference_rows`` of the ``n`` training readings."""
    from vitalwatch.models import drift

    mon = m.monitoring
    sample = train.sample(False, min(1.0, 1.2 * mon.reference_rows / max(n, 1)), m.seed)
    rows = sample.select("features").limit(mon.reference_rows).toPandas()["features"].tolist()
    x = np.array(rows, dtype=float).reshape(len(rows), -1)
    return drift.reference(x, history_readings, mon.psi_bins)


def calibrate(p_val: np.ndarray, y_val: np.ndarray, pid: pd.Series,
              bins: int) -> tuple[Calibration | None, float, float]:
    """Cross-fit isotonic calibration over two halves of the validation patients; keep it
    only if it lowers ECE out of fold. Returns (calibration or None, raw ECE, cross-fit ECE)."""
    half = (pd.util.hash_pandas_object(pid, index=False).to_numpy() % 2).astype(bool)
    out = np.empty_like(p_val)
    for fit_m in (half, ~half):
        if y_val[fit_m].min() == y_val[fit_m].max():
            return None, float("nan"), float("nan")
        out[~fit_m] = fit_calibration(p_val[fit_m], y_val[fit_m]).apply(p_val[~fit_m])
    raw_ece = expected_calibration_error(y_val, p_val, bins)
    cv_ece = expected_calibration_error(y_val, out, bins)
    return (fit_calibration(p_val, y_val) if cv_ece < raw_ece else None), raw_ece, cv_ece


def fit_xgb(m: ModelsConfig, train: DataFrame, label: str):
    """Distributed XGBoost (``models.xgboost`` as given) on ``num_workers`` Spark tasks; NaN is
    a missing feature, which XGBoost routes itself."""
    from xgboost.spark import SparkXGBClassifier

    clf = SparkXGBClassifier(features_col="features", label_col=label, num_workers=m.num_workers,
                             device=m.device, missing=np.nan, random_state=m.seed, verbose=False, **dict(m.xgboost))
    return clf.fit(train)


def fit_rf(m: ModelsConfig, train: DataFrame, test: DataFrame, label: str) -> pd.DataFrame:
    """Spark ML Random Forest (the source project's comparison): the test readings' ``p`` by
    patient and observation id. It has no missing-value handling, so missing features become
    -1 (a value no vital or interval takes)."""
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.functions import array_to_vector, vector_to_array

    def vec(df: DataFrame) -> DataFrame:
        filled = F.transform("features", lambda x: F.when(F.isnan(x), F.lit(-1.0)).otherwise(x))
        return df.withColumn("fvec", array_to_vector(filled))

    rf = RandomForestClassifier(featuresCol="fvec", labelCol=label, numTrees=m.random_forest.num_trees,
                                maxDepth=m.random_forest.max_depth, seed=m.seed)
    model = rf.fit(vec(train).withColumn(label, F.col(label).cast("double")))
    pred = model.transform(vec(test)).select("patient_id", "observation_id",
                                             vector_to_array("probability")[1].alias("p"))
    return pred.toPandas()


def evaluate(y: np.ndarray, p: np.ndarray, frame: pd.DataFrame, thr: dict[str, float],
             bins: int) -> dict[str, dict[str, float]]:
    """Metrics on all readings and on readings not in crisis now (``thr``: the alert policy's
    thresholds, for sensitivity and alerts per patient-hour at each level)."""
    hours = patient_hours(frame["patient_id"], frame["effective_time"])  # the same observed time for both
    nc = ~frame["crisis_now"].to_numpy(bool)
    return {"all": probability_metrics(y, p, thr, hours, bins),
            "not_in_crisis": probability_metrics(y[nc], p[nc], thr, hours, bins)}
