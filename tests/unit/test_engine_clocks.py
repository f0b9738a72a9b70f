"""Bad clocks never silence a patient (docs/streaming.md, "Late readings and bad clocks"): a reading a day ahead, one
dated 1970, two devices two hours apart, a year-9999 time. Each case is fed to the scoring
engine batch by batch as the stream feeds it (arrival = the broker's time), with the small
real scorer of conftest.py; a crisis reading must be CRITICAL and alert, whatever its time."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from vitalwatch.config import Settings
from vitalwatch.pipeline.gold.state import BucketState
from vitalwatch.scoring.engine import ModelRef, advance, empty_rows

S = Settings()
CLIN, ALERTS = S.clinical, S.alerts
SKEW_MS = S.fhir.max_clock_skew_ms
NOW = datetime(2026, 11, 30, 12, 0)
NORMAL, CRISIS = (122.0, 78.0), (200.0, 125.0)


def reading(oid: str, t: datetime | int, bp: tuple[float, float], arrival: datetime, *, pid: str = "p1",
            untimely: bool = False) -> pd.DataFrame:
    """One blood-pressure reading with its heart rate, as silver rows. ``t`` a datetime, or raw
    microseconds since the epoch for a time pandas cannot hold."""
    us = t if isinstance(t, int) else int(pd.Timestamp(t).value // 1000)
    rows = [(pid, oid, us, "systolic_bp", bp[0]), (pid, oid, us, "diastolic_bp", bp[1]), (pid, f"{oid}-hr", us, "heart_rate", 80.0)]
    df = pd.DataFrame(rows, columns=["patient_id", "observation_id", "effective_us", "vital", "value"])
    df["effective_time"] = pd.NaT
    return df.assign(kafka_timestamp=pd.Timestamp(arrival), silver_time=pd.Timestamp(arrival), untimely=untimely)


class Stream:
    """The engine's state carried across batches, as the state function carries it."""

    def __init__(self, model: ModelRef) -> None:
        self.model, self.rows, self.alerts, self.out = model, empty_rows(), {}, []

    def send(self, *batch: pd.DataFrame) -> pd.DataFrame:
        res = advance(self.rows, self.alerts, pd.concat(batch, ignore_index=True), self.model, CLIN, ALERTS,
                      S.gold.late_tolerance_minutes, SKEW_MS)
        self.rows, self.alerts = res.rows, res.alerts
        self.out.append(res.out)
        return res.out

    def normal_history(self, n: int, end: datetime) -> None:
        for k in range(n):
            t = end - timedelta(minutes=15 * (n - k))
            self.send(reading(f"n{k}", t, NORMAL, t + timedelta(seconds=2)))

    @property
    def all(self) -> pd.DataFrame:
        return pd.concat(self.out, ignore_index=True)


def crisis_alerted(out: pd.DataFrame, oid: str) -> pd.Series:
    row = out[out.observation_id == oid].iloc[0]
    assert row.crisis_now and row.level == "CRITICAL", f"{oid}: {row.score_status} level {row.level}"
    return row


def test_a_reading_a_day_ahead_does_not_make_the_later_in_order_readings_late(model) -> None:
    s = Stream(model)
    s.normal_history(5, NOW)
    ahead = s.send(reading("ahead", NOW + timedelta(days=1), NORMAL, NOW + timedelta(seconds=5)))
    assert ahead.score_status.tolist() == ["untimely"] and ahead.level.isna().all()
    assert "ahead" not in set(s.rows.observation_id), "an untrusted time never enters the history"
    for k in range(3):
        t = NOW + timedelta(minutes=15 * (k + 1))
        out = s.send(reading(f"c{k}", t, CRISIS, t + timedelta(seconds=2)))
        row = crisis_alerted(out, f"c{k}")
        assert row.score_status == "scored" and not np.isnan(row.risk_6h)
    first = s.all[s.all.observation_id == "c0"].iloc[0]
    assert first.alert_level == "CRITICAL" and first.alert_kind == "raised" and not first.alert_late


