"""The stage registry: every streaming stage described once.

Everything that used to list the stages is derived from :data:`REGISTRY`: the dependency order
(:data:`vitalwatch.pipeline.STAGES`), the applications (:data:`vitalwatch.pipeline.APPS`) and
their CPU priority (:data:`vitalwatch.pipeline.apps.NICE`), the runner's start dispatch and
available-now ordering (:mod:`vitalwatch.pipeline.runner`), the FAIR scheduler pools and
trigger intervals (:mod:`vitalwatch.pipeline.triggers`) and the serving job (``jobs/serve.py``).
Adding a stage means adding one :class:`Stage` here (plus its module).

This module imports no Spark: the start functions are named, not imported, so the dashboard
and the API can read the registry without loading PySpark."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from vitalwatch.config import Settings
    from vitalwatch.infra.endpoints import Endpoints

DEFAULT_POOL = "lake"  # the FAIR pool of every stage that names none (conf/fairscheduler.xml)


@dataclass(frozen=True)
class Stage:
    """One streaming stage: one query in one application."""

    name: str                 # the stage (``--stages``, health, ``streaming.stage_triggers`` keys)
    query: str                # its query's name (and checkpoint: the gold query adds ``gold.source``)
    inputs: tuple[str, ...]   # the stages whose output it reads (available-now waits for them)
    start: str                # "module:function" starting its query; named so this module stays Spark-free
    app: str                  # the application (process) it runs in
    pool: str = DEFAULT_POOL  # FAIR scheduler pool
    trigger: str | None = None  # default trigger interval (else ``streaming.trigger_interval``)
    endpoints: bool = False   # the start function takes the resolved endpoints
    lake_fed_only: bool = False  # reads ``inputs`` only when ``gold.source`` is ``silver`` (else Kafka)

    def reads(self, settings: Settings) -> tuple[str, ...]:
        """The stages this one waits for under ``settings``."""
        if self.lake_fed_only and settings.gold.source != "silver":
            return ()
        return self.inputs

    def start_function(self) -> Callable[..., StreamingQuery]:
        module, function = self.start.split(":")
        return getattr(importlib.import_module(module), function)

    def start_query(self, spark: SparkSession, settings: Settings, endpoints: Endpoints,
                    available_now: bool) -> StreamingQuery:
        kwargs: dict[str, Any] = {"available_now": available_now, "query_name": self.query}
        if self.endpoints:
            kwargs["endpoints"] = endpoints
        return self.start_function()(spark, settings, **kwargs)


_P = "vitalwatch.pipeline"
# In dependency order (an input always comes first). Default triggers: the alert path triggers as
# soon as it can; the copies people read need not be refreshed every few seconds, and each batch
# they skip is CPU the scoring query gets (profiles override them: ``streaming.stage_triggers``).
# Pools: the scoring query's tasks go first, so alerts do not queue behind the lake's batches.
REGISTRY: tuple[Stage, ...] = (
    Stage("bronze", "bronze_observations", (), f"{_P}.bronze:start_bronze", "lake",
          trigger="15 seconds", endpoints=True),
    Stage("silver", "silver_vital_signs", ("bronze",), f"{_P}.silver:start_silver", "lake", trigger="15 seconds"),
    Stage("gold", "gold_risk_scores", ("silver",), f"{_P}.gold.query:start_gold", "alerts", pool="alerts",
          trigger="500 milliseconds", endpoints=True, lake_fed_only=True),
    Stage("gold_lake", "gold_lake", ("gold",), f"{_P}.gold_lake:start_gold_lake", "lake",
          trigger="10 seconds", endpoints=True),
    Stage("model_outcomes", "model_outcomes", ("gold_lake",), f"{_P}.model_outcomes:start_model_outcomes", "lake",
          trigger="1 minute"),
    Stage("serve_scores", "serve_scores", ("gold_lake",), f"{_P}.serving:start_serve_scores", "serving",
          trigger="15 seconds"),
    Stage("es_scores", "es_scores", ("gold_lake",), f"{_P}.serving:start_es_scores", "serving", trigger="15 seconds"),
    Stage("serve_alerts", "serve_alerts", ("gold_lake",), f"{_P}.serving:start_serve_alerts", "serving",
          trigger="5 seconds"),
    Stage("es_alerts", "es_alerts", ("gold_lake",), f"{_P}.serving:start_es_alerts", "serving", trigger="5 seconds"),
    Stage("es_vitals", "es_vitals", ("silver",), f"{_P}.serving:start_vitals_index", "serving", trigger="30 seconds"),
)
BY_NAME = {s.name: s for s in REGISTRY}
# The applications, the alert app first (``vitalwatch run`` starts it before the others).
APP_ORDER = ("alerts", "lake", "serving")
ALERT_APP = APP_ORDER[0]  # runs the alert path: started first, and never at a lower CPU priority


def stage(name: str) -> Stage:
    """The stage called ``name``; a ValueError naming the stages if there is none."""
    if name not in BY_NAME:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(BY_NAME)}")
    return BY_NAME[name]


def stage_names() -> tuple[str, ...]:
    return tuple(s.name for s in REGISTRY)


def apps() -> dict[str, tuple[str, ...]]:
    """Application → its stages, in dependency order."""
    return {a: tuple(s.name for s in REGISTRY if s.app == a) for a in APP_ORDER}


def stage_inputs(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The stages whose output each stage reads (gold reads Kafka itself unless
    ``gold.source`` is ``silver``)."""
    return {s.name: s.reads(settings) for s in REGISTRY}


def serving_job_stages() -> tuple[str, ...]:
    """``jobs/serve.py``: everything that fills the gold tables and the stores from the gold
    topics, off the alert path — ``gold_lake`` and the serving application."""
    return ("gold_lake", *apps()["serving"])
