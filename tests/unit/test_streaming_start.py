"""How every foreachBatch query is started (lib/vitalwatch/pipeline/triggers.py): the Delta
idempotency id follows the checkpoint, and the batch's jobs run in the stage's FAIR pool."""

from __future__ import annotations

import shutil

from pyspark.sql import SparkSession

from vitalwatch.config import Settings
from vitalwatch.pipeline.triggers import POOL_PROPERTY, in_pool, pool_for, start_foreach_batch


def _copy_query(spark: SparkSession, src: str, dst: str, checkpoint: str, seen: list) -> None:
    def write(batch, batch_id, app_id) -> None:
        seen.append((app_id, batch.sparkSession.sparkContext.getLocalProperty(POOL_PROPERTY)))
        (batch.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", batch_id)
         .save(dst))

    stream = spark.readStream.format("delta").load(src)
    sc = spark.sparkContext
    before = sc.getLocalProperty(POOL_PROPERTY)
    with in_pool(sc, "alerts"):
        q = start_foreach_batch(stream, Settings(), query_name="copy", checkpoint=checkpoint, write=write,
                                available_now=True)
    assert sc.getLocalProperty(POOL_PROPERTY) == before, "the caller's pool is restored"
    q.awaitTermination()
    assert q.exception() is None


def test_a_new_checkpoint_is_a_new_writer_and_a_restart_is_the_same(spark: SparkSession, tmp_path) -> None:
    src, dst, chk = str(tmp_path / "src"), str(tmp_path / "dst"), str(tmp_path / "chk")
    spark.range(3).write.format("delta").save(src)
    seen: list = []
    _copy_query(spark, src, dst, chk, seen)
    spark.range(3, 5).write.format("delta").mode("append").save(src)
    _copy_query(spark, src, dst, chk, seen)  # restart: same checkpoint, same writer
    assert spark.read.format("delta").load(dst).count() == 5
    assert seen[0][0] == seen[1][0]
    # a rebuild from a fresh checkpoint starts at batch 0 again: with a fixed txnAppId Delta
    # would take its batches for ones already written and silently drop them
    shutil.rmtree(chk)
    _copy_query(spark, src, dst, chk, seen)
    assert spark.read.format("delta").load(dst).count() == 10
    assert seen[2][0] != seen[0][0]
    assert {pool for _, pool in seen} == {"alerts"}, "foreachBatch jobs run in the query's pool"


def test_the_scoring_stage_has_its_own_pool_and_the_others_share_one(lake_settings: Settings) -> None:
    assert pool_for(lake_settings, "gold") == "alerts"
    assert {pool_for(lake_settings, st) for st in ("bronze", "silver", "serve_scores", "es_vitals")} == {"lake"}
    s = lake_settings.with_updates(streaming={"scheduler_pools": {"silver": "alerts"}})
    assert pool_for(s, "silver") == "alerts" and pool_for(s, "gold") == "alerts", "the others keep their own pool"
    s = lake_settings.with_updates(streaming={"scheduler_pools": {"gold": "lake"}})
    assert pool_for(s, "gold") == "lake", "only by naming it does a profile move the alert path"


def test_the_session_uses_the_fair_pools_file(spark: SparkSession) -> None:
    import xml.etree.ElementTree as ET

    conf = spark.sparkContext.getConf()
    assert conf.get("spark.scheduler.mode") == "FAIR"
    pools = {p.get("name") for p in ET.parse(conf.get("spark.scheduler.allocation.file")).getroot()}
    from vitalwatch.pipeline import STAGES

    assert {pool_for(Settings(), st) for st in STAGES} | {"lake"} <= pools


def test_available_now_waits_only_for_the_stages_a_stage_reads() -> None:
    from vitalwatch.pipeline import STAGES
    from vitalwatch.pipeline.stages import stage_inputs

    kafka_fed = stage_inputs(Settings())
    assert set(kafka_fed) == set(STAGES)
    for stage, inputs in kafka_fed.items():  # an input always comes earlier: no cycle, a valid order
        assert all(STAGES.index(i) < STAGES.index(stage) for i in inputs), stage
    assert kafka_fed["gold"] == () and kafka_fed["es_vitals"] == ("silver",)
    lake_fed = stage_inputs(Settings().with_updates(gold={"source": "silver"}))
    assert lake_fed["gold"] == ("silver",)


def test_a_scoring_checkpoint_is_resumed_only_with_its_own_state_layout(spark: SparkSession, tmp_path) -> None:
    import json

    import pytest

    from vitalwatch.pipeline.checkpoints import LAYOUT_FILE
    from vitalwatch.pipeline.gold.checkpoint import STATE_VERSION, check_state_layout

    s8 = Settings().with_updates(gold={"state_buckets": 8})
    s16 = Settings().with_updates(gold={"state_buckets": 16})
    chk = tmp_path / "gold"
    check_state_layout(spark, str(chk), s8)  # a new checkpoint records its layout
    layout = {"state_buckets": 8, "state_version": STATE_VERSION}
    assert json.loads((chk / LAYOUT_FILE).read_text()) == layout
    check_state_layout(spark, str(chk), s8)  # a restart with the same count resumes
    with pytest.raises(ValueError, match=r"state_buckets.: 8.*state_buckets.: 16"):
        check_state_layout(spark, str(chk), s16)
    assert json.loads((chk / LAYOUT_FILE).read_text()) == layout, "a refused start changes nothing"

    old = tmp_path / "v1"  # written by the state version before int64 times and versioned rows
    old.mkdir()
    (old / LAYOUT_FILE).write_text('{"state_buckets": 8}')
    with pytest.raises(ValueError, match="new checkpoint"):
        check_state_layout(spark, str(old), s8)

    legacy = tmp_path / "legacy"  # written before the record existed: 64 buckets, version 1
    (legacy / "offsets").mkdir(parents=True)
    with pytest.raises(ValueError, match="64"):
        check_state_layout(spark, str(legacy), Settings().with_updates(gold={"state_buckets": 64}))
    assert not (legacy / LAYOUT_FILE).exists()


def test_a_silver_checkpoint_from_before_first_wins_is_refused(spark: SparkSession, tmp_path) -> None:
    import pytest

    from vitalwatch.pipeline.checkpoints import LAYOUT_FILE, check_layout
    from vitalwatch.pipeline.silver import DEDUPE_LAYOUT

    legacy = tmp_path / "silver"
    (legacy / "offsets").mkdir(parents=True)
    with pytest.raises(ValueError, match="first_wins"):
        check_layout(spark, str(legacy), DEDUPE_LAYOUT, {}, "start anew")
    fresh = tmp_path / "fresh"
    check_layout(spark, str(fresh), DEDUPE_LAYOUT, {}, "start anew")
    assert (fresh / LAYOUT_FILE).exists()
