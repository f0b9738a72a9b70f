"""Live model monitoring, the pure parts: drift (PSI per slot group against a training
reference), outcome rows per horizon, one day's quality rows, breaches, and the alert path's
event metrics counted from a given time on."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vitalwatch.alerts.evaluation import event_metrics
from vitalwatch.config import MonitoringConfig, Settings
from vitalwatch.models import drift, monitoring

T0 = pd.Timestamp("2026-03-01T00:00")
S = Settings()
HISTORY = S.clinical.history_readings
KEY = ["patient_id", "observation_id", "horizon_h"]


def vectors(n: int, sbp_mean: float = 130.0, seed: int = 0, missing_share: float = 0.3) -> np.ndarray:
    """``n`` feature vectors: 30 slots × (sbp, dbp, hr, dt); the oldest slots missing for some."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, HISTORY * 4))
    x[:, 0::4] = rng.normal(sbp_mean, 15, (n, HISTORY))
    x[:, 1::4] = rng.normal(75, 10, (n, HISTORY))
    x[:, 2::4] = rng.normal(85, 12, (n, HISTORY))
    x[:, 3::4] = rng.exponential(30, (n, HISTORY))
    short = rng.random(n) < missing_share
    x[short, : 10 * 4] = np.nan  # patients with fewer than 30 readings
    return x


def test_slot_groups_cover_every_feature_once() -> None:
    groups = drift.slot_groups(HISTORY)
    assert len(groups) == 12
    cols = np.concatenate(list(groups.values()))
    assert sorted(cols.tolist()) == list(range(HISTORY * 4))
    assert groups["sbp_latest"].tolist() == [(HISTORY - 1) * 4]           # the scored reading's systolic
    assert groups["dt_recent"].tolist() == [s * 4 + 3 for s in range(HISTORY - 10, HISTORY - 1)]


def test_psi_is_near_zero_on_the_same_population_and_large_on_a_shift() -> None:
    ref = drift.reference(vectors(5000, seed=1), HISTORY, bins=10)
    assert ref["readings"] == 5000
    assert len(ref["groups"]["sbp_latest"]["edges"]) == 9
    assert sum(ref["groups"]["sbp_latest"]["share"]) == pytest.approx(1.0)
    assert ref["groups"]["sbp_older"]["share"][0] == pytest.approx(0.3 * 10 / 20, abs=0.02)  # missing first

    same = drift.psi(drift.counts(vectors(3000, seed=2), ref), ref)
    assert max(same.values()) < 0.02
    shifted = drift.psi(drift.counts(vectors(3000, sbp_mean=150, seed=3), ref), ref)
    assert shifted["sbp_latest"] > 0.25 and shifted["sbp_recent"] > 0.25
    assert shifted["hr_latest"] < 0.02  # only systolic moved: the group says where
    more_missing = drift.psi(drift.counts(vectors(3000, seed=4, missing_share=0.9), ref), ref)
    assert more_missing["sbp_older"] > 0.25 and more_missing["sbp_latest"] < 0.02
    assert math.isnan(drift.psi(drift.counts(vectors(0), ref), ref)["sbp_latest"])


def test_counts_are_additive_so_partitions_can_be_summed() -> None:
    ref = drift.reference(vectors(2000, seed=1), HISTORY)
    x = vectors(1000, seed=5)
    whole = drift.counts(x, ref)
    parts = [drift.counts(x[:300], ref), drift.counts(x[300:], ref)]
    for g, c in whole.items():
        np.testing.assert_array_equal(c, parts[0][g] + parts[1][g])
        assert c.sum() == 1000 * len(drift.slot_groups(HISTORY)[g])


def row(pid: str, hour: float, crisis: bool = False, risk: float = 0.1, **kw) -> dict:
    r = {"patient_id": pid, "observation_id": f"{pid}-{hour:g}", "effective_time": T0 + pd.Timedelta(hours=hour),
         "crisis_now": crisis, "score_status": "scored", "model_version": "3", "shadow_model_version": None,
         "alert_kind": None, "alert_level": None}
    r |= {f"risk_{h}h": risk for h in (1, 6, 24)} | {f"shadow_risk_{h}h": math.nan for h in (1, 6, 24)}
    return r | kw