def test_the_parser_s_untimely_crisis_alerts_at_its_arrival(model) -> None:
    """A value the parser quarantined for its time (here: a year 9999 that no pandas time can
    hold) reaches the engine only so that a crisis in it alerts; it is never kept."""
    s = Stream(model)
    s.normal_history(5, NOW)
    year_9999 = 253402300740_000_000  # 9999-12-31T23:59:00Z in microseconds
    out = s.send(reading("far", year_9999, CRISIS, NOW + timedelta(seconds=3), untimely=True))
    row = crisis_alerted(out, "far")
    assert row.score_status == "untimely" and row.effective_us == year_9999 and pd.isna(row.effective_time)
    assert row.alert_level == "CRITICAL" and row.alert_late
    assert "far" not in set(s.rows.observation_id)
    # the state still round-trips, and the next in-order reading is the patient's own
    back = BucketState.load(BucketState(s.rows, s.alerts, {"p1": 1}).dump())
    pd.testing.assert_frame_equal(back.rows, s.rows, check_dtype=False)
    t = NOW + timedelta(minutes=15)
    nxt = s.send(reading("next", t, NORMAL, t + timedelta(seconds=2)))
    assert nxt.score_status.tolist() == ["scored"]


def test_a_crisis_dated_1970_alerts_and_the_stream_after_it_still_does(model) -> None:
    s = Stream(model)
    s.normal_history(CLIN.history_readings + 5, NOW)  # the history is full
    old = s.send(reading("y1970", datetime(1970, 1, 1, 0, 5), CRISIS, NOW + timedelta(seconds=1)))
    row = crisis_alerted(old, "y1970")
    assert row.score_status == "too_late" and np.isnan(row.risk_6h)
    assert row.alert_level == "CRITICAL" and row.alert_late
    t = NOW + timedelta(minutes=15)
    now = s.send(reading("c-now", t, CRISIS, t + timedelta(seconds=2)))
    row = crisis_alerted(now, "c-now")
    assert row.score_status == "scored" and row.alert_level == "CRITICAL" and not row.alert_late


def test_two_devices_two_hours_apart_both_alert_their_crises(model) -> None:
    s = Stream(model)
    s.normal_history(8, NOW)
    lag = timedelta(hours=2)
    crises = []
    for k in range(8):
        real = NOW + timedelta(minutes=15 * (k + 1))
        a_bp = CRISIS if k == 6 else NORMAL       # device A: right clock
        b_bp = CRISIS if k == 2 else NORMAL       # device B: two hours slow
        s.send(reading(f"a{k}", real, a_bp, real + timedelta(seconds=2)),
               reading(f"b{k}", real - lag, b_bp, real + timedelta(seconds=3)))
        crises += [f"a{k}"] * (k == 6) + [f"b{k}"] * (k == 2)
    out = s.all
    for oid in crises:
        crisis_alerted(out, oid)
    b2, a6 = out[out.observation_id == "b2"].iloc[0], out[out.observation_id == "a6"].iloc[0]
    assert b2.score_status == "late" and b2.alert_level == "CRITICAL" and b2.alert_late
    assert a6.score_status == "scored" and a6.alert_level == "CRITICAL" and not a6.alert_late
    # device B's readings never became the patient's "now": A's stayed in order
    assert set(out[out.observation_id.str.startswith("a")].score_status) == {"scored"}


def test_state_round_trips_at_the_time_bounds(model) -> None:
    """The oldest and newest times the parser accepts survive the state store's int64 form."""
    s = Stream(model)
    oldest = S.fhir.min_effective_time.replace(tzinfo=None)
    newest = NOW + S.fhir.max_clock_skew
    s.send(reading("oldest", oldest, NORMAL, NOW), reading("newest", newest, NORMAL, NOW))
    assert set(s.rows.observation_id) >= {"oldest", "newest"}
    back = BucketState.load(BucketState(s.rows, s.alerts, {"p1": 1}).dump())
    pd.testing.assert_frame_equal(back.rows, s.rows, check_dtype=False)
    assert back.rows.effective_time.min() == pd.Timestamp(oldest)
    assert back.rows.effective_time.max() == pd.Timestamp(newest)


