"""The stage registry (lib/vitalwatch/pipeline/stages.py): what it derives is what the
pipeline ran with before the registry existed, for every profile."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vitalwatch.config import Settings

# Each stage's trigger as the base, local and cluster profiles gave it before the registry
# (computed from streaming.stage_triggers / trigger_interval at the time).
BASE = {"bronze": "15 seconds", "silver": "15 seconds", "gold": "500 milliseconds", "gold_lake": "10 seconds",
        "model_outcomes": "1 minute", "serve_scores": "15 seconds", "es_scores": "15 seconds",
        "serve_alerts": "5 seconds", "es_alerts": "5 seconds", "es_vitals": "30 seconds"}
LOCAL = {"bronze": "60 seconds", "silver": "60 seconds", "gold": "500 milliseconds", "gold_lake": "30 seconds",
         "model_outcomes": "2 minutes", "serve_scores": "30 seconds", "es_scores": "30 seconds",
         "serve_alerts": "30 seconds", "es_alerts": "30 seconds", "es_vitals": "60 seconds"}
BEFORE = {"base": BASE, "local": LOCAL, "cluster": BASE}


@pytest.mark.parametrize("profile", sorted(BEFORE))
def test_each_profile_keeps_its_stage_triggers_and_pools(profile: str, monkeypatch) -> None:
    from vitalwatch.pipeline import STAGES
    from vitalwatch.pipeline.triggers import pool_for, triggers

    monkeypatch.setenv("VITALWATCH_PROFILE", profile)
    s = Settings()
    assert triggers(s) == BEFORE[profile]
    assert {st: pool_for(s, st) for st in STAGES} == {st: "alerts" if st == "gold" else "lake" for st in STAGES}


def test_the_stage_defaults_apply_where_a_profile_names_no_trigger_or_pool() -> None:
    from vitalwatch.pipeline.triggers import pool_for, trigger_for, triggers

    s = Settings().with_updates(streaming={"stage_triggers": {"silver": "7 seconds"}, "scheduler_pools": {},
                                           "trigger_interval": "3 seconds"})
    assert triggers(s) == {**BASE, "silver": "7 seconds"}  # the registry's defaults are the old base.yaml's
    assert trigger_for(s, "a_query_of_a_test") == "3 seconds"
    assert pool_for(s, "gold") == "alerts" and pool_for(s, "bronze") == "lake"


def test_stages_apps_and_start_functions_come_from_one_registry() -> None:
    from vitalwatch.pipeline import APPS, STAGES
    from vitalwatch.pipeline.stages import REGISTRY, serving_job_stages, stage

    assert tuple(s.name for s in REGISTRY) == STAGES
    assert list(APPS) == ["alerts", "lake", "serving"] and APPS["alerts"] == ("gold",)
    assert sorted(st for a in APPS.values() for st in a) == sorted(STAGES)
    for s in REGISTRY:
        assert callable(s.start_function()), s.name
        assert s.start_function().__kwdefaults__["query_name"] == s.query, s.name
    assert set(serving_job_stages()) == {"gold_lake", *APPS["serving"]}
    with pytest.raises(ValueError, match="unknown stage"):
        stage("platinum")


def test_the_dashboard_and_api_readers_do_not_import_spark() -> None:
    """Table names come from vitalwatch.pipeline.lake, and the dashboard's MongoDB writes from
    vitalwatch.sinks.mongo: neither loads PySpark (the Sinks writer lives in sinks.writers)."""
    code = ("import sys; import vitalwatch.dashboard.data, vitalwatch.api.reads, vitalwatch.pipeline.lake, "
            "vitalwatch.sinks.mongo; "
            "assert 'pyspark.sql' not in sys.modules, sorted(m for m in sys.modules if m.startswith('pyspark'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
