"""All 64 official FHIR R4 example Observations (../shared/data/fhir-r4-examples, HL7, CC0).

Every vital-sign example that carries a value is accepted with exactly the values below
(worked out by hand from the files); every other example is quarantined with the reason
below. A new or changed file fails the test rather than passing silently."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.helpers import SHARED_DATA
from vitalwatch.config import Settings
from vitalwatch.fhir.parse import ParseRules, accepted, parse_observations, rejected
from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA

EXAMPLES = SHARED_DATA / "fhir-r4-examples"
D = dt.datetime

# file stem -> [(loinc, vital, canonical value, unit, effective UTC)]
ACCEPTED = {
    "blood-pressure": [("8480-6", "systolic_bp", 107.0, "mm[Hg]", D(2012, 9, 17)),
                       ("8462-4", "diastolic_bp", 60.0, "mm[Hg]", D(2012, 9, 17))],
    "blood-pressure-dar": [("8480-6", "systolic_bp", 107.0, "mm[Hg]", D(2012, 9, 17))],
    "body-temperature": [("8310-5", "body_temperature", 36.5, "Cel", D(1999, 7, 2))],
    "heart-rate": [("8867-4", "heart_rate", 44.0, "/min", D(1999, 7, 2))],
    "respiratory-rate": [("9279-1", "respiratory_rate", 26.0, "/min", D(1999, 7, 2))],
    "satO2": [("2708-6", "spo2", 95.0, "%", D(2014, 12, 5, 8, 30, 10))],
    "body-height": [("8302-2", "body_height", 66.89999999999999 * 2.54, "cm", D(1999, 7, 2))],
    "body-length": [("8302-2", "body_height", 25.0, "cm", D(1999, 7, 2))],
    "head-circumference": [("9843-4", "head_circumference", 51.2, "cm", D(1999, 7, 2))],
    "bmi": [("39156-5", "bmi", 16.2, "kg/m2", D(1999, 7, 2))],
    "bmi-using-related": [("39156-5", "bmi", 16.2, "kg/m2", D(1999, 7, 2))],
    "example": [("29463-7", "body_weight", 185 * 0.45359237, "kg", D(2016, 3, 28))],
    "mbp": [("8478-0", "mean_arterial_pressure", 80.0, "mm[Hg]", D(1999, 7, 2))],
    "map-sitting": [("8478-0", "mean_arterial_pressure", 60.0, "mm[Hg]", D(2018, 4, 2, 9, 30, 10))],
}

# file stem -> quarantine reasons (one per rejected resource or value)
QUARANTINED = {
    "blood-pressure-dar": ["no_measured_value"],  # diastolic has a dataAbsentReason
    "blood-pressure-cancel": ["status_not_accepted"],
    "vitals-panel": ["no_measured_value"],  # members only by hasMember reference
    "f202": ["status_not_accepted"],  # body temperature entered-in-error
    "bmd": ["unsupported_code"],
    "unsat": ["unsupported_code"],
    "decimal": ["unsupported_code"],
    **{s: ["unsupported_code"] for s in (
        "10minute-apgar-score", "1minute-apgar-score", "20minute-apgar-score", "2minute-apgar-score",
        "5minute-apgar-score", "656", "abdo-tender", "alcohol-type", "bgpanel", "bloodgroup",
        "clinical-gender", "date-lastmp", "ekg", "example-TPMT-diplotype", "example-TPMT-haplotype-one",
        "example-TPMT-haplotype-two", "example-diplotype1", "example-genetics-1", "example-genetics-2",
        "example-genetics-3", "example-genetics-4", "example-genetics-5", "example-genetics-brcapat",
        "example-haplotype1", "example-haplotype2", "example-phenotype", "eye-color", "f001", "f002",
        "f003", "f004", "f005", "f203", "f204", "f205", "f206", "gcs-qa", "glasgow", "herd1", "rhstatus",
        "secondsmoke", "trachcare", "vomiting", "vp-oyster")},
}


@pytest.fixture(scope="module")
def examples(spark: SparkSession, base_settings: Settings) -> dict[str, tuple[list, list]]:
    files = sorted(EXAMPLES.glob("Observation-*.json"))
    assert len(files) == 64, f"expected the 64 official examples in {EXAMPLES}, found {len(files)}"
    t = D(2026, 1, 1)
    rows = [(f.stem.removeprefix("Observation-").encode(), f.read_bytes(), "t", 0, i, t, 0, t, t.date())
            for i, f in enumerate(files)]
    p = parse_observations(spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA),
                           ParseRules.from_settings(base_settings)).cache()
    out: dict[str, tuple[list, list]] = {f.stem.removeprefix("Observation-"): ([], []) for f in files}
    for r in accepted(p).collect():
        out[r["observation_id"]][0].append(r)
    for r in rejected(p).collect():
        out[r["kafka_key"]][1].append(r)
    return out


def test_every_example_is_classified_by_this_test() -> None:
    stems = {Path(f).stem.removeprefix("Observation-") for f in EXAMPLES.glob("Observation-*.json")}
    assert stems == set(ACCEPTED) | set(QUARANTINED)


@pytest.mark.parametrize("stem", sorted(ACCEPTED))
def test_vital_sign_example_accepted_with_exact_values(examples: dict, stem: str) -> None:
    got = sorted((r["loinc"], r["vital"], r["value"], r["unit"], r["effective_time"], r["patient_id"])
                 for r in examples[stem][0])
    want = sorted((*v, "example") for v in ACCEPTED[stem])
    assert [g[:2] + g[3:] for g in got] == [w[:2] + w[3:] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[2] == pytest.approx(w[2], rel=1e-12)


@pytest.mark.parametrize("stem", sorted(QUARANTINED))
def test_other_example_quarantined_with_reason(examples: dict, stem: str) -> None:
    acc, rej = examples[stem]
    assert sorted(r["reason"] for r in rej) == sorted(QUARANTINED[stem])
    assert all(r["detail"] and r["raw"] for r in rej)
    if stem not in ACCEPTED:
        assert acc == []
