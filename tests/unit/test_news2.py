"""NEWS2 (one implementation, docs/requirements.md §4) cross-checked against the PyPI package vitalscore
0.1.1 on many generated vital sets and on worked examples read off the RCP 2017 chart."""

from __future__ import annotations

import random

import numpy as np
import pytest
from vitalscore.scores.news2 import score_news2

from vitalwatch.clinical.news2 import news2, round_half_up

ACVPU = ["A", "C", "V", "P", "U"]


def ours(rr, spo2, o2, sbp, hr, avpu, temp):
    r = news2([rr], [spo2], [sbp], [hr], [temp], on_oxygen=[o2], consciousness_alert=[avpu == "A"])
    return r


def test_matches_vitalscore_on_generated_vital_sets():
    rng = random.Random(2017)
    for _ in range(5000):
        v = dict(rr=rng.randint(4, 45), spo2=rng.randint(70, 100), o2=rng.random() < 0.3,
                 sbp=rng.randint(60, 260), hr=rng.randint(25, 200), avpu=rng.choice(ACVPU),
                 temp=round(rng.uniform(33.0, 41.5), 1))
        ref = score_news2(v["rr"], float(v["spo2"]), v["o2"], v["sbp"], v["hr"], v["avpu"], v["temp"])
        r = ours(**v)
        assert r.total[0] == ref.total, v
        assert r.components["respiratory_rate"][0] == ref.rr_score
        assert r.components["spo2"][0] == ref.spo2_score
        assert r.components["systolic"][0] == ref.sbp_score
        assert r.components["heart_rate"][0] == ref.hr_score
        assert r.components["temperature"][0] == ref.temp_score
        assert r.components["supplemental_oxygen"][0] == ref.o2_score
        assert r.components["consciousness"][0] == ref.consciousness_score
        assert bool(r.red_flag[0]) == (ref.total >= 7 or ref.max_single_parameter >= 3)


@pytest.mark.parametrize(("vitals", "total", "red_flag"), [
    # rr, spo2, o2, sbp, hr, avpu, temp — each band read off the RCP 2017 chart
    ((18, 98, False, 120, 72, "A", 36.8), 0, False),
    ((28, 90, True, 88, 115, "V", 35.0), 3 + 3 + 2 + 3 + 2 + 3 + 3, True),
    ((22, 95, False, 105, 95, "A", 38.5), 2 + 1 + 0 + 1 + 1 + 0 + 1, False),
    ((24, 93, True, 100, 110, "A", 39.1), 2 + 2 + 2 + 2 + 1 + 0 + 2, True),
    ((12, 96, False, 220, 40, "A", 36.1), 0 + 0 + 0 + 3 + 3 + 0 + 0, True),   # single 3s: red flag
    ((9, 94, False, 111, 51, "A", 36.0), 1 + 1 + 0 + 0 + 0 + 0 + 1, False),
    ((8, 91, False, 219, 131, "C", 35.1), 3 + 3 + 0 + 0 + 3 + 3 + 1, True),
    ((21, 92, False, 91, 41, "A", 38.1), 2 + 2 + 0 + 2 + 1 + 0 + 1, True),  # aggregate 8
    ((25, 100, False, 101, 130, "A", 38.0), 3 + 0 + 0 + 1 + 2 + 0 + 0, True),
])
def test_worked_examples(vitals, total, red_flag):
    r = ours(*vitals)
    assert r.total[0] == total
    assert bool(r.red_flag[0]) is red_flag
    assert score_news2(vitals[0], float(vitals[1]), vitals[2], vitals[3], vitals[4], vitals[5], vitals[6]).total == total


@pytest.mark.parametrize(("param", "value", "score"), [
    ("sbp", 90.4, 3), ("sbp", 90.5, 2), ("sbp", 219.49, 0), ("sbp", 219.5, 3),
    ("temp", 35.04, 3), ("temp", 35.05, 1), ("temp", 38.05, 1), ("temp", 38.04, 0),
    ("spo2", 95.5, 0), ("spo2", 95.4, 1), ("rr", 20.5, 2), ("rr", 11.5, 0), ("hr", 90.5, 1),
])
def test_rounding_rule_half_up_to_chart_precision(param, value, score):
    base = dict(rr=16.0, spo2=98.0, sbp=120.0, hr=70.0, temp=37.0)
    base[param] = value
    r = news2([base["rr"]], [base["spo2"]], [base["sbp"]], [base["hr"]], [base["temp"]])
    key = {"sbp": "systolic", "temp": "temperature", "spo2": "spo2", "rr": "respiratory_rate", "hr": "heart_rate"}[param]
    assert r.components[key][0] == score
    # the rule: vitalscore on the value rounded half up to the chart precision agrees
    dec = 1 if param == "temp" else 0
    rounded = float(round_half_up(np.array([value]), dec)[0])
    base[param] = rounded
    ref = score_news2(int(base["rr"]), base["spo2"], False, int(base["sbp"]), int(base["hr"]), "A", base["temp"])
    assert r.total[0] == ref.total


def test_missing_inputs():
    r = news2([18, np.nan], [98, 97], [120, 85], [72, 72], [np.nan, 37.0])
    assert np.isnan(r.total).all()  # temperature missing / RR missing: no aggregate
    assert r.partial.tolist() == [0.0, 3.0]
    assert r.complete.tolist() == [False, False]
    assert r.red_flag.tolist() == [False, True]  # SBP 85 scores 3 on its own
