"""Event-level evaluation (vitalwatch.alerts.evaluation) on hand-made timelines: onsets, warnings,
lead times and burden, the policy replayed over scored readings, baselines on the model's scale."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vitalwatch.alerts.evaluation import (
    apply_policy,
    burden_by_cause,
    event_metrics,
    on_model_scale,
    onsets,
    sweep,
)
from vitalwatch.config import Settings

T0 = pd.Timestamp("2026-01-01T00:00")
S = Settings()


def reading(pid: str, hour: float, *, crisis: bool = False, kind: str | None = None, level: str | None = None,
            risk: float = 0.0) -> dict:
    return {"patient_id": pid, "observation_id": f"{pid}-{hour:g}", "effective_time": T0 + pd.Timedelta(hours=hour),
            "crisis_now": crisis, "alert_kind": kind, "alert_level": level, "risk_6h": risk,
            "score_status": "scored", "news2": math.nan, "news2_red_flag": False}


def timeline() -> pd.DataFrame:
    rows = [
        # a: hourly readings 0..12; a MEDIUM alert at 2 h, HIGH at 4 h, crisis onset at 5 h
        *(reading("a", h) for h in (0, 1, 3)),
        reading("a", 2, kind="raised", level="MEDIUM"),
        reading("a", 4, kind="escalated", level="HIGH"),
        reading("a", 5, crisis=True, kind="escalated", level="CRITICAL"),
        reading("a", 6, crisis=True, kind="repeated", level="CRITICAL"),   # still in crisis: no onset
        *(reading("a", h) for h in (7, 8, 9)),
        reading("a", 10, kind="resolved", level="LOW"),                    # resolutions are no burden
        reading("a", 11, crisis=True, kind="raised", level="CRITICAL"),   # crisis 5 h after the last: no onset
        reading("a", 12),
        # b: an onset at 3 h warned 3 h ahead; an onset at 17 h whose only alert (at 3 h) is outside the 6 h
        reading("b", 0, kind="raised", level="MEDIUM"), reading("b", 1), reading("b", 2),
        reading("b", 3, crisis=True, kind="escalated", level="CRITICAL"),
        reading("b", 12), reading("b", 17, crisis=True, kind="raised", level="CRITICAL"),
        # c: a crisis as the first reading is no onset (no reading in the 6 h before); d: no crisis at all
        reading("c", 0, crisis=True, kind="raised", level="CRITICAL"), reading("c", 1),
        reading("d", 0), reading("d", 3, kind="raised", level="MEDIUM"),
    ]
    return pd.DataFrame(rows)


def test_onsets_follow_the_definition() -> None:
    on = onsets(timeline())
    got = sorted((r.patient_id, (r.effective_time - T0) / pd.Timedelta(hours=1)) for r in on.itertuples())
    # a@5 (a@6 continues it; a@11 has a crisis 5 h before), b@3, b@17 (no crisis in the 6 h before);
    # c@0 had no reading before it
    assert got == [("a", 5.0), ("b", 3.0), ("b", 17.0)]


def test_warned_lead_times_and_burden() -> None:
    m = event_metrics(timeline())
    assert m["onsets"] == 3 and m["patients"] == 4
    assert m["patient_hours"] == pytest.approx(12 + 17 + 1 + 3)
    # ≥ MEDIUM: a warned 3 h ahead (MEDIUM at 2 h); b@3 warned by b's MEDIUM at 0 h (3 h); b@17 not
    assert m["warned_medium"] == pytest.approx(2 / 3)
    assert m["lead_median_h_medium"] == pytest.approx(3.0)
    assert m["warned_2h_medium"] == pytest.approx(2 / 3)
    # ≥ HIGH: only a, 1 h ahead (HIGH at 4 h), so not 2 h ahead
    assert m["warned_high"] == pytest.approx(1 / 3) and m["lead_median_h_high"] == pytest.approx(1.0)
    assert m["warned_2h_high"] == 0
    # ≥ CRITICAL: never before an onset
    assert m["warned_critical"] == 0 and math.isnan(m["lead_median_h_critical"])
    # burden: events that are not resolutions, per observed patient-hour
    assert m["burden_ph_medium"] == pytest.approx(10 / 33)
    assert m["burden_ph_high"] == pytest.approx(7 / 33)
    assert m["burden_ph_critical"] == pytest.approx(6 / 33)


def test_no_onsets_no_events() -> None:
    m = event_metrics(pd.DataFrame([reading("z", h) for h in range(5)]))
    assert m["onsets"] == 0 and math.isnan(m["warned_medium"]) and m["burden_ph_medium"] == 0


def test_the_policy_replayed_over_scored_readings() -> None:
    """The engine's policy pass with another risk: a rising risk warns 3 h before the onset."""
    base = timeline()
    base = base[base["patient_id"] == "a"].drop(columns=["alert_kind", "alert_level"]).reset_index(drop=True)
    risk = np.where(base["effective_time"] >= T0 + pd.Timedelta(hours=2), 0.3, 0.05)
    cfg = S.alerts.with_profile("source")
    out = apply_policy(base, S.clinical, cfg, risk)
    first = out[out["alert_kind"] == "raised"].iloc[0]
    assert first["alert_level"] == "MEDIUM" and first["effective_time"] == T0 + pd.Timedelta(hours=2)
    m = event_metrics(out)
    assert m["onsets"] == 1 and m["warned_medium"] == 1 and m["lead_median_h_medium"] == pytest.approx(3.0)
    # the crisis readings are CRITICAL whatever the risk
    assert set(out.loc[out["crisis_now"], "level"]) == {"CRITICAL"}
    # thresholds scaled above every risk: the only warnings left are none
    s = sweep(base, S.clinical, cfg, [1.0, 3.0], risk)
    assert s["warned_medium"].tolist() == [1.0, 0.0]
    assert s["burden_ph_medium"].iloc[1] < s["burden_ph_medium"].iloc[0]


