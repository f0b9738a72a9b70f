"""Training, evaluation, registry and loading of the crisis-risk model, end to end on Spark
with a real (local, serverless) MLflow registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from vitalwatch.features.vector import feature_names
from vitalwatch.models import registry
from vitalwatch.models.train_risk import load_source, markdown_table, train_risk


@pytest.fixture(scope="module")
def first(spark, model_settings):
    src = load_source(spark, model_settings, "synthetic", sequences=240)
    return train_risk(spark, model_settings, src, progress=lambda _m: None)


def test_first_model_becomes_champion_with_full_metric_table(first, model_settings):
    assert first.version == "1" and first.promoted
    t = first.table
    assert set(t.model) == {"XGBoost", "Random Forest", "current systolic", "max(SBP/180, DBP/120)", "NEWS2"}
    assert set(t.horizon_h) == {1, 6, 24} and set(t.subset) == {"all", "not_in_crisis"}
    xgb = t[(t.model == "XGBoost") & (t.subset == "all")].set_index("horizon_h")
    # the simulated onset episodes are learnable: far better than chance at every horizon
    assert (xgb.auroc > 0.8).all(), xgb.auroc
    assert ((xgb.brier >= 0) & (xgb.brier < xgb.prevalence)).all()  # beats always-zero
    for col in ("ece", "mae", "rmse", "r2", "sens_medium", "alerts_per_ph_critical"):
        assert xgb[col].notna().all(), col
    # sensitivity falls as the threshold rises
    assert ((xgb.sens_medium >= xgb.sens_high) & (xgb.sens_high >= xgb.sens_critical)).all()
    md = markdown_table(t)
    assert md.count("\n") == len(t) + 2 and "| XGBoost | 6 h | all |" in md
    assert first.counts["train_patients"] + first.counts["validation_patients"] + first.counts["test_patients"] == 240


def test_run_has_params_lineage_plots_and_signature(first, model_settings):
    registry.configure(model_settings)
    run = mlflow.get_run(first.run_id)
    assert run.data.params["source"] == "synthetic" and run.data.params["data_sequences"] == "240"
    assert "test_6h_auroc" in run.data.metrics and "rf_test_6h_auroc" in run.data.metrics
    assert "baseline_news2_test_nc_6h_auroc" in run.data.metrics
    arts = {Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(first.run_id, "evaluation")}
    assert {"roc.png", "pr.png", "reliability.png", "importance_6h.png", "metrics.md", "lineage.json"} <= arts
    # the whole alert path on held-out patients: the policy in force, the other profiles, the baselines
    assert {"events.md", "events.csv", "event_tradeoff_test.png", "event_tradeoff_validation.png",
            "event_sweep_test.csv"} <= arts
    m = run.data.metrics
    for split in ("validation", "test"):
        burden = [k for k in m if k.startswith(f"{split}_event_model_") and k.endswith("_in_force_burden_ph_medium")]
        assert len(burden) == 1 and m[burden[0]] > 0, burden
        assert f"{split}_event_current_systolic_{model_settings.alerts.profile}_onsets" in m
        assert f"{split}_event_news2_{model_settings.alerts.profile}_warned_medium" in m
    assert "### test patients" in first.events and "(in force)" in first.events
    info = mlflow.models.get_model_info(f"models:/{model_settings.models.risk_model_name}/1")
    assert info.signature.inputs.input_names() == feature_names(30)
    assert info.signature.outputs.input_names() == ["risk_1h", "risk_6h", "risk_24h"]


def test_loader_resolves_alias_and_matches_pyfunc(first, model_settings):
    from vitalwatch.features.vector import training_examples
    from vitalwatch.models.datasets import synthetic_pandas

    loaded = registry.load_risk_model(model_settings)
    assert (loaded.name, loaded.version, loaded.alias) == (model_settings.models.risk_model_name, "1", "champion")
    assert loaded.run_id == first.run_id and loaded.label == f"{loaded.name}/1"
    ex = training_examples(synthetic_pandas(model_settings.models.synthetic, 5), model_settings.clinical)
    x = np.stack(ex.features)
    risk = loaded.scorer.predict(x)
    assert risk.shape == (len(ex), 3) and ((risk >= 0) & (risk <= 1)).all()
    py = mlflow.pyfunc.load_model(f"models:/{loaded.name}@champion")
    out = py.predict(pd.DataFrame(x, columns=feature_names(30)))
    np.testing.assert_allclose(out.to_numpy(), risk, rtol=1e-6)


def test_scorer_equals_spark_transform(spark, model_settings):
    """Native inplace_predict on the booster (what the scorer does) gives the probability
    xgboost.spark's own transform gives, missing values included."""
    from pyspark.ml.functions import vector_to_array
    from xgboost.spark import SparkXGBClassifier

    from vitalwatch.features.build import build_examples
    from vitalwatch.models.datasets import synthetic_rows
    from vitalwatch.models.scorer import RiskScorer

    ex = build_examples(synthetic_rows(spark, model_settings.models.synthetic, 30), model_settings.clinical).cache()
    model = SparkXGBClassifier(features_col="features", label_col="label_6h", num_workers=1, missing=np.nan,
                               n_estimators=15, max_depth=3, verbose=False).fit(ex)
    pdf = model.transform(ex).select("features", vector_to_array("probability")[1].alias("p")).toPandas()
    x = np.stack(pdf.features)
    assert np.isnan(x).any()
    scorer = RiskScorer([6], feature_names(30), {6: model.get_booster()})
    np.testing.assert_allclose(scorer.raw(x, 6), pdf.p.to_numpy(), rtol=1e-5, atol=1e-6)
    ex.unpersist()


