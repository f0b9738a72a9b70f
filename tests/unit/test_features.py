"""The feature builder (docs/requirements.md §4) against hand-computed vectors and labels: fewer than 30
readings, a missing heart rate, out-of-order input, ties, the 30-minute window and the
30-reading cut — on Spark (the training path) and in pandas (the one implementation)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from vitalwatch.config import Settings
from vitalwatch.features.build import build_examples, silver_rows
from vitalwatch.features.vector import (
    ROW_COLUMNS,
    feature_matrix,
    feature_names,
    readings,
    training_examples,
)

NA = -999.0  # NaN placeholder: assertDataFrameEqual would call NaN equal to any number
T0 = datetime(2026, 3, 1, 9, 0)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def bp(pid, oid, minutes, sbp, dbp):
    return [(pid, oid, at(minutes), "systolic_bp", float(sbp)), (pid, oid, at(minutes), "diastolic_bp", float(dbp))]


# p1, deliberately out of order: o3/o4 tie at 10:20; HR 09:45 is 35 min before them (missing);
# o2 at 09:30 sees the 09:00 HR exactly 30 minutes earlier (the window is inclusive).
ROWS = [
    *bp("p1", "o4", 80, 130, 125),
    *bp("p1", "o3", 80, 150, 95),
    ("p1", "h2", at(45), "heart_rate", 88.0),
    *bp("p1", "o2", 30, 185, 100),
    *bp("p1", "o1", 0, 120, 80),
    ("p1", "h1", at(0), "heart_rate", 70.0),
    ("p1", "r1", at(-10), "respiratory_rate", 18.0),
    *bp("p2", "q1", 0, 118, 76),
    ("p3", "x1", at(0), "heart_rate", 90.0),  # no BP reading: no example
]


def expected_vector(slots: list[list[float]]) -> list[float]:
    """Hand-written tail of a 30-slot vector (oldest first); leading slots missing."""
    head = [NA] * (4 * (30 - len(slots)))
    return head + [NA if v is None else float(v) for s in slots for v in s]


S1 = [120, 80, 70, None]
S2 = [185, 100, 70, 30]
S3 = [150, 95, None, 50]
S4 = [130, 125, None, 0]


@pytest.fixture(scope="module")
def clinical():
    return Settings().clinical


def test_feature_names_layout():
    names = feature_names(30)
    assert len(names) == 120
    assert names[:4] == ["r00_sbp", "r00_dbp", "r00_hr", "r00_dt"]
    assert names[-4:] == ["r29_sbp", "r29_dbp", "r29_hr", "r29_dt"]


def test_spark_examples_match_hand_computed(spark, clinical):
    rows = spark.createDataFrame(ROWS, ROW_COLUMNS)
    got = (build_examples(rows, clinical, buckets=3)
           .select("patient_id", "observation_id",
                   F.transform("features", lambda x: F.when(F.isnan(x), NA).otherwise(x)).alias("features"),
                   "label_1h", "label_6h", "label_24h", "crisis_now"))
    expected = spark.createDataFrame([
        ("p1", "o1", expected_vector([S1]), 1, 1, 1, False),
        ("p1", "o2", expected_vector([S1, S2]), 1, 1, 1, True),
        ("p1", "o3", expected_vector([S1, S2, S3]), 0, 0, 0, False),  # o4 ties with o3: not *later*
        ("p1", "o4", expected_vector([S1, S2, S3, S4]), 0, 0, 0, True),
        ("p2", "q1", expected_vector([[118, 76, None, None]]), 0, 0, 0, False),
    ], got.schema)
    assertDataFrameEqual(got, expected)


def test_other_vitals_window_and_order(clinical):
    r = readings(pd.DataFrame(ROWS, columns=ROW_COLUMNS), clinical)
    p1 = r[r.patient_id == "p1"]
    assert list(p1.observation_id) == ["o1", "o2", "o3", "o4"]
    assert p1.heart_rate.tolist()[:2] == [70.0, 70.0] and p1.heart_rate.iloc[2:].isna().all()
    # RR at 08:50: 10 min before o1 (used), 40 min before o2 (too old)
    assert p1.respiratory_rate.iloc[0] == 18.0 and p1.respiratory_rate.iloc[1:].isna().all()
    assert p1.minutes_since_previous.iloc[1:].tolist() == [30.0, 50.0, 0.0]


def test_repeated_values_and_ties_at_one_instant(clinical):
    """A reading's value is the last non-missing one given for it; of two heart rates at one
    instant the greater observation id wins, and of one observation given twice, the later row;
    a BP observation without any value is no reading."""
    rows = pd.DataFrame([
        ("p", "o1", at(0), "systolic_bp", 140.0), ("p", "o1", at(0), "systolic_bp", 150.0),
        ("p", "o1", at(0), "systolic_bp", float("nan")), ("p", "o1", at(0), "diastolic_bp", 90.0),
        ("p", "hb", at(-5), "heart_rate", 81.0), ("p", "ha", at(-5), "heart_rate", 79.0),
        ("p", "hc", at(-5), "heart_rate", 70.0), ("p", "hc", at(-5), "heart_rate", 72.0),
        ("p", "o0", at(-1), "systolic_bp", float("nan")),
    ], columns=ROW_COLUMNS)
    r = readings(rows, clinical)
    assert r.observation_id.tolist() == ["o1"]
    assert r[["systolic", "diastolic", "heart_rate"]].iloc[0].tolist() == [150.0, 90.0, 72.0]
    assert np.isnan(r.minutes_since_previous.iloc[0])


def test_label_horizon_bounds(clinical):
    """(t, t+h]: a crisis exactly h later counts; one just after does not."""
    rows = [*bp("p", "a", 0, 120, 80), *bp("p", "b", 60, 181, 80), *bp("p", "c", 60 + 6 * 60 + 1, 120, 121)]
    ex = training_examples(pd.DataFrame(rows, columns=ROW_COLUMNS), clinical)
    assert ex.label_1h.tolist() == [1, 0, 0]
    assert ex.label_6h.tolist() == [1, 0, 0]  # c is 6 h 1 min after b
    assert ex.label_24h.tolist() == [1, 1, 0]


def test_vector_keeps_the_last_30_readings(clinical):
    rows = [r for k in range(32) for r in bp("p", f"o{k:02d}", 10 * k, 100 + k, 60 + k)]
    x = feature_matrix(readings(pd.DataFrame(rows, columns=ROW_COLUMNS), clinical), 30)
    last = x[-1].reshape(30, 4)
    assert last[0, :2].tolist() == [102.0, 62.0]  # reading 2 is the oldest kept
    assert last[-1, :2].tolist() == [131.0, 91.0]
    assert (last[:, 3] == 10.0).all()
    first = x[0].reshape(30, 4)
    assert np.isnan(first[:29]).all() and first[29, :2].tolist() == [100.0, 60.0] and np.isnan(first[29, 3])


def test_incremental_equals_batch(clinical):
    """What the streaming scorer does — vectors from the readings known so far — equals the
    batch vectors: the definition only looks back."""
    from vitalwatch.models.datasets import synthetic_pandas

    cfg = Settings().models.synthetic.model_copy(update={"hours": 12})
    rows = synthetic_pandas(cfg, sequences=3)
    r = readings(rows, clinical)
    batch = feature_matrix(r, 30)
    for i in (0, 5, 29, 30, len(r) - 1):
        pid = r.patient_id.iloc[i]
        known = rows[(rows.patient_id == pid) & (rows.effective_time <= r.effective_time.iloc[i])]
        inc = feature_matrix(readings(known, clinical), 30)[-1]
        np.testing.assert_array_equal(inc, batch[i])


def test_spark_builder_equals_pandas_on_many_patients(spark, clinical):
    from vitalwatch.models.datasets import synthetic_pandas

    cfg = Settings().models.synthetic.model_copy(update={"hours": 6})
    rows = synthetic_pandas(cfg, sequences=40)
    got = build_examples(spark.createDataFrame(rows[ROW_COLUMNS]), clinical, buckets=7).toPandas()
    want = training_examples(rows, clinical)
    got = got.sort_values(["patient_id", "effective_time", "observation_id"]).reset_index(drop=True)
    assert len(got) == len(want) == 40 * 12
    np.testing.assert_array_equal(np.stack(got.features), np.stack(want.features))
    for c in ("label_1h", "label_6h", "label_24h"):
        assert got[c].tolist() == want[c].tolist()


def test_silver_rows_keep_latest_version(spark):
    silver = spark.createDataFrame([
        ("p", "o", "1", datetime(2026, 1, 1), "systolic_bp", 150.0, datetime(2026, 1, 1, 0, 1)),
        ("p", "o", "2", datetime(2026, 1, 1), "systolic_bp", 155.0, datetime(2026, 1, 1, 0, 5)),
        ("p", "o", "1", datetime(2026, 1, 1), "diastolic_bp", 90.0, datetime(2026, 1, 1, 0, 1)),
        ("p", "t", None, datetime(2026, 1, 1), "body_height", 180.0, datetime(2026, 1, 1, 0, 1)),
    ], "patient_id string, observation_id string, version_id string, effective_time timestamp, vital string, "
       "value double, ingest_time timestamp")
    got = silver_rows(silver)
    want = spark.createDataFrame([("p", "o", datetime(2026, 1, 1), "systolic_bp", 155.0),
                                  ("p", "o", datetime(2026, 1, 1), "diastolic_bp", 90.0)], got.schema)
    assertDataFrameEqual(got, want)


def _reference_readings(rows: pd.DataFrame, clinical) -> pd.DataFrame:
    """The definition written the plain pandas way (pivot + as-of join): the oracle for the
    numpy implementation on random data."""
    from vitalwatch.features.vector import BP_VITALS, OTHER_VITALS, READING_COLUMNS

    bp_rows = rows[rows["vital"].isin(BP_VITALS)]
    wide = (bp_rows.pivot_table(index=["patient_id", "observation_id", "effective_time"], columns="vital",
                                values="value", aggfunc="last").rename(columns=BP_VITALS).reset_index())
    for c in BP_VITALS.values():
        wide[c] = wide.get(c, np.nan)
    wide = wide.sort_values(["effective_time", "patient_id", "observation_id"], kind="mergesort")
    for vital, col in OTHER_VITALS.items():
        other = (rows[rows["vital"] == vital].sort_values(["effective_time", "observation_id"], kind="mergesort")
                 [["patient_id", "effective_time", "value"]].rename(columns={"value": col}))
        wide = pd.merge_asof(wide, other, on="effective_time", by="patient_id", direction="backward",
                             tolerance=pd.Timedelta(minutes=clinical.other_vitals_window_minutes))
    out = wide.sort_values(["patient_id", "effective_time", "observation_id"], kind="mergesort").reset_index(drop=True)
    prev = out.groupby("patient_id", sort=False)["effective_time"].shift(1)
    out["minutes_since_previous"] = (out["effective_time"] - prev).dt.total_seconds() / 60.0
    out.columns.name = None
    return out[READING_COLUMNS]


@pytest.mark.parametrize("seed", range(4))
def test_readings_equal_the_plain_pandas_definition_on_random_rows(clinical, seed):
    """Many patients, repeated and missing values, ties at one instant and values exactly at
    the window's edge (times on a 5-minute grid, window 30 minutes)."""
    rng = np.random.default_rng(seed)
    vitals = ["systolic_bp", "diastolic_bp", "heart_rate", "respiratory_rate", "spo2", "body_temperature", "weight"]
    for _ in range(40):
        n = int(rng.integers(1, 300))
        rows = pd.DataFrame({
            "patient_id": rng.choice([f"p{i}" for i in range(int(rng.integers(1, 6)))], n).astype(object),
            "observation_id": rng.choice([f"o{i}" for i in range(int(rng.integers(1, 60)))], n).astype(object),
            "effective_time": T0 + pd.to_timedelta(rng.integers(0, 30, n) * 5, unit="min"),
            "vital": rng.choice(vitals, n).astype(object),
            "value": np.where(rng.random(n) < 0.05, np.nan, rng.normal(100, 20, n).round()),
        })
        pd.testing.assert_frame_equal(readings(rows, clinical), _reference_readings(rows, clinical))
