"""MLflow: where runs and models live, champion selection, and loading by alias.

Local default: a SQLite tracking + registry store and a file artifact root under
``models.mlflow_dir`` — no server. On a cluster ``models.tracking_uri`` points at the MLflow
server. Models are only ever loaded through the registry alias (``champion`` by default),
never from a loose file, only when its files match the checksum recorded when it was registered
(:mod:`vitalwatch.models.integrity`), and the loader returns the name and version that every
score stores."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vitalwatch.config import Settings

log = logging.getLogger(__name__)


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
        if self.champion_value == float("-inf"):
            return f"version {self.version} replaces champion version {self.champion_version}, refused by its checksum"
        verdict = "beats" if self.promoted else "does not beat"
        return (f"version {self.version} ({self.metric} {self.new_value:.4f}) {verdict} champion "
                f"version {self.champion_version} ({self.champion_value:.4f})")


def decide_and_alias(settings: Settings, model_name: str, version: str, metric: str,
                     new_value: float, champion_value: float | None) -> Decision:
    """Seal the new version (:func:`~vitalwatch.models.integrity.seal`), tag it as challenger;
    move the champion alias only if it is strictly better on ``metric`` than the current
    champion scored on the same data. Alias moves are logged (:mod:`vitalwatch.models.integrity`)."""
    from vitalwatch.models.integrity import move_alias, seal

    c = client(settings)
    current = champion_version(settings, model_name)
    promoted = current is None or (champion_value is not None and new_value > champion_value)
    seal(settings, model_name, version)
    c.set_model_version_tag(model_name, version, metric, f"{new_value:.6f}")
    c.set_model_version_tag(model_name, version, "promoted", str(promoted).lower())
    d = Decision(version, promoted, metric, new_value, current, champion_value)
    move_alias(settings, model_name, settings.models.challenger_alias, version, "trained")
    if promoted:
        move_alias(settings, model_name, settings.models.champion_alias, version, d.explain())
    return d


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
    """Resolve ``models:/<risk_model_name>@<alias>``, check its files against the checksum
    recorded at registration (:class:`~vitalwatch.models.integrity.ModelIntegrityError` if they
    differ) and load its scorer."""
    import tempfile

    from vitalwatch.models.integrity import unlogged_alias, verified_download
    from vitalwatch.models.scorer import RiskScorer

    alias = alias or settings.models.champion_alias
    name = settings.models.risk_model_name
    mv = client(settings).get_model_version_by_alias(name, alias)
    if unlogged_alias(settings, name, alias, str(mv.version)):
        log.warning("model %s@%s points at version %s, but no logged move put it there (moved outside "
                    "vitalwatch?): loading it, since its files match its checksum", name, alias, mv.version)
    with tempfile.TemporaryDirectory(prefix="vitalwatch-model-") as tmp:
        local = verified_download(settings, name, str(mv.version), Path(tmp))
        scorer = RiskScorer.load(local / "artifacts" / "scorer")  # read whole: the directory goes
    return LoadedRiskModel(name, str(mv.version), alias, mv.run_id, scorer)