def test_outcome_rows_are_one_per_reading_and_known_horizon() -> None:
    scores = pd.DataFrame([row("a", 0, risk=0.7), row("a", 3, crisis=True), row("a", 8), row("a", 30),
                           row("b", 0), row("b", 0.5, score_status="untimely")])
    got = monitoring.outcome_rows(scores, [1, 6, 24])
    assert list(got.columns) == monitoring.OUTCOME_COLUMNS
    by = got.set_index(["observation_id", "horizon_h"])
    assert by.loc[("a-0", 6), "outcome"] == 1 and by.loc[("a-0", 24), "outcome"] == 1
    assert by.loc[("a-0", 1), "outcome"] == 0
    assert by.loc[("a-0", 6), "risk"] == 0.7
    assert by.loc[("a-0", 6), "outcome_known_time"] == T0 + pd.Timedelta(hours=3)   # the crisis settled it
    assert by.loc[("a-0", 1), "outcome_known_time"] == T0 + pd.Timedelta(hours=3)   # the first reading past 1 h
    assert by.loc[("a-3", 24), "outcome_known_time"] == T0 + pd.Timedelta(hours=30)
    assert ("a-8", 24) not in by.index and ("a-30", 1) not in by.index            # not known yet
    assert not got["observation_id"].isin(["b-0", "b-0.5"]).any()                 # one reading; an untimely one
    assert set(got["effective_date"]) == {T0.date()}
    assert got["outcome"].dtype == np.int32 and math.isnan(got["shadow_risk"].iloc[0])


def test_a_day_of_outcomes_gives_quality_per_model_and_horizon() -> None:
    rng = np.random.default_rng(0)
    n = 400
    p = rng.uniform(0, 1, n)
    y = (rng.uniform(0, 1, n) < p).astype(int)  # calibrated by construction
    d = pd.DataFrame({"horizon_h": 6, "model_version": "3", "risk": p, "outcome": y,
                      "shadow_model_version": "4", "shadow_risk": np.clip(p * 0.2, 0, 1)})
    cfg = MonitoringConfig(min_readings=200, ece_bound=0.1, psi_bound=0.25)
    events = {"patients": 5.0, "patient_hours": 100.0, "onsets": 2.0, "burden_ph_medium": 0.1}
    rows = monitoring.day_rows(d, events, {"sbp_latest": 0.4, "hr_latest": 0.01}, 300, "3", cfg, 10)
    champ, shadow = (next(r for r in rows if r["role"] == role) for role in ("champion", "shadow"))
    assert champ["readings"] == shadow["readings"] == n and champ["positives"] == y.sum()
    assert champ["auroc"] > 0.7 and champ["auroc"] == pytest.approx(shadow["auroc"])  # same ranking
    assert champ["ece"] < 0.1 < shadow["ece"]                                        # the shadow under-predicts
    assert champ["burden_ph_medium"] == 0.1 and math.isnan(shadow["burden_ph_medium"])  # only the champion alerts
    assert len(champ["decile_predicted"]) == 10 and sum(champ["decile_count"]) == n
    assert np.all(np.diff(champ["decile_predicted"]) > 0)
    assert champ["psi_max"] == 0.4 and champ["psi_group"] == "sbp_latest"
    assert any(b.startswith("drift: sbp_latest PSI 0.40") for b in champ["breaches"])
    assert any(b.startswith("calibration: shadow v4 6 h ECE") for b in shadow["breaches"])
    assert not any(b.startswith("calibration") for b in champ["breaches"])


def test_a_quiet_day_is_shown_but_never_judged() -> None:
    d = pd.DataFrame({"horizon_h": 1, "model_version": "3", "risk": [0.9, 0.9, 0.1], "outcome": [0, 0, 0],
                      "shadow_model_version": None, "shadow_risk": math.nan})
    rows = monitoring.day_rows(d, {}, {"sbp_latest": 2.0}, 3, "3", MonitoringConfig(min_readings=200), 10)
    assert len(rows) == 1 and rows[0]["breaches"] == []
    assert math.isnan(rows[0]["auroc"])  # one class only
    assert rows[0]["ece"] > 0.5


