"""The silver parser on hand-made messages: expected rows written out by hand."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from vitalwatch.config import Settings
from vitalwatch.fhir.parse import (
    REASONS,
    ParseRules,
    accepted,
    dedupe_key,
    ignored,
    parse_observations,
    rejected,
)
from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def bronze(spark: SparkSession, values: list[str | None]) -> DataFrame:
    rows = [(b"p1", None if v is None else v.encode(), "vitals.observations", 0, i, T0, 0, T0, T0.date())
            for i, v in enumerate(values)]
    return spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA)


def obs(code: str, value: float | None = None, unit: str | None = "mm[Hg]", *, oid: str = "o1",
        components: list[tuple[str, float, str]] | None = None, **extra: object) -> dict:
    o: dict = {"resourceType": "Observation", "id": oid, "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
               "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-03-01T10:15:00+01:00"}
    if value is not None:
        o["valueQuantity"] = {"value": value, "system": "http://unitsofmeasure.org", "code": unit}
    if components:
        o["component"] = [{"code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                           "valueQuantity": {"value": v, "code": u}} for c, v, u in components]
    o.update(extra)
    return o


@pytest.fixture(scope="module")
def rules(base_settings: Settings) -> ParseRules:
    return ParseRules.from_settings(base_settings)


def parsed(spark: SparkSession, rules: ParseRules, msgs: list) -> DataFrame:
    values = [m if isinstance(m, str) or m is None else json.dumps(m) for m in msgs]
    return parse_observations(bronze(spark, values), rules)


def test_bp_panel_becomes_two_values_in_utc(spark: SparkSession, rules: ParseRules) -> None:
    msg = obs("85354-9", components=[("8480-6", 182.0, "mm[Hg]"), ("8462-4", 121.0, "mm[Hg]")])
    got = accepted(parsed(spark, rules, [msg])).select(
        "observation_id", "patient_id", "effective_time", "loinc", "vital", "value", "unit", "source_path")
    t = dt.datetime(2026, 3, 1, 9, 15)  # 10:15+01:00 in UTC
    expected = spark.createDataFrame(
        [("o1", "p1", t, "8480-6", "systolic_bp", 182.0, "mm[Hg]", "component[0]"),
         ("o1", "p1", t, "8462-4", "diastolic_bp", 121.0, "mm[Hg]", "component[1]")],
        got.schema)
    assertDataFrameEqual(got, expected)


def test_unit_conversions(spark: SparkSession, rules: ParseRules) -> None:
    msgs = [obs("8310-5", 101.3, "[degF]", oid="t"), obs("8480-6", 16.0, "kPa", oid="s"),
            obs("29463-7", 185.0, "[lb_av]", oid="w"), obs("8867-4", 72.0, "/min", oid="h")]
    got = accepted(parsed(spark, rules, msgs)).select("observation_id", "value", "unit")
    expected = spark.createDataFrame(
        [("t", (101.3 - 32) * 5 / 9, "Cel"), ("s", 16.0 * 7.50061683, "mm[Hg]"),
         ("w", 185 * 0.45359237, "kg"), ("h", 72.0, "/min")], got.schema)
    assertDataFrameEqual(got, expected, rtol=1e-9)


def test_bundle_entries_are_parsed_and_a_non_vital_entry_counted(spark: SparkSession, rules: ParseRules) -> None:
    b = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"fullUrl": "urn:uuid:a", "resource": obs("8867-4", 88.0, "/min", oid="hr1")},
        {"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Patient", "id": "p1"}},
        {"fullUrl": "urn:uuid:c", "resource": obs("59408-5", 93.0, "%", oid="sp1")},
    ]}
    p = parsed(spark, rules, [b])
    assertDataFrameEqual(accepted(p).select("observation_id", "vital", "value"),
                         spark.createDataFrame([("hr1", "heart_rate", 88.0), ("sp1", "spo2", 93.0)],
                                               "observation_id string, vital string, value double"))
    assert rejected(p).count() == 0, "a Bundle's other resources are not errors"
    assertDataFrameEqual(ignored(p).select("reason", "entry_index", "resource_type"),
                         spark.createDataFrame([("non_vital_resource", 1, "Patient")],
                                               "reason string, entry_index int, resource_type string"))


REJECTION_CASES: list[tuple[object, str]] = [
    ("{not json", "invalid_json"),
    ("", "empty_message"),
    (None, "empty_message"),
    ('{"id": "x"}', "not_a_fhir_resource"),
    ({"resourceType": "Bundle", "type": "document", "entry": []}, "unsupported_bundle_type"),
    ({"resourceType": "Bundle", "type": "batch", "entry": []}, "empty_bundle"),
    (obs("8867-4", 70.0, "/min", status="entered-in-error"), "status_not_accepted"),
    ({k: v for k, v in obs("8867-4", 70.0, "/min").items() if k != "subject"}, "missing_subject"),
    (obs("8867-4", 70.0, "/min", subject={"reference": "Group/g1"}), "subject_not_patient"),
    (obs("8867-4", 70.0, "/min", effectiveDateTime="2026-03"), "imprecise_effective_time"),
    (obs("8867-4", 70.0, "/min", effectiveDateTime="2026-03-01T10:00:00"), "effective_time_without_timezone"),
    (obs("8867-4", 70.0, "/min", effectiveDateTime="yesterday"), "invalid_effective_time"),
    ({k: v for k, v in obs("8867-4", 70.0, "/min").items() if k != "effectiveDateTime"}, "missing_effective_time"),
    (obs("2339-0", 5.1, "mmol/L"), "unsupported_code"),
    (obs("8867-4", 70.0, "/s"), "unit_not_convertible"),
    (obs("8867-4", 70.0, None), "missing_unit"),
    (obs("8867-4", 350.0, "/min"), "out_of_physiological_range"),
    (obs("8480-6", 35.0, "mm[Hg]"), "out_of_physiological_range"),
    (obs("8867-4", None, None, valueString="fast"), "value_not_quantity"),
    (obs("8867-4", None, None, dataAbsentReason={"text": "error"}), "no_measured_value"),
    (obs("8867-4", None, None, valueQuantity={"value": "high", "code": "/min"}), "fhir_type_error"),
    ('{"resourceType": "Observation", "id": "o1", "status": "fin', "invalid_json"),
    (obs("8867-4", None, None, valueQuantity={"code": "/min"}), "invalid_value"),
    (obs("8867-4", None, None, valueQuantity={"value": 20, "comparator": "<", "code": "/min"}), "value_has_comparator"),
]


@pytest.fixture(scope="module")
def rejection_rows(spark: SparkSession, rules: ParseRules) -> dict[int, list]:
    """All rejection cases parsed in one DataFrame (one Spark job), rows by Kafka offset."""
    p = parsed(spark, rules, [m for m, _ in REJECTION_CASES]).cache()
    out: dict[int, list] = {i: [] for i in range(len(REJECTION_CASES))}
    for r in p.collect():
        out[r["offset"]].append(r)
    return out


@pytest.mark.parametrize("case", range(len(REJECTION_CASES)), ids=[r for _, r in REJECTION_CASES])
def test_rejections_have_a_reason(rejection_rows: dict[int, list], case: int) -> None:
    message, reason = REJECTION_CASES[case]
    rows = rejection_rows[case]
    assert [r["reason"] for r in rows] == [reason], "exactly one row, rejected with this reason"
    assert reason in REASONS
    assert rows[0]["detail"]
    assert rows[0]["raw"] == (message if isinstance(message, str) or message is None else json.dumps(message))


def test_implausible_bp_quarantines_both_values(spark: SparkSession, rules: ParseRules) -> None:
    msg = obs("85354-9", components=[("8480-6", 80.0, "mm[Hg]"), ("8462-4", 95.0, "mm[Hg]")])
    p = parsed(spark, rules, [msg])
    assert accepted(p).count() == 0
    assert sorted((r["loinc"], r["reason"]) for r in rejected(p).collect()) == [
        ("8462-4", "implausible_blood_pressure"), ("8480-6", "implausible_blood_pressure")]


def test_one_bad_component_keeps_the_good_one(spark: SparkSession, rules: ParseRules) -> None:
    msg = obs("85354-9", components=[("8480-6", 420.0, "mm[Hg]"), ("8462-4", 95.0, "mm[Hg]")])
    p = parsed(spark, rules, [msg])
    assert [(r["vital"], r["value"]) for r in accepted(p).collect()] == [("diastolic_bp", 95.0)]
    assert [(r["loinc"], r["reason"]) for r in rejected(p).collect()] == [("8480-6", "out_of_physiological_range")]


def test_observation_without_id_gets_a_stable_content_id(spark: SparkSession, rules: ParseRules) -> None:
    o = obs("8867-4", 70.0, "/min")
    del o["id"]
    p = dedupe_key(parsed(spark, rules, [o, o, obs("8867-4", 71.0, "/min")]))
    keys = [r["dedupe_key"] for r in p.orderBy("offset").collect()]
    assert keys[0] == keys[1] != keys[2]


def test_new_version_of_an_observation_is_not_a_duplicate(spark: SparkSession, rules: ParseRules) -> None:
    v1 = obs("8867-4", 70.0, "/min", meta={"versionId": "1"})
    v2 = obs("8867-4", 75.0, "/min", meta={"versionId": "2"}, status="amended")
    keys = [r["dedupe_key"] for r in dedupe_key(parsed(spark, rules, [v1, v1, v2])).orderBy("offset").collect()]
    assert keys[0] == keys[1] != keys[2]


def test_patient_id_forms(spark: SparkSession, rules: ParseRules) -> None:
    msgs = [obs("8867-4", 70.0, "/min", oid="a", subject={"reference": "https://ehr.example/fhir/Patient/42/_history/3"}),
            obs("8867-4", 70.0, "/min", oid="b", subject={"identifier": {"system": "urn:mrn", "value": "MRN-7"}})]
    got = {r["observation_id"]: r["patient_id"] for r in accepted(parsed(spark, rules, msgs)).collect()}
    assert got == {"a": "42", "b": "MRN-7"}
