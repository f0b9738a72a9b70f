"""Clinical definitions and the risk model: training, registry, evaluation and monitoring."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator


class ClinicalConfig(BaseModel):
    """docs/requirements.md §4: what a crisis is and what a reading's features are. One place: features,
    labels, baselines, alerts and the dashboard all read these."""

    crisis_systolic: float = Field(180.0, description="A crisis event: systolic at or above this (mmHg, ACC/AHA 2017) ...")
    crisis_diastolic: float = Field(120.0, description="... or diastolic at or above this (mmHg).")
    history_readings: int = Field(30, ge=1, description="Past readings in a patient's feature vector.")
    other_vitals_window_minutes: float = Field(30.0, gt=0, description="A reading's heart rate, respiratory rate, SpO2 and temperature are the latest within this long before it.")
    horizons_hours: list[int] = Field([1, 6, 24], description="The model predicts a crisis within each of these horizons.")
    alert_horizon_hours: int = Field(6, description="The horizon whose risk the alert policy reads (alerts.profiles).")

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "alert_thresholds" in data:
            raise ValueError("clinical.alert_thresholds moved to alerts.profiles.<profile>.thresholds "
                             "(alerts.profile names the one in force); an override left here would be ignored")
        return data


class SplitConfig(BaseModel):
    """Shares of patients (never one patient in two sets) for training, validation and test."""

    train: float = Field(0.70, gt=0, lt=1, description="Share of patients the model is trained on.")
    validation: float = Field(0.15, gt=0, lt=1, description="Share of patients the champion is chosen and the alert policy tuned on.")
    test: float = Field(0.15, gt=0, lt=1, description="Share of patients held out for the reported results.")


class RandomForestConfig(BaseModel):
    """The random-forest baseline trained beside XGBoost."""

    enabled: bool = Field(True, description="Train the baseline at all.")
    num_trees: int = Field(60, ge=1, description="Trees in the forest.")
    max_depth: int = Field(10, ge=1, description="Depth of each tree.")


class SyntheticConfig(BaseModel):
    """Synthetic training sequences, when no recorded data is used."""

    sequences: int = Field(5000, ge=1, description="Simulated patient sequences.")
    hours: float = Field(48.0, gt=0, description="Hours per sequence.")
    cadence_minutes: float = Field(30.0, gt=0, description="Minutes between readings.")
    seed: int = Field(11, description="Random seed of the generator.")
    profile_mix: dict[str, float] = Field({"normotensive": 0.45, "hypertensive": 0.30, "crisis_prone": 0.25}, description="Share of sequences of each blood-pressure profile (richer in crises than the simulator's, to learn them).")


class EventEvaluationConfig(BaseModel):
    """Event-level evaluation of the whole alert path on validation and test patients
    (lib/vitalwatch/alerts/evaluation.py; results in docs/alert-policy.md)."""

    enabled: bool = Field(True, description="Run it after training.")
    window_h: float = Field(6.0, gt=0, description="An onset is a crisis with no crisis this long before; it is warned if an alert event came within this long before it.")
    lead_target_h: float = Field(2.0, gt=0, description="Also reported: the share of onsets warned at least this long ahead.")
    target_burden_ph: float = Field(0.05, gt=0, description="The target: at most this many alert events (MEDIUM or above) per patient-hour ...")
    target_warned: float = Field(0.80, gt=0, le=1, description="... with at least this share of crisis onsets warned.")
    sweep_factors: list[float] = Field([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0], description="The thresholds are multiplied by each of these for the trade-off plot.")
    profiles: list[str] = Field([], description="Alert profiles evaluated beside the one in force; empty: all of alerts.profiles.")


class MonitoringConfig(BaseModel):
    """Live monitoring on delayed outcomes (the ``model_outcomes`` stage,
    lib/vitalwatch/pipeline/model_outcomes.py): ``gold/model_outcomes`` and ``gold/model_monitoring``."""

    gap_hours: float = Field(48.0, gt=0, description="A new reading settles earlier outcomes back to this long before it; a patient resuming after a longer pause (readmission) leaves the earlier ones as they were.")
    refresh_minutes: float = Field(15.0, ge=0, description="A day's monitoring row is recomputed at most this often (0: every batch).")
    psi_bins: int = Field(10, ge=2, description="Quantile bins of the training reference per slot group, plus one for missing values.")
    reference_rows: int = Field(50_000, ge=100, description="Training readings sampled for the reference stored with the model.")
    min_readings: int = Field(200, ge=1, description="A day with fewer known outcomes is shown but never raises a system alert.")
    psi_bound: float = Field(0.25, gt=0, description="A slot group's PSI above this is a drift breach (a system alert on the health page).")
    ece_bound: float = Field(0.10, gt=0, description="A horizon's calibration error above this is a calibration breach (a system alert).")
    days_shown: int = Field(30, ge=1, description="Days of history on the Model page.")
    system_alert_days: int = Field(2, ge=1, description="The health page shows breaches of the table's newest this-many days.")


class ModelsConfig(BaseModel):
    """Model training, the MLflow registry and how the scoring stream loads the champion."""

    tracking_uri: str | None = Field(None, description="MLflow tracking URI; null: a local SQLite store under mlflow_dir (no server).")
    registry_uri: str | None = Field(None, description="MLflow registry URI; null: the same as tracking.")
    mlflow_dir: str = Field(".work/mlflow", description="The local MLflow store and artifacts.")
    experiment: str = Field("vitalwatch-crisis-risk", description="MLflow experiment of training runs.")
    risk_model_name: str = Field("vitalwatch-crisis-risk", description="Registered name of the crisis-risk model.")
    triage_model_name: str = Field("vitalwatch-triage", description="Registered name of the batch triage model.")
    champion_alias: str = Field("champion", description="The registry alias the scoring stream loads.")
    challenger_alias: str = Field("challenger", description="The alias a new model gets when it does not beat the champion.")
    reload_check_s: float = Field(60, gt=0, description="Scoring without a model (no champion, registry down, checksum refused): how often the alert app tries the champion again, restarting its scoring query once it loads.")
    selection_metric: str = Field("val_6h_auprc", description="The champion moves only when a new model beats it on this metric.")
    seed: int = Field(42, description="Random seed of the split and training.")
    split: SplitConfig = Field(SplitConfig(), description="Patients per set.")
    num_workers: int = Field(2, ge=1, description="xgboost.spark workers (Spark tasks).")
    train_driver_memory: str = Field("6g", description="Driver heap of `vitalwatch train`, which collects the validation and test vectors.")
    device: str = Field("cpu", pattern="^(cpu|cuda)$", description="Where XGBoost trains: cpu or cuda.")
    xgboost: dict[str, float | int | str] = Field(
        {"n_estimators": 400, "max_depth": 5, "learning_rate": 0.05, "subsample": 0.8, "colsample_bytree": 0.8,
         "min_child_weight": 5, "reg_lambda": 1.0, "tree_method": "hist"},
        description="XGBoost parameters, passed as given.")
    random_forest: RandomForestConfig = Field(RandomForestConfig(), description="The random-forest baseline.")
    ece_bins: int = Field(15, ge=2, description="Bins of the expected calibration error.")
    synthetic: SyntheticConfig = Field(SyntheticConfig(), description="Synthetic training sequences.")
    event_evaluation: EventEvaluationConfig = Field(EventEvaluationConfig(), description="Event-level evaluation of the alert path.")
    monitoring: MonitoringConfig = Field(MonitoringConfig(), description="Live monitoring on delayed outcomes.")
