"""The adversarial corpus (tests/adversarial/cases) through the silver parser.

All cases are parsed in one DataFrame (one Spark job): bronze rows as Kafka gives them, with
the broker's LogAppendTime = now as arrival time and one offset per case; the rows are then
grouped by offset and each case is checked against its ``expect`` (tests/adversarial/README.md).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import SparkSession

from tests.adversarial.corpus import CASES_DIR, TOPIC, Case, collapse_replacements, load_cases
from vitalwatch.config import Settings
from vitalwatch.fhir.parse import (
    IGNORED,
    REASONS,
    TIME_BOUND_REASONS,
    ParseRules,
    parse_observations,
)
from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA

CASE_NAMES = sorted(p.stem for p in CASES_DIR.glob("*.yaml"))
LOG_APPEND_TIME = 1
# Characters a quarantine detail must never carry (it is shown on dashboards and in logs):
# control (C0, C1), format (bidi marks and overrides, zero-width), lone surrogates, line and
# paragraph separators.
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def unsafe_chars(s: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in s if unicodedata.category(c) in UNSAFE_CATEGORIES]


class Parsed:
    """The corpus, its bronze arrival time and the parser's rows by case name (or the error)."""

    def __init__(self, cases: list[Case], now: datetime, rows: dict[str, list] | None,
                 error: BaseException | None) -> None:
        self.cases = {c.name: c for c in cases}
        self.now = now
        self.rows = rows or {}
        self.error = error


@pytest.fixture(scope="module")
def parsed_corpus(spark: SparkSession, base_settings: Settings) -> Parsed:
    now = datetime.now(UTC).replace(microsecond=0)
    cases = load_cases(now)
    assert [c.name for c in cases] == CASE_NAMES
    rows = [(c.key, c.value, TOPIC, 0, offset, now, LOG_APPEND_TIME, now, now.date())
            for offset, c in enumerate(cases)]
    bronze = spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA)
    try:
        out = parse_observations(bronze, ParseRules.from_settings(base_settings)).collect()
    except Exception as e:  # reported by test_whole_corpus_parses_in_one_job, and by every case
        return Parsed(cases, now, None, e)
    by_offset: dict[int, list] = {i: [] for i in range(len(cases))}
    for r in out:
        by_offset[r["offset"]].append(r)
    return Parsed(cases, now, {c.name: by_offset[i] for i, c in enumerate(cases)}, None)


def test_corpus_loads_without_spark() -> None:
    cases = load_cases()
    assert len(cases) >= 45
    assert all(c.description and "\n" not in c.description for c in cases)
    assert all(set(c.quarantine) <= set(REASONS) for c in cases), "expected reasons must be known"
    assert {c.name for c in cases if c.value is None} == {"empty_null_value"}


def test_whole_corpus_parses_in_one_job(parsed_corpus: Parsed) -> None:
    assert parsed_corpus.error is None, f"the parser raised on the corpus: {parsed_corpus.error!r}"
    missing = [n for n, rows in parsed_corpus.rows.items() if not rows]
    assert not missing, f"messages without any output row: {missing}"


def _summary(rows: list) -> list[tuple]:
    return [(r["reason"], r["vital"], r["resource_type"], r["observation_id"], r["patient_id"],
             (r["detail"] or "")[:160]) for r in rows]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(parsed_corpus: Parsed, name: str) -> None:
    assert parsed_corpus.error is None, f"the parser raised on the corpus: {parsed_corpus.error!r}"
    case = parsed_corpus.cases[name]
    rows = parsed_corpus.rows[name]
    accepted = [r for r in rows if r["reason"] is None]
    quarantined = [r for r in rows if r["reason"] is not None and r["reason"] != IGNORED]
    ignored = [r for r in rows if r["reason"] == IGNORED]

    got = {
        "silver": dict(Counter(r["vital"] for r in accepted)),
        "quarantine": dict(Counter(r["reason"] for r in quarantined)),
        "ignored": dict(Counter(r["resource_type"] for r in ignored)),
        "untimely": sum(1 for r in quarantined if r["reason"] in TIME_BOUND_REASONS and r["value_ok"]),
    }
    want = {"silver": case.silver, "quarantine": case.quarantine, "ignored": case.ignored,
            "untimely": case.untimely}
    assert got == want, f"{case.description}\nrows: {_summary(rows)}"

    # every rejection names a known reason and says something about it
    for r in quarantined + ignored:
        assert r["reason"] in REASONS or r["reason"] == IGNORED, r["reason"]
        assert r["detail"] and r["detail"].strip(), f"empty detail for {r['reason']}"
    # quarantine details are safe to show: no control, bidi or line-separator characters
    for r in quarantined:
        bad = unsafe_chars(r["detail"])
        assert not bad, f"detail of {r['reason']} carries {bad}: {r['detail']!r}"
    for reason, text in case.detail_contains.items():
        details = [r["detail"] for r in quarantined if r["reason"] == reason]
        assert any(text in d for d in details), f"no {reason} detail contains {text!r}: {details}"

    # accepted values are complete, finite and in time
    latest = parsed_corpus.now + timedelta(minutes=10)
    for r in accepted:
        for col in ("vital", "value", "unit", "patient_id", "observation_id", "effective_time"):
            assert r[col] is not None, f"accepted row without {col}"
        assert math.isfinite(r["value"])
        t = r["effective_time"].astimezone(UTC)  # collected as local time
        assert datetime(1900, 1, 1, tzinfo=UTC) <= t <= latest
    for col in ("patient_id", "observation_id"):
        if col in case.expect:
            assert {r[col] for r in accepted} == {str(case.expect[col])}
    for vital, value in (case.expect.get("values") or {}).items():
        got_values = [r["value"] for r in accepted if r["vital"] == vital]
        assert got_values and all(math.isclose(v, float(value), rel_tol=1e-6) for v in got_values), \
            f"{vital}: {got_values} != {value}"

    # the raw message is kept exactly once (the silver stage puts it on the first quarantine row)
    carriers = [r for r in rows if r["raw"] is not None]
    if case.value is None:
        assert not carriers, "a null Kafka value has no raw text"
    else:
        assert len(carriers) == 1, f"{len(carriers)} rows carry raw"
        if case.is_utf8:
            assert carriers[0]["raw"] == case.raw_text()
        else:  # Java and Python may differ in how many U+FFFD replace one malformed sequence
            assert collapse_replacements(carriers[0]["raw"]) == collapse_replacements(case.raw_text())
