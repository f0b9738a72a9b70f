"""Shared fixtures: one local SparkSession per test run (connectors from Maven Central, Delta
configured, exactly as jobs build it) and the real local servers, started by the same code
as ``vitalwatch infra up`` in a private work directory and stopped at the end.

Nothing here skips: a missing server, jar or package makes the tests that need it fail."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from vitalwatch.config import Settings

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # before pyspark.pandas is imported


def _sigterm_is_an_interrupt(signum: int, _frame) -> None:
    """SIGTERM (``timeout``, a CI runner giving up) ends the run as Ctrl-C does, so the session
    fixtures' teardown runs and stops the local servers: killed outright, they would outlive the
    run and hold gigabytes the next run needs."""
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _sigterm_is_an_interrupt)
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
ARTIFACTS = ROOT / "test-artifacts"


def with_updates(settings: Settings, **sections: dict) -> Settings:
    """A copy of settings with some fields of some sections replaced."""
    upd = {name: getattr(settings, name).model_copy(update=fields) for name, fields in sections.items()}
    return settings.model_copy(update=upd)


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    # Under the project (not /tmp's private dirs) so the unprivileged Elasticsearch user can enter.
    d = ROOT / ".work" / f"test-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    yield d
    if not os.environ.get("VITALWATCH_KEEP_TEST_WORK"):
        shutil.rmtree(d, ignore_errors=True)


# The lake and serving triggers the integration tests run with: conf/local.yaml's are slower,
# tuned for the main command's latency on 2 cores; these keep the tests' waits short.
TEST_STAGE_TRIGGERS = {"gold": "500 milliseconds", "bronze": "15 seconds", "silver": "15 seconds",
                       "gold_lake": "10 seconds", "serve_scores": "15 seconds", "es_scores": "15 seconds",
                       "serve_alerts": "5 seconds", "es_alerts": "5 seconds", "es_vitals": "30 seconds",
                       "model_outcomes": "30 seconds"}


@pytest.fixture(scope="session")
def base_settings(work_dir: Path) -> Settings:
    s = Settings()
    return with_updates(
        s,
        lake={"root": str(work_dir / "lake"), "checkpoint_root": str(work_dir / "checkpoints")},
        infra={"work_dir": str(work_dir / "infra")},
        spark={"master": "local[2]", "shuffle_partitions": 2},
        streaming={"trigger_interval": "1 second", "stage_triggers": TEST_STAGE_TRIGGERS},
    )


@pytest.fixture(scope="session")
def spark(base_settings: Settings):
    from vitalwatch.spark import build_session

    session = build_session(base_settings, app_name="vitalwatch-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def infra(base_settings: Settings) -> Iterator[dict]:
    """The three real servers; yields the state written by ``infra up``."""
    from vitalwatch.infra.manager import InfraManager

    mgr = InfraManager(base_settings)
    try:
        state = mgr.up()
    except BaseException:
        mgr.down()  # what did start; Spark is left running for the tests that need no server
        raise
    try:
        yield state
    finally:
        _stop_spark()  # before the broker goes: Spark's cached Kafka clients would keep calling it
        mgr.down()


def _stop_spark() -> None:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


@pytest.fixture(scope="session")
def endpoints(base_settings: Settings, infra: dict):
    from vitalwatch.infra.endpoints import resolve

    return resolve(base_settings, ("kafka", "mongo", "elasticsearch"))


@pytest.fixture
def lake_settings(base_settings: Settings, tmp_path: Path) -> Settings:
    """Settings with a lake and checkpoints of this test's own."""
    d = ROOT / ".work" / f"test-{os.getpid()}" / "lakes" / tmp_path.name
    return with_updates(base_settings, lake={"root": str(d / "lake"), "checkpoint_root": str(d / "chk")})


@pytest.fixture(scope="session")
def trained(spark, base_settings: Settings, tmp_path_factory) -> Settings:
    """A champion crisis-risk model in a private MLflow registry (small, synthetic)."""
    from vitalwatch.models.train_risk import load_source, train_risk

    m = base_settings.models
    s = with_updates(base_settings, models={
        "mlflow_dir": str(tmp_path_factory.mktemp("mlflow")),
        "xgboost": {**m.xgboost, "n_estimators": 40, "max_depth": 4},
        "random_forest": m.random_forest.model_copy(update={"enabled": False}),
        "synthetic": m.synthetic.model_copy(update={"hours": 24})})
    train_risk(spark, s, load_source(spark, s, "synthetic", sequences=300), progress=lambda _m: None)
    return s
