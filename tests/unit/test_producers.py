"""Producers: deterministic, valid FHIR the parser accepts, faults of the kinds announced,
plausible physiology, and a faithful replay of the real ICU rows."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from pyspark.sql import SparkSession

from tests.helpers import SHARED_DATA
from vitalwatch.config import Settings
from vitalwatch.fhir.parse import ParseRules, accepted, parse_observations, rejected
from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA
from vitalwatch.producers.faults import MALFORMED_KINDS, FaultPlan
from vitalwatch.producers.icu_replay import read_rows, replay
from vitalwatch.producers.simulator import SimulationPlan, patients_for, simulate

START = datetime(2026, 2, 1, tzinfo=UTC)


def plan(settings: Settings, **upd: object) -> SimulationPlan:
    hours = float(upd.pop("hours", 12))  # type: ignore[arg-type]
    return SimulationPlan(START, hours, settings.simulator.model_copy(update=upd))


def to_bronze(spark: SparkSession, msgs: list) -> object:
    """Bronze rows as the broker stamps them: LogAppendTime = when the simulator sends each."""
    rows = []
    for i, m in enumerate(msgs):
        t = m.sim_time.astimezone(UTC).replace(tzinfo=None)
        rows.append((m.key.encode(), m.value, "t", 0, i, t, 1, t, t.date()))
    return spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA)


def test_same_seed_same_messages_other_seed_other_messages(base_settings: Settings) -> None:
    a = [m.value for m in simulate(plan(base_settings, patients=10, seed=1))]
    b = [m.value for m in simulate(plan(base_settings, patients=10, seed=1))]
    c = [m.value for m in simulate(plan(base_settings, patients=10, seed=2))]
    assert a == b
    assert a != c


def test_cadence_and_keys(base_settings: Settings) -> None:
    msgs = list(simulate(plan(base_settings, patients=5, hours=10, bundle_fraction=0.0, cadence_minutes=15)))
    bps = [json.loads(m.value) for m in msgs if b"85354-9" in m.value]
    per_patient = Counter(o["subject"]["reference"] for o in bps)
    assert set(per_patient.values()) == {40}  # 10 h / 15 min
    assert all(m.key == json.loads(m.value)["subject"]["reference"].split("/")[1] for m in msgs)


def test_simulator_output_is_accepted_and_faults_are_quarantined_as_announced(
        spark: SparkSession, base_settings: Settings) -> None:
    msgs = list(simulate(plan(base_settings, patients=12, hours=8, duplicate_fraction=0.1, late_fraction=0.1,
                              malformed_fraction=0.2, bundle_fraction=0.3)))
    kinds = Counter(m.kind for m in msgs)
    assert kinds["duplicate"] > 0 and kinds["late"] > 0
    assert {k.split(":")[1] for k in kinds if k.startswith("malformed:")} == set(MALFORMED_KINDS)
    p = parse_observations(to_bronze(spark, msgs), ParseRules.from_settings(base_settings)).cache()
    rej = Counter(r["reason"] for r in rejected(p).collect())
    want = Counter(k.split(":")[1] for k in (m.kind for m in msgs) if k.startswith("malformed:"))
    assert rej == want
    # Late messages arrive after later readings of the same patient (out of order).
    sent_order = [(m.key, json.loads(m.value).get("effectiveDateTime")) for m in msgs if m.kind != "malformed:invalid_json"]
    late = [m for m in msgs if m.kind == "late"]
    assert any(json.loads(m.value).get("effectiveDateTime", "9") < max(t for k, t in sent_order if k == m.key and t)
               for m in late)
    # Every good reading (incl. bundle members) produced its values.
    bp_values = accepted(p).where("vital in ('systolic_bp','diastolic_bp')").count()
    readings = sum(m.value.count(b'"85354-9"') for m in msgs if m.kind in ("reading", "late", "duplicate"))
    bad_bp = sum(1 for k in (m.kind for m in msgs)
                 if k in ("malformed:out_of_physiological_range", "malformed:unit_not_convertible"))
    assert bp_values == 2 * readings + bad_bp  # the malformed BP panels keep their good diastolic


def test_crisis_prone_patients_reach_crisis_and_normotensive_do_not(base_settings: Settings) -> None:
    p = plan(base_settings, patients=60, hours=48)
    pats = {x.patient_id: x.profile for x in patients_for(p)}
    peak: dict[str, float] = {}
    for m in simulate(p):
        o = json.loads(m.value)
        for r in (e["resource"] for e in o["entry"]) if o["resourceType"] == "Bundle" else [o]:
            if r["code"]["coding"][0]["code"] == "85354-9":
                s, d = (c["valueQuantity"]["value"] for c in r["component"])
                peak[m.key] = max(peak.get(m.key, 0), s if s >= 180 or d >= 120 else 0)
    crisis = {k for k, v in peak.items() if v}
    prone = {k for k, v in pats.items() if v == "crisis_prone"}
    assert prone and prone <= crisis
    assert not crisis & {k for k, v in pats.items() if v == "normotensive"}


def test_icu_replay_is_faithful_to_the_file(spark: SparkSession, base_settings: Settings) -> None:
    path = SHARED_DATA / "physionet2019" / "icu_vitals_dev.psv.gz"
    rows = read_rows(path, patients=3)
    with gzip.open(path, "rt") as fh:
        header = fh.readline().strip().split("|")
        first3 = []
        for line in fh:
            rec = dict(zip(header, line.strip().split("|"), strict=True))
            if rec["patient_id"] not in first3:
                if len(first3) == 3:
                    break
                first3.append(rec["patient_id"])
    assert {r["patient_id"] for r in rows} == set(first3)
    assert [float(r["ICULOS"]) for r in rows] == sorted(float(r["ICULOS"]) for r in rows)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    msgs = list(replay(path, base, patients=3))
    p = parse_observations(to_bronze(spark, msgs), ParseRules.from_settings(base_settings))
    assert rejected(p).count() == 0
    got = {(r["patient_id"], r["effective_time"], r["vital"]): r["value"] for r in accepted(p).collect()}
    cols = {"HR": "heart_rate", "SBP": "systolic_bp", "DBP": "diastolic_bp", "O2Sat": "spo2",
            "Resp": "respiratory_rate", "Temp": "body_temperature", "MAP": "mean_arterial_pressure"}
    want = {}
    for r in rows:
        t = datetime(2026, 1, 1) + __import__("datetime").timedelta(hours=float(r["ICULOS"]))
        for col, vital in cols.items():
            if r[col] not in ("", "NaN", "nan"):
                want[(f"icu-{r['patient_id']}", t, vital)] = round(float(r[col]), 2)
    assert got == pytest.approx(want)


def test_icu_replay_injects_faults_on_request_deterministically(spark: SparkSession, base_settings: Settings) -> None:
    path = SHARED_DATA / "physionet2019" / "icu_vitals_dev.psv.gz"
    plan = FaultPlan(seed=5, duplicate_fraction=0.1, late_fraction=0.1, malformed_fraction=0.1)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    clean = list(replay(path, base, patients=4))
    msgs = list(replay(path, base, patients=4, faults=plan))
    assert [m.value for m in msgs] == [m.value for m in replay(path, base, patients=4, faults=plan)]
    kinds = Counter(m.kind for m in msgs)
    assert kinds["duplicate"] > 0 and kinds["late"] > 0 and sum(v for k, v in kinds.items() if k.startswith("malformed:")) > 0
    # Nothing of the clean replay is lost: every original message is still sent (late ones later).
    assert Counter(m.value for m in msgs if not m.kind.startswith("malformed:")) - Counter(m.value for m in clean) \
        == Counter(m.value for m in msgs if m.kind == "duplicate")
    # Late ones really arrive after later readings of the same patient.
    reading_time = {m.value: m.sim_time for m in clean}
    sent = [m for m in msgs if not m.kind.startswith("malformed:")]
    assert any(any(o.key == m.key and reading_time[o.value] > reading_time[m.value] for o in sent[:j])
               for j, m in enumerate(sent) if m.kind == "late")
    p = parse_observations(to_bronze(spark, msgs), ParseRules.from_settings(base_settings))
    want = Counter(k.split(":", 1)[1] for k in (m.kind for m in msgs) if k.startswith("malformed:"))
    assert Counter(r["reason"] for r in rejected(p).collect()) == want


def test_fault_injection_of_an_unknown_kind_is_an_error() -> None:
    from vitalwatch.producers.faults import malformed

    with pytest.raises(ValueError, match="unknown malformed kind"):
        malformed("nonsense", "p1", START, __import__("random").Random(0))