def test_event_metrics_since_counts_the_day_with_the_hours_before_as_context() -> None:
    warn = {"alert_kind": "raised", "alert_level": "HIGH"}
    scores = pd.DataFrame([
        row("a", 20, **warn), row("a", 22), row("a", 25, crisis=True, alert_kind="raised", alert_level="CRITICAL"),
        row("b", 21, crisis=True), row("b", 26, crisis=True),   # b's 26 h crisis is no onset: one 5 h before
        row("c", 26), row("c", 30, crisis=True)])
    day = T0 + pd.Timedelta(days=1)
    m = event_metrics(scores, 6.0, since=day)
    assert m["onsets"] == 2                        # a at 25 h (warned at 20 h, the day before), c at 30 h
    assert m["warned_high"] == 0.5 and m["lead_median_h_high"] == 5.0
    assert m["burden_ph_medium"] == pytest.approx(1 / m["patient_hours"])  # only the CRITICAL at 25 h is counted
    assert m["patients"] == 3
    assert monitoring.day_events(scores, day, 6.0)["onsets"] == 2
    assert math.isnan(monitoring.day_events(scores, day + pd.Timedelta(days=1), 6.0)["onsets"])


def _stream(arrivals: list[list[dict]], gap_hours: float = 48) -> pd.DataFrame:
    """The stage's outcome logic without Spark: per arrival, each touched patient's window
    (its readings from ``gap_hours`` + 24 h before its earliest new one) → changed outcomes,
    upserted on (patient, observation, horizon)."""
    table: dict[tuple, dict] = {}
    seen: list[dict] = []
    for batch in arrivals:
        seen += batch
        allr = pd.DataFrame(seen)
        new = pd.DataFrame(batch)
        for pid, since in new.groupby("patient_id")["effective_time"].min().items():
            w = allr[(allr["patient_id"] == pid).to_numpy()
                     & (allr["effective_time"] >= since - pd.Timedelta(hours=gap_hours + 24)).to_numpy()]
            for r in monitoring.changed_outcomes(w.assign(since=since), [1, 6, 24]).to_dict("records"):
                table[(r["patient_id"], r["observation_id"], r["horizon_h"])] = r
    return pd.DataFrame(table.values())


def test_one_reading_per_batch_records_every_outcome_the_whole_timeline_gives() -> None:
    """A live stream brings one reading per patient per batch: each new reading settles the
    24 h outcomes of readings a day before the previous one (the stage must reach back that far),
    a late crisis changes earlier outcomes, and the result is the batch function's on everything."""
    rows = [row("a", h / 2, crisis=h == 40) for h in range(0, 80)] + [row("b", h) for h in range(0, 40)]
    late = row("a", 9.25, crisis=True, score_status="late")
    arrivals = [[r] for r in rows]
    arrivals.insert(60, [late])
    got = _stream(arrivals).set_index(KEY).sort_index()
    want = monitoring.outcome_rows(pd.DataFrame([*rows, late]), [1, 6, 24]).set_index(KEY).sort_index()
    assert list(got.index) == list(want.index)
    assert (got["outcome"] == want["outcome"]).all()
    assert (pd.to_datetime(got["outcome_known_time"]) == pd.to_datetime(want["outcome_known_time"])).all()
    assert (want.xs(24, level="horizon_h")["outcome"] == 0).sum() > 10  # the 24 h negatives are there
    assert got.loc[("a", "a-9", 1), "outcome"] == 1                    # set by the late crisis


def test_a_pause_longer_than_the_gap_leaves_the_outcomes_before_it_unknown() -> None:
    rows = [row("a", h) for h in range(0, 5)] + [row("a", 100)]  # readmitted 95 h later
    got = _stream([[r] for r in rows], gap_hours=48)
    assert not ((got["observation_id"] == "a-4") & (got["horizon_h"] == 24)).any()
    assert monitoring.outcome_rows(pd.DataFrame(rows), [24]).set_index("observation_id").loc["a-4", "outcome"] == 0
