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
from vitalwatch.models.metrics import ranking_metrics
from vitalwatch.models.risk_fit import (
    calibrate,
    collect_examples,
    evaluate,
    feature_reference,
    fit_rf,
    fit_xgb,
)
from vitalwatch.models.scorer import RiskScorer

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
BASELINES = {"current systolic": "systolic", "max(SBP/180, DBP/120)": "bp_ratio", "NEWS2": "news2_partial"}


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


@dataclass
class _Examples:
    """The examples of one run: the cached Spark frame, its train split, and the validation and
    test readings collected (frame of labels and baselines, feature matrix)."""

    ex: DataFrame
    train: DataFrame
    val_pdf: pd.DataFrame
    x_val: np.ndarray
    test_pdf: pd.DataFrame
    x_test: np.ndarray
    counts: dict[str, int]
    horizons: list[int]
    names: list[str]


@dataclass
class _Scores:
    """What evaluation builds up: the metric rows and each model's test scores for the plots."""

    rows: list[dict] = field(default_factory=list)
    for_plots: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


def train_risk(spark: SparkSession, settings: Settings, source: Source, progress: Progress = print,
               register: bool = True) -> TrainReport:
    """Train, evaluate, log and (if ``register``) register a crisis-risk model from ``source``;
    the champion alias moves only if the new model wins on ``models.selection_metric``."""
    import mlflow

    from vitalwatch.models import registry

    timings: dict[str, float] = {}
    data = _examples(settings, source, progress, timings)
    experiment_id = registry.configure(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"crisis-risk-{source.name}") as run:
        _log_params(settings, source, data)
        scorer = _train_xgb(settings, data, progress, timings)
        scores, p_test, p_val = _evaluate_xgb(settings, data, scorer)
        if settings.models.random_forest.enabled:
            _evaluate_rf(settings, data, scores, progress, timings)
        _evaluate_baselines(data, scores)
        table = pd.DataFrame(scores.rows)
        _log_table(table)
        mlflow.log_metrics(timings)
        events_md = _log_evaluation(settings, source, data, scorer, scores, p_test, table, progress, timings)
        info = _log_model(settings, data, scorer, progress, register)
        version, decision, promoted = _register(settings, data, p_val, info, register)
        data.ex.unpersist()
    return TrainReport(run.info.run_id, settings.models.risk_model_name, version, promoted, decision, table,
                       data.counts, timings, events_md)


def _examples(settings: Settings, source: Source, progress: Progress, timings: dict[str, float]) -> _Examples:
    """Examples from the one feature builder, split by patient (cached: every step reads them);
    validation and test readings collected for scoring on the driver."""
    m, clin = settings.models, settings.clinical
    horizons = list(clin.horizons_hours)
    t0 = time.perf_counter()
    progress(f"building examples from {source.name}")
    ex = datasets.assign_split(build_examples(source.rows, clin), m.split, m.seed).cache()
    counts_rows = ex.groupBy("split").agg(F.count("*").alias("n"), F.countDistinct("patient_id").alias("p")).collect()
    counts = {f"{r['split']}_readings": int(r["n"]) for r in counts_rows}
    counts |= {f"{r['split']}_patients": int(r["p"]) for r in counts_rows}
    timings["features_s"] = time.perf_counter() - t0
    progress(f"examples: {counts}")
    val_pdf, x_val = collect_examples(ex.where("split = 'validation'"), horizons)
    test_pdf, x_test = collect_examples(ex.where("split = 'test'"), horizons)
    return _Examples(ex, ex.where("split = 'train'"), val_pdf, x_val, test_pdf, x_test, counts, horizons,
                     feature_names(clin.history_readings))


def _log_params(settings: Settings, source: Source, data: _Examples) -> None:
    """The run's parameters: XGBoost's, the data's lineage and the split's sizes."""
    import mlflow

    m, clin = settings.models, settings.clinical
    mlflow.log_params({f"xgb_{k}": v for k, v in m.xgboost.items()})
    mlflow.log_params({"source": source.name, "num_workers": m.num_workers, "device": m.device,
                       "horizons_hours": ",".join(map(str, data.horizons)), "history_readings": clin.history_readings,
                       "split_seed": m.seed, "split": json.dumps(m.split.model_dump()),
                       **{f"data_{k}": v for k, v in source.lineage.items()}})
    mlflow.log_params({f"n_{k}": v for k, v in data.counts.items()})