def test_weaker_model_does_not_take_champion(first, spark, model_settings):
    m = model_settings.models
    weak = model_settings.with_updates(models={
        "xgboost": {**m.xgboost, "n_estimators": 1, "max_depth": 1},
        "random_forest": {"enabled": False}})
    src = load_source(spark, weak, "synthetic", sequences=240)
    rep = train_risk(spark, weak, src, progress=lambda _m: None)
    assert rep.version == "2" and not rep.promoted
    c = registry.client(model_settings)
    assert str(c.get_model_version_by_alias(m.risk_model_name, "champion").version) == "1"
    assert str(c.get_model_version_by_alias(m.risk_model_name, "challenger").version) == "2"
    assert "does not beat" in rep.decision
    assert registry.load_risk_model(model_settings).version == "1"


def test_icu_split_is_by_patient(spark, model_settings):
    from vitalwatch.features.build import build_examples
    from vitalwatch.models.datasets import assign_split

    src = load_source(spark, model_settings, "icu", patients=300)
    assert len(src.lineage["sha256"]) == 64
    ex = assign_split(build_examples(src.rows, model_settings.clinical), model_settings.models.split, 42)
    per_patient = ex.groupBy("patient_id").agg(F.countDistinct("split").alias("k"))
    assert per_patient.where("k > 1").count() == 0
    shares = {r["split"]: r["count"] for r in ex.select("patient_id", "split").distinct().groupBy("split").count().collect()}
    assert set(shares) == {"train", "validation", "test"} and sum(shares.values()) == 300
    assert shares["train"] > shares["validation"] and shares["train"] > shares["test"]


def test_lake_source_pins_the_delta_version(spark, model_settings, tmp_path):
    """Training from silver reads one pinned Delta version and logs it as lineage."""
    from datetime import datetime

    path = str(tmp_path / "silver")
    cols = ("patient_id string, observation_id string, version_id string, effective_time timestamp, "
            "vital string, value double, ingest_time timestamp")
    t = datetime(2026, 1, 1)
    first = [("p", "o1", "1", t, "systolic_bp", 150.0, t), ("p", "o1", "1", t, "diastolic_bp", 95.0, t)]
    spark.createDataFrame(first, cols).write.format("delta").save(path)
    spark.createDataFrame([("p", "o2", "1", t, "systolic_bp", 190.0, t)], cols).write.format("delta").mode("append").save(path)
    src = load_source(spark, model_settings, "lake", path=Path(path))
    assert src.lineage == {"delta_table": path, "delta_version": "1"}
    assert src.rows.count() == 3
    # a write after the pin does not change what this source reads
    spark.createDataFrame([("p", "o3", "1", t, "systolic_bp", 120.0, t)], cols).write.format("delta").mode("append").save(path)
    assert src.rows.count() == 3