def test_a_resent_value_keeps_the_first_and_a_new_version_amends(model) -> None:
    s = Stream(model)
    s.normal_history(3, NOW)
    t = NOW + timedelta(minutes=1)
    s.send(reading("x", t, (150.0, 90.0), t).assign(version_id="1"))
    s.send(reading("x", t, (210.0, 130.0), t + timedelta(seconds=1)).assign(version_id="1"))
    held = s.rows[(s.rows.observation_id == "x") & (s.rows.vital == "systolic_bp")]
    assert held.value.tolist() == [150.0], "same id and version: the first stays (as in silver)"
    s.send(reading("x", t, (160.0, 95.0), t + timedelta(seconds=2)).assign(version_id="2"))
    held = s.rows[(s.rows.observation_id == "x") & (s.rows.vital == "systolic_bp")]
    assert held.value.tolist() == [160.0], "a new version is an amendment"
    # two patients may use the same observation id
    other = s.send(reading("x", t, (140.0, 85.0), t, pid="p2").assign(version_id="1"))
    assert other.observation_id.tolist() == ["x"] and other.patient_id.tolist() == ["p2"]


class BrokenScorer:
    """A model that fails at scoring time (a corrupt booster, a library bug)."""

    def predict(self, x):
        raise RuntimeError("booster failed")


def test_a_failing_engine_still_alerts_crisis_readings(model) -> None:
    from vitalwatch.scoring.engine import advance_safely

    s = Stream(model)
    s.normal_history(5, NOW)
    broken = ModelRef("broken", "1", BrokenScorer())
    t = NOW + timedelta(minutes=15)
    batch = pd.concat([reading("c1", t, CRISIS, t + timedelta(seconds=2)),
                       reading("n1", t, NORMAL, t + timedelta(seconds=2), pid="p2")], ignore_index=True)
    before = s.rows.copy()
    res = advance_safely(s.rows, s.alerts, batch, broken, CLIN, ALERTS, S.gold.late_tolerance_minutes, SKEW_MS)
    row = crisis_alerted(res.out, "c1")
    assert row.score_status == "engine_error" and row.alert_level == "CRITICAL"
    calm = res.out[res.out.observation_id == "n1"].iloc[0]
    assert calm.level is None and calm.alert_id is None
    pd.testing.assert_frame_equal(res.rows, before)  # the history waits for the engine to work again


def test_untimely_rows_without_blood_pressure_values_do_not_break_the_engine(model) -> None:
    s = Stream(model)
    s.normal_history(3, NOW)
    only_hr = reading("u", NOW + timedelta(days=2), NORMAL, NOW, untimely=True)
    only_hr.loc[only_hr.vital != "heart_rate", "value"] = np.nan
    out = s.send(only_hr)
    assert out.empty or set(out.score_status) == {"untimely"}


def test_what_the_engine_emits_crosses_into_spark(spark, model) -> None:
    """Scored, late, untimely (year 9999) and engine-error rows in one output: Arrow takes them
    as the state function's schema, and Spark reads the claimed time back exactly."""
    from vitalwatch.pipeline.gold.state import engine_schema, with_effective_time
    from vitalwatch.scoring.engine import advance_safely, output_columns

    s = Stream(model)
    s.normal_history(4, NOW)
    t = NOW + timedelta(minutes=15)
    year_9999 = 253402300740_000_000
    out = s.send(reading("ok", t, CRISIS, t), reading("far", year_9999, CRISIS, t, untimely=True),
                 reading("late", NOW - timedelta(minutes=20), NORMAL, t))
    broken = advance_safely(s.rows, s.alerts, reading("err", t + timedelta(minutes=1), CRISIS, t),
                            ModelRef("broken", "1", BrokenScorer()), CLIN, ALERTS, 360, SKEW_MS).out
    both = pd.concat([out, broken], ignore_index=True)[output_columns(CLIN)]
    rows = with_effective_time(spark.createDataFrame(both, engine_schema(S))).collect()
    by_id = {r.observation_id: r for r in rows}
    assert {k: by_id[k].score_status for k in ("ok", "far", "late", "err")} == {
        "ok": "scored", "far": "untimely", "late": "late", "err": "engine_error"}
    assert by_id["far"].effective_time.year == 9999 and by_id["far"].features is None
    assert len(by_id["ok"].features) == 4 * CLIN.history_readings