def _train_xgb(settings: Settings, data: _Examples, progress: Progress, timings: dict[str, float]) -> RiskScorer:
    """One booster per horizon on the train split, each calibrated on validation when
    cross-fitting shows it helps; returns the scorer over them."""
    import mlflow

    m, horizons, val_pdf = settings.models, data.horizons, data.val_pdf
    boosters, calibration = {}, {}
    xgb_train_s = 0.0
    for h in horizons:
        progress(f"training XGBoost {h} h on {data.counts.get('train_readings', 0)} readings "
                 f"({m.num_workers} workers, {m.device})")
        t = time.perf_counter()
        model = fit_xgb(m, data.train, f"label_{h}h")
        xgb_train_s += time.perf_counter() - t
        boosters[h] = model.get_booster()
        raw_val = RiskScorer(horizons, data.names, boosters).raw(data.x_val, h)
        cal, raw_ece, cv_ece = calibrate(raw_val, val_pdf[f"label_{h}h"].to_numpy(), val_pdf["patient_id"], m.ece_bins)
        calibration[h] = cal
        mlflow.log_params({f"calibrated_{h}h": cal is not None})
        mlflow.log_metrics({f"val_{h}h_ece_raw": raw_ece, f"val_{h}h_ece_crossfit_isotonic": cv_ece})
    timings["xgb_train_s"] = xgb_train_s
    return RiskScorer(horizons, data.names, boosters, calibration)


def _evaluate_xgb(settings: Settings, data: _Examples, scorer: RiskScorer) -> tuple[_Scores, np.ndarray, np.ndarray]:
    """XGBoost's metrics on the test patients (logged: its ranking on validation); returns the
    scores so far and the test and validation predictions."""
    import mlflow

    thr, bins = settings.alerts.policy.thresholds, settings.models.ece_bins
    scores = _Scores()
    p_test = scorer.predict(data.x_test)
    p_val = scorer.predict(data.x_val)
    scores.for_plots["XGBoost"] = {}
    for i, h in enumerate(data.horizons):
        scores.for_plots["XGBoost"][h] = p_test[:, i]
        y = data.test_pdf[f"label_{h}h"].to_numpy()
        for subset, met in evaluate(y, p_test[:, i], data.test_pdf, thr, bins).items():
            scores.rows.append({"model": "XGBoost", "horizon_h": h, "subset": subset, **met})
        v = ranking_metrics(data.val_pdf[f"label_{h}h"].to_numpy(), p_val[:, i])
        mlflow.log_metrics({f"val_{h}h_{k}": val for k, val in v.items()})
    return scores, p_test, p_val


def _evaluate_rf(settings: Settings, data: _Examples, scores: _Scores, progress: Progress,
                 timings: dict[str, float]) -> None:
    """The Spark ML Random Forest per horizon, on the same test readings."""
    thr, bins = settings.alerts.policy.thresholds, settings.models.ece_bins
    test_df = data.ex.where("split = 'test'")
    label = "Random Forest (Spark ML)"
    scores.for_plots[label] = {}
    t = time.perf_counter()
    for h in data.horizons:
        progress(f"training Random Forest {h} h")
        rf = fit_rf(settings.models, data.train, test_df, f"label_{h}h")
        key = ["patient_id", "observation_id"]  # unique per reading, unlike the time (ties)
        p = data.test_pdf[key].merge(rf, on=key, how="left", validate="one_to_one")["p"].to_numpy()
        scores.for_plots[label][h] = p
        y = data.test_pdf[f"label_{h}h"].to_numpy()
        for subset, met in evaluate(y, p, data.test_pdf, thr, bins).items():
            scores.rows.append({"model": "Random Forest", "horizon_h": h, "subset": subset, **met})
    timings["rf_train_s"] = time.perf_counter() - t


def _evaluate_baselines(data: _Examples, scores: _Scores) -> None:
    """The rule baselines' ranking on the test readings, all and not in crisis now."""
    nc = ~data.test_pdf["crisis_now"].to_numpy(bool)
    for label, col in BASELINES.items():
        s = data.test_pdf[col].to_numpy(float)
        scores.for_plots[label] = {}
        for h in data.horizons:
            y = data.test_pdf[f"label_{h}h"].to_numpy()
            scores.for_plots[label][h] = s
            scores.rows.append({"model": label, "horizon_h": h, "subset": "all", **ranking_metrics(y, s)})
            scores.rows.append({"model": label, "horizon_h": h, "subset": "not_in_crisis",
                                **ranking_metrics(y[nc], s[nc])})


