"""The ``model_outcomes`` stage on a replayed timeline with known labels, over real Delta tables:
outcomes are recorded once known, exactly once across replays and a rebuilt checkpoint, a late
crisis reading corrects an outcome already recorded as 0, and each day gets its monitoring rows
(quality per horizon, the alert path, drift against the champion's training reference)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from tests.helpers import ROOT
from vitalwatch.config import Settings
from vitalwatch.models.monitoring import outcome_rows
from vitalwatch.pipeline.gold import ensure_gold
from vitalwatch.pipeline.lake import GOLD_SCORES, read_table
from vitalwatch.pipeline.model_outcomes import (
    MODEL_MONITORING,
    MODEL_OUTCOMES,
    pending_days,
    start_model_outcomes,
)

T0 = pd.Timestamp("2026-03-01T00:00")
HS = [1, 6, 24]
KEY = ["patient_id", "observation_id", "horizon_h"]


def reading(pid: str, hour: float, *, crisis: bool = False, risk: float = 0.1, status: str = "scored",
            alert: str | None = None) -> dict:
    rng = np.random.default_rng(abs(hash((pid, hour))) % 2**32)
    feats = np.column_stack([rng.normal(135, 15, 30), rng.normal(80, 10, 30), rng.normal(85, 10, 30),
                             np.full(30, 60.0)]).ravel()
    t = T0 + pd.Timedelta(hours=hour)
    return {"patient_id": pid, "observation_id": f"{pid}-{hour:g}", "effective_time": t, "effective_date": t.date(),
            "scored_time": t, "silver_time": t, "kafka_timestamp": t,
            "score_status": status, "crisis_now": crisis, "model_name": "vitalwatch-crisis-risk", "model_version": "1",
            "alert_kind": "raised" if alert else None, "alert_level": alert, "level": alert or "LOW",
            "features": feats.tolist(), **{f"risk_{h}h": risk for h in HS}}


def timeline() -> tuple[list[dict], list[dict]]:
    """Two arrivals. ``a`` has a crisis at 12 h (warned at 9 h) and one at 8.5 h that arrives
    late, in the second; ``b`` none; ``c``'s readings stop after 2 h (censored, never 0)."""
    first, second = [], []
    for h in range(0, 21):
        first.append(reading("a", h, crisis=h == 12, risk=0.8 if 6 <= h < 12 else 0.1,
                             alert="HIGH" if h == 9 else ("CRITICAL" if h == 12 else None)))
        first.append(reading("b", h))
    first += [reading("c", 0), reading("c", 2)]
    second.append(reading("a", 8.5, crisis=True, status="late", risk=0.8))
    for h in range(21, 34):
        second += [reading("a", h), reading("b", h, risk=0.3)]
    return first, second


def append(spark: SparkSession, s: Settings, rows: list[dict]) -> None:
    """Rows into ``gold/risk_scores`` as the gold_lake stage commits them (its schema; the
    columns this test does not set are null)."""
    path = s.table_path(*GOLD_SCORES)
    schema = spark.read.format("delta").load(path).schema
    given = pd.DataFrame(rows)
    df: DataFrame = spark.createDataFrame(given).withColumn(  # the table's vectors hold no nulls (NaN is missing)
        "features", F.transform("features", lambda x: F.coalesce(x, F.lit(float("nan")))))
    cols = [(F.col(f.name) if f.name in given else F.lit(None)).cast(f.dataType).alias(f.name) for f in schema.fields]
    df.select(*cols).write.format("delta").mode("append").save(path)


def run_stage(spark: SparkSession, s: Settings) -> None:
    q = start_model_outcomes(spark, s, available_now=True)
    q.awaitTermination()
    assert q.exception() is None


def recorded(spark: SparkSession, s: Settings) -> pd.DataFrame:
    return read_table(spark, s, MODEL_OUTCOMES).toPandas()


def as_expected(got: pd.DataFrame, rows: list[dict]) -> None:
    want = outcome_rows(pd.DataFrame(rows), HS)
    assert len(got) == len(got.drop_duplicates(KEY)), "each (reading, horizon) once"
    g, w = got.set_index(KEY).sort_index(), want.set_index(KEY).sort_index()
    assert list(g.index) == list(w.index)
    np.testing.assert_array_equal(g["outcome"].to_numpy(), w["outcome"].to_numpy())
    np.testing.assert_allclose(g["risk"].to_numpy(float), w["risk"].to_numpy(float))
    assert (pd.to_datetime(g["outcome_known_time"]) == pd.to_datetime(w["outcome_known_time"])).all()