def test_a_baseline_on_the_model_scale_keeps_its_order_and_the_shares_above_thresholds() -> None:
    rng = np.random.default_rng(1)
    systolic = rng.normal(130, 20, 5000)
    risk = rng.beta(1, 8, 5000)
    mapped = on_model_scale(systolic, systolic, risk)
    assert np.all(np.diff(mapped[np.argsort(systolic)]) >= 0)
    for thr in (0.2, 0.4, 0.6):
        assert (mapped >= thr).mean() == pytest.approx((risk >= thr).mean(), abs=0.002)
    assert on_model_scale(np.array([np.nan]), systolic, risk)[0] == pytest.approx(risk.min())


def test_burden_by_cause_counts_what_raised_each_event() -> None:
    rows = [reading("a", 0), reading("a", 1, kind="raised", level="MEDIUM"),
            reading("a", 2, kind="escalated", level="HIGH"), reading("a", 3, crisis=True, kind="escalated", level="CRITICAL"),
            reading("a", 4, kind="repeated", level="HIGH"), reading("a", 10, kind="resolved", level="LOW")]
    df = pd.DataFrame(rows)
    df["level_reasons"] = [[], ["news2_red_flag"], ["risk_6h>=0.40", "news2_red_flag"], ["risk_6h>=0.60", "crisis_now"],
                           ["news2>=7", "news2_red_flag"], []]
    assert burden_by_cause(df) == pytest.approx({"crisis reading": 0.1, "NEWS2 aggregate": 0.1, "model risk": 0.1,
                                                 "NEWS2 red flag": 0.1, "other": 0.0})


def test_simultaneous_crisis_readings_are_one_onset_and_old_times_never_cross_patients() -> None:
    old = pd.Timestamp("1950-01-01")  # before 1970: negative epoch times
    rows = [reading("a", 0), reading("a", 1, crisis=True), reading("a", 1, crisis=True),
            reading("b", 0), reading("b", 0.5, kind="raised", level="MEDIUM")]
    df = pd.DataFrame(rows)
    df["observation_id"] = [f"o{i}" for i in range(len(df))]
    df.loc[df.patient_id == "b", "effective_time"] = old + pd.to_timedelta([0, 0.5], unit="h")
    on = onsets(df)
    assert len(on) == 1 and on.patient_id.tolist() == ["a"]
    m = event_metrics(df)
    assert m["onsets"] == 1 and m["warned_medium"] == 0  # b's alert (in 1950) warns nobody else