def _log_table(table: pd.DataFrame) -> None:
    """Every metric of the table as an MLflow metric (``test_``, ``rf_test_``, ``baseline_…``)."""
    import mlflow

    for r in table.to_dict("records"):
        prefix = {"XGBoost": "test", "Random Forest": "rf_test"}.get(r["model"])
        prefix = prefix or "baseline_" + "".join(c if c.isalnum() else "_" for c in r["model"].lower()).strip("_") + "_test"
        sub = "" if r["subset"] == "all" else "nc_"
        mlflow.log_metrics({f"{prefix}_{sub}{r['horizon_h']}h_{k}": float(v) for k, v in r.items()
                            if k not in ("model", "horizon_h", "subset") and pd.notna(v)})


def _log_evaluation(settings: Settings, source: Source, data: _Examples, scorer: RiskScorer, scores: _Scores,
                    p_test: np.ndarray, table: pd.DataFrame, progress: Progress, timings: dict[str, float]) -> str:
    """Plots, the metric tables, lineage and (if enabled) the event-level evaluation as the run's
    ``evaluation`` artifacts. Returns the event-level tables (Markdown; "" when disabled)."""
    import mlflow

    from vitalwatch.models import plots

    m, clin, horizons, events_md = settings.models, settings.clinical, data.horizons, ""
    y_test = {h: data.test_pdf[f"label_{h}h"].to_numpy() for h in horizons}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        plots.curves(y_test, scores.for_plots, out)
        plots.reliability_plot(y_test, {h: p_test[:, i] for i, h in enumerate(horizons)}, m.ece_bins, out)
        boosters = scorer.boosters
        plots.importance_plot(boosters[clin.alert_horizon_hours if clin.alert_horizon_hours in boosters else horizons[0]],
                              data.names, clin.alert_horizon_hours, out)
        (out / "metrics.md").write_text(markdown_table(table))
        table.to_csv(out / "metrics.csv", index=False)
        (out / "lineage.json").write_text(json.dumps({"source": source.name, **source.lineage, **data.counts}, indent=1))
        if m.event_evaluation.enabled:
            events = _event_evaluation(settings, source, scorer, out, progress)
            timings["event_eval_s"] = events.pop("event_eval_s")
            mlflow.log_metrics(events | {"event_eval_s": timings["event_eval_s"]})
            events_md = (out / "events.md").read_text()
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
    return events_md


def _log_model(settings: Settings, data: _Examples, scorer: RiskScorer, progress: Progress, register: bool):
    """The scorer with its drift reference logged as a pyfunc model, registered as
    ``models.risk_model_name`` if ``register``. Returns MLflow's model info."""
    import mlflow

    from vitalwatch.models.pyfunc import CrisisRiskPyfunc, requirements, signature

    m = settings.models
    scorer.reference = feature_reference(data.train, data.counts.get("train_readings", 0), m,
                                         settings.clinical.history_readings)
    with tempfile.TemporaryDirectory() as tmp:
        scorer_dir = scorer.save(Path(tmp) / "scorer")
        progress("logging and registering the model")
        return mlflow.pyfunc.log_model(
            name="model", python_model=CrisisRiskPyfunc(), artifacts={"scorer": str(scorer_dir)},
            signature=signature(data.names, scorer.output_names), pip_requirements=requirements(),
            registered_model_name=m.risk_model_name if register else None)


def _register(settings: Settings, data: _Examples, p_val: np.ndarray, info, register: bool) -> tuple[str, str, bool]:
    """Move the champion alias only if the new model beats it on ``models.selection_metric``,
    both scored on the same validation readings. Returns (version, decision, promoted)."""
    import mlflow

    from vitalwatch.models import registry

    metric = settings.models.selection_metric
    new_value = _selection_value(metric, data.val_pdf, p_val, data.horizons)
    if not register:
        return "", "not registered", False
    version = str(info.registered_model_version)
    champ = _champion_value(settings, metric, data.val_pdf, data.x_val, data.horizons)
    d = registry.decide_and_alias(settings, settings.models.risk_model_name, version, metric, new_value, champ)
    decision, promoted = d.explain(), d.promoted
    mlflow.set_tags({"registered_version": version, "promoted": str(promoted).lower(), "decision": decision})
    return version, decision, promoted


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
    """The champion's ``metric`` on the same validation readings: None if there is none (or it
    predicts other horizons), -inf if its seal is refused (any sealed model is better)."""
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
    from vitalwatch.bench.report import markdown_table as write

    cols = ["model", "horizon_h", "subset", *[c for c in METRIC_COLUMNS if c in table]]
    return write(cols, ([str(r["model"]), f"{r['horizon_h']} h", r["subset"].replace("_", " "),
                         *("—" if pd.isna(r[c]) else f"{r[c]:.3f}" for c in cols[3:])]
                        for r in table[cols].to_dict("records")))
