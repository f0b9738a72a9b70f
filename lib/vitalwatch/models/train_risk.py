"""Training the crisis-risk model: distributed XGBoost per horizon, a Spark ML Random Forest
for comparison, baselines, calibration, evaluation on held-out patients, MLflow registry.

Flow: rows → examples (the one feature builder) → split by patient → per horizon
``SparkXGBClassifier`` on the train split → isotonic calibration on validation when
cross-fitting shows it helps → metrics on test patients (all readings and readings not in
crisis now) → a pyfunc model registered as ``models.risk_model_name``; the champion alias
moves only if the new model beats the champion on ``models.selection_metric``, both scored
on the same validation readings."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.features.build import build_examples, silver_rows
from vitalwatch.features.vector import feature_names
from vitalwatch.models import datasets
from vitalwatch.models.metrics import (
    expected_calibration_error,
    patient_hours,
    probability_metrics,
    ranking_metrics,
)
from vitalwatch.models.scorer import RiskScorer, fit_calibration

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
BASELINES = {"current systolic": "systolic", "max(SBP/180, DBP/120)": "bp_ratio", "NEWS2": "news2_partial"}
_EVAL_COLUMNS = ["patient_id", "observation_id", "effective_time", "systolic", "bp_ratio", "news2_partial", "crisis_now"]


@dataclass
class Source:
    name: str  # icu | synthetic | lake
    rows: DataFrame
    lineage: dict[str, str]


def load_source(spark: SparkSession, settings: Settings, name: str, *, patients: int | None = None,
                sequences: int | None = None, path: Path | None = None) -> Source:
    """Silver-shaped rows and where they came from (logged with the run)."""
    if name == "icu":
        p = path or settings.path(settings.replay.path)
        base = datetime.fromisoformat(settings.replay.base_time.replace("Z", "+00:00"))
        return Source(name, datasets.icu_rows(spark, p, base, patients),
                      {"path": str(p), "sha256": datasets.file_sha256(p), "patients_limit": str(patients or "all"),
                       "dataset": "PhysioNet/CinC 2019 training set B subset"})
    if name == "synthetic":
        n = sequences or settings.models.synthetic.sequences
        cfg = settings.models.synthetic
        return Source(name, datasets.synthetic_rows(spark, cfg, n),
                      {"generator": "vitalwatch.producers.physiology", "sequences": str(n), "seed": str(cfg.seed),
                       "hours": str(cfg.hours), "cadence_minutes": str(cfg.cadence_minutes)})
    if name == "lake":
        from delta.tables import DeltaTable

        tp = (path and str(path)) or settings.table_path("silver", "vital_signs")
        version = DeltaTable.forPath(spark, tp).history(1).collect()[0]["version"]
        rows = silver_rows(spark.read.format("delta").option("versionAsOf", version).load(tp))
        return Source(name, rows, {"delta_table": tp, "delta_version": str(version)})
    raise ValueError(f"unknown training source {name!r}: icu, synthetic or lake")


@dataclass
class TrainReport:
    run_id: str
    model_name: str
    version: str
    promoted: bool
    decision: str
    table: pd.DataFrame  # one row per (model, horizon, subset)
    counts: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    events: str = ""  # the event-level tables (Markdown), when models.event_evaluation is enabled


def _collect(df: DataFrame, horizons: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
    cols = [*_EVAL_COLUMNS, *(f"label_{h}h" for h in horizons), "features"]
    pdf = df.select(*cols).toPandas()
    x = np.array(pdf.pop("features").tolist(), dtype=np.float32).reshape(len(pdf), -1)
    return pdf, x


def _feature_reference(train: DataFrame, n: int, settings: Settings) -> dict:
    """The training features' drift reference (:mod:`vitalwatch.models.drift`), from a seeded
    sample of at most ``models.monitoring.reference_rows`` training readings."""
    from vitalwatch.models import drift

    mon = settings.models.monitoring
    sample = train.sample(False, min(1.0, 1.2 * mon.reference_rows / max(n, 1)), settings.models.seed)
    rows = sample.select("features").limit(mon.reference_rows).toPandas()["features"].tolist()
    x = np.array(rows, dtype=float).reshape(len(rows), -1)
    return drift.reference(x, settings.clinical.history_readings, mon.psi_bins)


def _calibrate(p_val: np.ndarray, y_val: np.ndarray, pid: pd.Series, bins: int):
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


def _fit_xgb(settings: Settings, train: DataFrame, label: str):
    from xgboost.spark import SparkXGBClassifier

    m = settings.models
    params = dict(m.xgboost)
    clf = SparkXGBClassifier(features_col="features", label_col=label, num_workers=m.num_workers,
                             device=m.device, missing=np.nan, random_state=m.seed, verbose=False, **params)
    return clf.fit(train)


def _fit_rf(settings: Settings, train: DataFrame, test: DataFrame, label: str) -> np.ndarray:
    """Spark ML Random Forest (the source project's comparison). It has no missing-value
    handling, so missing features become -1 (a value no vital or interval takes)."""
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.functions import array_to_vector, vector_to_array

    def vec(df: DataFrame) -> DataFrame:
        filled = F.transform("features", lambda x: F.when(F.isnan(x), F.lit(-1.0)).otherwise(x))
        return df.withColumn("fvec", array_to_vector(filled))

    rf = RandomForestClassifier(featuresCol="fvec", labelCol=label, numTrees=settings.models.random_forest.num_trees,
                                maxDepth=settings.models.random_forest.max_depth, seed=settings.models.seed)
    model = rf.fit(vec(train).withColumn(label, F.col(label).cast("double")))
    pred = model.transform(vec(test)).select("patient_id", "observation_id",
                                             vector_to_array("probability")[1].alias("p"))
    return pred.toPandas()


def evaluate(y: np.ndarray, p: np.ndarray, frame: pd.DataFrame, settings: Settings) -> dict[str, dict[str, float]]:
    """Metrics on all readings and on readings not in crisis now."""
    thr = settings.alerts.policy.thresholds
    bins = settings.models.ece_bins
    hours = patient_hours(frame["patient_id"], frame["effective_time"])  # the same observed time for both
    nc = ~frame["crisis_now"].to_numpy(bool)
    return {"all": probability_metrics(y, p, thr, hours, bins),
            "not_in_crisis": probability_metrics(y[nc], p[nc], thr, hours, bins)}


def train_risk(spark: SparkSession, settings: Settings, source: Source, progress: Progress = print,
               register: bool = True) -> TrainReport:
    import mlflow

    from vitalwatch.models import plots, registry
    from vitalwatch.models.pyfunc import CrisisRiskPyfunc, requirements, signature

    m, clin = settings.models, settings.clinical
    horizons = list(clin.horizons_hours)
    names = feature_names(clin.history_readings)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    progress(f"building examples from {source.name}")
    ex = datasets.assign_split(build_examples(source.rows, clin), m.split, m.seed).cache()
    counts_rows = ex.groupBy("split").agg(F.count("*").alias("n"), F.countDistinct("patient_id").alias("p")).collect()
    counts = {f"{r['split']}_readings": int(r["n"]) for r in counts_rows}
    counts |= {f"{r['split']}_patients": int(r["p"]) for r in counts_rows}
    timings["features_s"] = time.perf_counter() - t0
    progress(f"examples: {counts}")
    train = ex.where("split = 'train'")
    val_pdf, x_val = _collect(ex.where("split = 'validation'"), horizons)
    test_pdf, x_test = _collect(ex.where("split = 'test'"), horizons)

    experiment_id = registry.configure(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"crisis-risk-{source.name}") as run:
        mlflow.log_params({f"xgb_{k}": v for k, v in m.xgboost.items()})
        mlflow.log_params({"source": source.name, "num_workers": m.num_workers, "device": m.device,
                           "horizons_hours": ",".join(map(str, horizons)), "history_readings": clin.history_readings,
                           "split_seed": m.seed, "split": json.dumps(m.split.model_dump()),
                           **{f"data_{k}": v for k, v in source.lineage.items()}})
        mlflow.log_params({f"n_{k}": v for k, v in counts.items()})
        boosters, calibration, raw_val, events_md = {}, {}, {}, ""
        xgb_train_s = 0.0
        for h in horizons:
            progress(f"training XGBoost {h} h on {counts.get('train_readings', 0)} readings ({m.num_workers} workers, {m.device})")
            t = time.perf_counter()
            model = _fit_xgb(settings, train, f"label_{h}h")
            xgb_train_s += time.perf_counter() - t
            boosters[h] = model.get_booster()
            raw_val[h] = RiskScorer(horizons, names, boosters).raw(x_val, h)
            cal, raw_ece, cv_ece = _calibrate(raw_val[h], val_pdf[f"label_{h}h"].to_numpy(), val_pdf["patient_id"], m.ece_bins)
            calibration[h] = cal
            mlflow.log_params({f"calibrated_{h}h": cal is not None})
            mlflow.log_metrics({f"val_{h}h_ece_raw": raw_ece, f"val_{h}h_ece_crossfit_isotonic": cv_ece})
        timings["xgb_train_s"] = xgb_train_s
        scorer = RiskScorer(horizons, names, boosters, calibration)

        rows = []
        y_test = {h: test_pdf[f"label_{h}h"].to_numpy() for h in horizons}
        p_test = scorer.predict(x_test)
        p_val = scorer.predict(x_val)
        scores_for_plots: dict[str, dict[int, np.ndarray]] = {"XGBoost": {}}
        for i, h in enumerate(horizons):
            scores_for_plots["XGBoost"][h] = p_test[:, i]
            for subset, met in evaluate(y_test[h], p_test[:, i], test_pdf, settings).items():
                rows.append({"model": "XGBoost", "horizon_h": h, "subset": subset, **met})
            v = ranking_metrics(val_pdf[f"label_{h}h"].to_numpy(), p_val[:, i])
            mlflow.log_metrics({f"val_{h}h_{k}": val for k, val in v.items()})
        if m.random_forest.enabled:
            test_df = ex.where("split = 'test'")
            scores_for_plots["Random Forest (Spark ML)"] = {}
            t = time.perf_counter()
            for h in horizons:
                progress(f"training Random Forest {h} h")
                rf = _fit_rf(settings, train, test_df, f"label_{h}h")
                key = ["patient_id", "observation_id"]  # unique per reading, unlike the time (ties)
                p = test_pdf[key].merge(rf, on=key, how="left", validate="one_to_one")["p"].to_numpy()
                scores_for_plots["Random Forest (Spark ML)"][h] = p
                for subset, met in evaluate(y_test[h], p, test_pdf, settings).items():
                    rows.append({"model": "Random Forest", "horizon_h": h, "subset": subset, **met})
            timings["rf_train_s"] = time.perf_counter() - t
        nc = ~test_pdf["crisis_now"].to_numpy(bool)
        for label, col in BASELINES.items():
            s = test_pdf[col].to_numpy(float)
            scores_for_plots[label] = {}
            for h in horizons:
                scores_for_plots[label][h] = s
                rows.append({"model": label, "horizon_h": h, "subset": "all", **ranking_metrics(y_test[h], s)})
                rows.append({"model": label, "horizon_h": h, "subset": "not_in_crisis",
                             **ranking_metrics(y_test[h][nc], s[nc])})
        table = pd.DataFrame(rows)
        for r in table.to_dict("records"):
            prefix = {"XGBoost": "test", "Random Forest": "rf_test"}.get(r["model"])
            prefix = prefix or "baseline_" + "".join(c if c.isalnum() else "_" for c in r["model"].lower()).strip("_") + "_test"
            sub = "" if r["subset"] == "all" else "nc_"
            mlflow.log_metrics({f"{prefix}_{sub}{r['horizon_h']}h_{k}": float(v) for k, v in r.items()
                                if k not in ("model", "horizon_h", "subset") and pd.notna(v)})
        mlflow.log_metrics(timings)

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            plots.curves(y_test, scores_for_plots, out)
            plots.reliability_plot(y_test, {h: p_test[:, i] for i, h in enumerate(horizons)}, m.ece_bins, out)
            plots.importance_plot(boosters[clin.alert_horizon_hours if clin.alert_horizon_hours in boosters else horizons[0]],
                                  names, clin.alert_horizon_hours, out)
            (out / "metrics.md").write_text(markdown_table(table))
            table.to_csv(out / "metrics.csv", index=False)
            (out / "lineage.json").write_text(json.dumps({"source": source.name, **source.lineage, **counts}, indent=1))
            if m.event_evaluation.enabled:
                events = _event_evaluation(settings, source, scorer, out, progress)
                timings["event_eval_s"] = events.pop("event_eval_s")
                mlflow.log_metrics(events | {"event_eval_s": timings["event_eval_s"]})
                events_md = (out / "events.md").read_text()
            mlflow.log_artifacts(str(out), artifact_path="evaluation")
            scorer.reference = _feature_reference(train, counts.get("train_readings", 0), settings)
            scorer_dir = scorer.save(out / "scorer")
            progress("logging and registering the model")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=CrisisRiskPyfunc(), artifacts={"scorer": str(scorer_dir)},
                signature=signature(names, scorer.output_names), pip_requirements=requirements(),
                registered_model_name=settings.models.risk_model_name if register else None)
        metric = m.selection_metric
        new_value = _selection_value(metric, val_pdf, p_val, horizons)
        version, decision, promoted = "", "not registered", False
        if register:
            version = str(info.registered_model_version)
            champ = _champion_value(settings, metric, val_pdf, x_val, horizons)
            d = registry.decide_and_alias(settings, settings.models.risk_model_name, version, metric, new_value, champ)
            decision, promoted = d.explain(), d.promoted
            mlflow.set_tags({"registered_version": version, "promoted": str(promoted).lower(), "decision": decision})
        ex.unpersist()
    return TrainReport(run.info.run_id, settings.models.risk_model_name, version, promoted, decision, table, counts,
                       timings, events_md)


def _event_evaluation(settings: Settings, source: Source, scorer: RiskScorer, out: Path,
                      progress: Progress) -> dict[str, float]:
    """The new model through the whole alert path on validation and test patients
    (:mod:`vitalwatch.models.alert_eval`): metrics, ``events.md`` and the trade-off plots."""
    from vitalwatch.models.alert_eval import evaluate_events
    from vitalwatch.scoring.engine import ModelRef

    model = ModelRef(settings.models.risk_model_name, "candidate", scorer)
    metrics, _ = evaluate_events(source.rows, model, settings, out, progress)
    return metrics


def _selection_value(metric: str, val_pdf: pd.DataFrame, p_val: np.ndarray, horizons: list[int]) -> float:
    """``val_<h>h_<auroc|auprc>`` for predictions ``p_val`` on the validation readings."""
    _, h, name = metric.split("_")
    i = horizons.index(int(h.rstrip("h")))
    return ranking_metrics(val_pdf[f"label_{horizons[i]}h"].to_numpy(), p_val[:, i])[name]


def _champion_value(settings: Settings, metric: str, val_pdf: pd.DataFrame, x_val: np.ndarray,
                    horizons: list[int]) -> float | None:
    from mlflow.exceptions import MlflowException

    from vitalwatch.models.integrity import ModelIntegrityError
    from vitalwatch.models.registry import load_risk_model

    try:
        champ = load_risk_model(settings)
    except MlflowException:  # none yet
        return None
    except ModelIntegrityError as e:  # refused: any sealed model is better than scoring by rules alone
        log.error("%s; the new model replaces it", e)
        return float("-inf")
    if champ.scorer.horizons != horizons:
        return None
    return _selection_value(metric, val_pdf, champ.scorer.predict(x_val), horizons)


METRIC_COLUMNS = ["auroc", "auprc", "brier", "ece", "mae", "rmse", "r2",
                  "sens_medium", "sens_high", "sens_critical",
                  "alerts_per_ph_medium", "alerts_per_ph_high", "alerts_per_ph_critical"]


def markdown_table(table: pd.DataFrame) -> str:
    """The model card's metric table: test patients, per model, horizon and subset."""
    cols = ["model", "horizon_h", "subset", *[c for c in METRIC_COLUMNS if c in table]]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    lines = []
    for r in table[cols].to_dict("records"):
        cells = [str(r["model"]), f"{r['horizon_h']} h", r["subset"].replace("_", " ")]
        cells += ["—" if pd.isna(r[c]) else f"{r[c]:.3f}" for c in cols[3:]]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