def test_outcomes_join_a_replayed_timeline_exactly_once_and_feed_daily_monitoring(
        spark: SparkSession, trained: Settings, tmp_path) -> None:
    d = ROOT / ".work" / f"test-{os.getpid()}" / "lakes" / tmp_path.name
    s = trained.with_updates(lake={"root": str(d / "lake"), "checkpoint_root": str(d / "chk")},
                     models={"monitoring": {"min_readings": 10}})
    ensure_gold(spark, s)
    first, second = timeline()

    append(spark, s, first)
    run_stage(spark, s)
    got = recorded(spark, s)
    as_expected(got, first)
    by = got.set_index(KEY)
    assert by.loc[("a", "a-9", 6), "outcome"] == 1 and by.loc[("a", "a-5", 6), "outcome"] == 0
    assert by.loc[("a", "a-8", 1), "outcome"] == 0          # before the late crisis at 8.5 h arrives
    assert ("c", "c-2", 1) not in by.index                  # c's readings stopped: unknown, not 0
    assert ("b", "b-5", 24) not in by.index                 # the horizon has not passed

    append(spark, s, second)  # the late crisis, and a day later
    run_stage(spark, s)
    got = recorded(spark, s)
    as_expected(got, first + second)
    by = got.set_index(KEY)
    assert by.loc[("a", "a-8", 1), "outcome"] == 1          # corrected by the late crisis ...
    assert by.loc[("a", "a-8", 1), "outcome_known_time"] == T0 + pd.Timedelta(hours=8.5)
    assert by.loc[("b", "b-5", 24), "outcome"] == 0         # ... and the next day settled 24 h ones

    third = [reading("b", 34)]  # one reading: it settles b-9's 24 h outcome, a day before b's previous reading
    append(spark, s, third)
    run_stage(spark, s)
    assert ("b", "b-9", 24) in recorded(spark, s).set_index(KEY).index
    as_expected(recorded(spark, s), first + second + third)

    shutil.rmtree(s.checkpoint_path("model_outcomes"))     # a rebuilt checkpoint reads everything again
    run_stage(spark, s)
    as_expected(recorded(spark, s), first + second + third)

    mon = read_table(spark, s, MODEL_MONITORING).toPandas()
    assert set(mon["day"]) == {T0.date(), (T0 + pd.Timedelta(days=1)).date()}
    assert len(mon) == len(mon.drop_duplicates(["day", "role", "model_version", "horizon_h"]))
    assert set(mon["role"]) == {"champion"}                 # no shadow scored on this timeline
    day1 = mon[mon["day"] == T0.date()].set_index("horizon_h")
    want = outcome_rows(pd.DataFrame(first + second + third), HS)
    want1 = want[want["effective_date"] == T0.date()]
    for h in HS:
        w = want1[want1["horizon_h"] == h]
        assert day1.loc[h, "readings"] == len(w) and day1.loc[h, "positives"] == w["outcome"].sum()
        assert sum(day1.loc[h, "decile_count"]) == len(w)
        assert day1.loc[h, "auroc"] == pytest.approx(roc_auc_score(w["outcome"], w["risk"]))
    assert day1.loc[6, "auroc"] > 0.75                      # the high risks came before the crises
    assert day1.loc[6, "onsets"] == 1 and day1.loc[6, "warned_high"] == 0  # the 8.5 h onset, unwarned
    # drift against the champion's training reference: every slot group, on the day's scored vectors
    assert day1.loc[6, "reference_version"] == "1"
    assert len(day1.loc[6, "psi"]) == 12 and day1.loc[6, "drift_readings"] == 24 * 2 + 2  # scored on day 1 (not the late one)
    assert day1.loc[6, "psi_group"] == max(dict(day1.loc[6, "psi"]).items(), key=lambda kv: kv[1])[0]
    assert any(b.startswith("drift: dt_") for b in day1.loc[6, "breaches"])  # every interval 60 min: unlike training

    # a restart remembers the days whose outcomes arrived after their last monitoring row
    from delta.tables import DeltaTable

    assert pending_days(spark, s) == set()
    DeltaTable.forPath(spark, s.table_path(*MODEL_OUTCOMES)).update(
        F.col("effective_date") == F.lit(T0.date()), {"recorded_time": F.current_timestamp()})
    assert pending_days(spark, s) == {T0.date()}
