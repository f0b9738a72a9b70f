"""MLflow: where runs and models live, champion selection, and loading by alias.

Local default: a SQLite tracking + registry store and a file artifact root under
``models.mlflow_dir`` — no server. On a cluster ``models.tracking_uri`` points at the MLflow
server. Models are only ever loaded through the registry alias (``champion`` by default),
never from a loose file, and the loader returns the name and version that every score stores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitalwatch.config import Settings


def tracking_uri(settings: Settings) -> str:
    if settings.models.tracking_uri:
        return settings.models.tracking_uri
    d = settings.path(settings.models.mlflow_dir)
    d.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{d / 'mlflow.db'}"


def configure(settings: Settings, experiment: str | None = None) -> str:
    """Point MLflow at the configured store; create the experiment; return its id."""
    import mlflow

    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(settings.models.registry_uri or uri)
    name = experiment or settings.models.experiment
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if not settings.models.tracking_uri:
        location = (settings.path(settings.models.mlflow_dir) / "artifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def client(settings: Settings):
    from mlflow import MlflowClient

    configure(settings)
    return MlflowClient()


def champion_version(settings: Settings, model_name: str) -> str | None:
    """The version the champion alias points at, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client(settings).get_model_version_by_alias(model_name, settings.models.champion_alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Decision:
    version: str
    promoted: bool
    metric: str
    new_value: float
    champion_version: str | None
    champion_value: float | None

    def explain(self) -> str:
        if self.champion_version is None:
            return f"version {self.version} is the first model: champion ({self.metric} {self.new_value:.4f})"
        verdict = "beats" if self.promoted else "does not beat"
        return (f"version {self.version} ({self.metric} {self.new_value:.4f}) {verdict} champion "
                f"version {self.champion_version} ({self.champion_value:.4f})")


def decide_and_alias(settings: Settings, model_name: str, version: str, metric: str,
                     new_value: float, champion_value: float | None) -> Decision:
    """Tag the new version as challenger; move the champion alias only if it is strictly
    better on ``metric`` than the current champion scored on the same data."""
    c = client(settings)
    current = champion_version(settings, model_name)
    promoted = current is None or (champion_value is not None and new_value > champion_value)
    c.set_registered_model_alias(model_name, settings.models.challenger_alias, version)
    c.set_model_version_tag(model_name, version, metric, f"{new_value:.6f}")
    if promoted:
        c.set_registered_model_alias(model_name, settings.models.champion_alias, version)
    c.set_model_version_tag(model_name, version, "promoted", str(promoted).lower())
    return Decision(version, promoted, metric, new_value, current, champion_value)


@dataclass(frozen=True)
class LoadedRiskModel:
    """What scoring uses: the scorer plus the registry identity stored on every score."""

    name: str
    version: str
    alias: str
    run_id: str
    scorer: object  # RiskScorer

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


def load_risk_model(settings: Settings, alias: str | None = None) -> LoadedRiskModel:
    """Resolve ``models:/<risk_model_name>@<alias>`` and load its scorer."""
    import mlflow

    from vitalwatch.models.scorer import RiskScorer

    alias = alias or settings.models.champion_alias
    name = settings.models.risk_model_name
    mv = client(settings).get_model_version_by_alias(name, alias)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{mv.version}"))
    return LoadedRiskModel(name, str(mv.version), alias, mv.run_id, RiskScorer.load(local / "artifacts" / "scorer"))
