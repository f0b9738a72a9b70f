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

from tests.helpers import ROOT, TEST_STAGE_TRIGGERS
from vitalwatch.config import Settings

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # before pyspark.pandas is imported


def _sigterm_is_an_interrupt(signum: int, _frame) -> None:
    """SIGTERM (``timeout``, a CI runner giving up) ends the run as Ctrl-C does, so the session
    fixtures' teardown runs and stops the local servers: killed outright, they would outlive the
    run and hold gigabytes the next run needs."""
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _sigterm_is_an_interrupt)

# Fixtures that start a SparkSession / servers; a test using one (directly or through another
# fixture: ``item.fixturenames`` is the closure) is marked ``spark`` / ``servers``.
SPARK_FIXTURES = frozenset({"spark"})
SERVER_FIXTURES = frozenset({"infra", "endpoints", "standalone"})  # standalone: tests/integration/test_cluster.py
# Tests that start them without a fixture (by node id, without parameters).
STARTS_BY_ITSELF = {
    "tests/models/test_notebooks.py::test_runs_top_to_bottom": "spark",  # the notebooks' kernel
    "tests/integration/test_mongo_security.py::test_a_data_dir_from_a_plain_text_run_restarts_with_tls": "servers",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by what it starts, so ``-m "not spark and not servers"`` runs the pure ones."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        by_itself = STARTS_BY_ITSELF.get(item.nodeid.split("[")[0])
        if names & SPARK_FIXTURES or by_itself == "spark":
            item.add_marker(pytest.mark.spark)
        if names & SERVER_FIXTURES or by_itself == "servers":
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    # Under the project (not /tmp's private dirs) so the unprivileged Elasticsearch user can enter.
    d = ROOT / ".work" / f"test-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    yield d
    if not os.environ.get("VITALWATCH_KEEP_TEST_WORK"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def base_settings(work_dir: Path) -> Settings:
    return Settings().with_updates(
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
    return base_settings.with_updates(lake={"root": str(d / "lake"), "checkpoint_root": str(d / "chk")})


@pytest.fixture(scope="session")
def trained(spark, base_settings: Settings, tmp_path_factory) -> Settings:
    """A champion crisis-risk model in a private MLflow registry (small, synthetic)."""
    from vitalwatch.models.train_risk import load_source, train_risk

    m = base_settings.models
    s = base_settings.with_updates(models={
        "mlflow_dir": str(tmp_path_factory.mktemp("mlflow")),
        "xgboost": {**m.xgboost, "n_estimators": 40, "max_depth": 4},
        "random_forest": {"enabled": False}, "synthetic": {"hours": 24}})
    train_risk(spark, s, load_source(spark, s, "synthetic", sequences=300), progress=lambda _m: None)
    return s
