"""Delayed outcomes (vitalwatch.models.outcomes) on a replayed timeline with known labels, and the
champion/shadow comparison built on them (vitalwatch.models.compare)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vitalwatch.config import Settings
from vitalwatch.features.vector import training_examples
from vitalwatch.models.compare import compare
from vitalwatch.models.datasets import synthetic_pandas
from vitalwatch.models.outcomes import outcomes, timed_readings

T0 = pd.Timestamp("2026-03-01T00:00")
S = Settings()


def r(pid: str, hour: float, crisis: bool = False, status: str = "scored") -> dict:
    return {"patient_id": pid, "observation_id": f"{pid}-{hour:g}", "effective_time": T0 + pd.Timedelta(hours=hour),
            "crisis_now": crisis, "score_status": status}


def test_outcomes_on_a_hand_made_timeline() -> None:
    rows = pd.DataFrame([r("a", 0), r("a", 0.5), r("a", 3, crisis=True), r("a", 8), r("a", 30),
                         r("b", 0), r("b", 2),                      # b's readings stop: censored, not 0
                         r("c", 0), r("c", 0.5, status="untimely")])  # an untimely reading takes no part
    got = outcomes(timed_readings(rows), [1, 6, 24]).set_index("observation_id")
    nan = math.nan

    def row(oid: str) -> list[float]:
        return got.loc[oid, ["outcome_1h", "outcome_6h", "outcome_24h"]].tolist()

    assert row("a-0") == [0.0, 1.0, 1.0]        # no crisis within 1 h, a reading after 1 h; crisis at 3 h
    assert row("a-0.5") == [0.0, 1.0, 1.0]
    assert row("a-3") == [0.0, 0.0, 0.0]        # the crisis itself: none after it, readings at 8 h and 30 h
    np.testing.assert_array_equal(row("a-8"), [0.0, 0.0, nan])  # 24 h not passed: nothing after 32 h
    np.testing.assert_array_equal(row("a-30"), [nan, nan, nan])
    np.testing.assert_array_equal(row("b-0"), [0.0, nan, nan])  # b's last reading at 2 h
    assert "c-0.5" not in got.index
    # known when the last of its outcomes became known: a-0's 24 h one (the crisis at 3 h) ...
    assert got.loc["a-0", "outcome_known_time"] == T0 + pd.Timedelta(hours=3)
    # ... a-3's when a reading past 24 h arrived (30 h); a-8's not yet
    assert got.loc["a-3", "outcome_known_time"] == T0 + pd.Timedelta(hours=30)
    assert pd.isna(got.loc["a-8", "outcome_known_time"])


def test_known_outcomes_agree_with_the_training_labels() -> None:
    """Where an outcome is known it is the training label (the same definition)."""
    ex = training_examples(synthetic_pandas(S.models.synthetic.model_copy(update={"seed": 5}), 30), S.clinical)
    got = outcomes(ex.assign(score_status="scored"), [1, 6, 24])
    for h in (1, 6, 24):
        known = got[f"outcome_{h}h"].notna()
        assert known.mean() > 0.5
        np.testing.assert_array_equal(got.loc[known, f"outcome_{h}h"], ex.loc[known.to_numpy(), f"label_{h}h"])


def test_compare_champion_and_shadow_on_known_outcomes() -> None:
    """A champion that knows the outcome beats a shadow that guesses, on the same readings."""
    ex = training_examples(synthetic_pandas(S.models.synthetic.model_copy(update={"seed": 6}), 40), S.clinical)
    rng = np.random.default_rng(0)
    df = ex.assign(score_status="scored", model_name="m", model_version="3", shadow_model_version="4",
                   level_reasons=[[] for _ in range(len(ex))])
    for h in S.clinical.horizons_hours:
        df[f"risk_{h}h"] = np.clip(ex[f"label_{h}h"] * 0.7 + rng.uniform(0, 0.3, len(ex)), 0, 1)
        df[f"shadow_risk_{h}h"] = rng.uniform(0, 1, len(ex))
    df.loc[df.index[:5], "shadow_model_version"] = None  # not scored by the shadow: left out
    t = compare(df, S).set_index(["model", "horizon_h"])
    assert set(t.index) == {(m, h) for m in ("champion", "shadow") for h in (1, 6, 24)}
    for h in (1, 6, 24):
        assert t.loc[("champion", h), "auroc"] > 0.95 and t.loc[("shadow", h), "auroc"] == pytest.approx(0.5, abs=0.1)
        assert t.loc[("champion", h), "readings"] == t.loc[("shadow", h), "readings"] <= len(df) - 5
    assert t.loc[("champion", 6), "version"] == "3" and t.loc[("shadow", 6), "version"] == "4"
    assert t.loc[("champion", 6), "onsets"] == t.loc[("shadow", 6), "onsets"] > 0
    assert t.loc[("champion", 6), "warned_medium"] > t.loc[("shadow", 6), "warned_medium"] or \
        t.loc[("champion", 6), "burden_ph_medium"] < t.loc[("shadow", 6), "burden_ph_medium"]


def test_compare_without_a_shadow_is_empty() -> None:
    df = pd.DataFrame([r("a", 0)]).assign(shadow_model_version=None, risk_1h=0.1, shadow_risk_1h=math.nan)
    assert compare(df, S).empty


def test_outcomes_of_old_times_and_engine_errors() -> None:
    """Times before 1970 keep to their patient; an engine_error reading keeps its claimed time."""
    old = pd.Timestamp("1960-05-01")
    rows = pd.DataFrame([r("a", 0), r("a", 2, crisis=True, status="engine_error"), r("a", 30),
                         r("b", 0), r("b", 30)])
    rows.loc[rows.patient_id == "b", "effective_time"] = old + pd.to_timedelta([0, 30], unit="h")
    got = outcomes(timed_readings(rows), [6, 24]).set_index("observation_id")
    assert got.loc["a-0", ["outcome_6h", "outcome_24h"]].tolist() == [1.0, 1.0]
    assert got.loc["b-0", ["outcome_6h", "outcome_24h"]].tolist() == [0.0, 0.0]
    assert got.loc["b-0", "outcome_known_time"] == old + pd.Timedelta(hours=30)
