"""Property test of the silver parser: valid FHIR messages, randomly broken, never crash it,
never lose a message and never let a bad value, id or time into silver.

A Spark job costs seconds here (the parser's plan is large), so one Hypothesis example is a
batch of messages parsed in one DataFrame, and every message of the batch is checked. Shrinking
is off (each step would be a Spark job): a failure lists every offending message of the batch
with its rows, and ``print_blob`` gives the example to reproduce it with ``@reproduce_failure``.
More examples: ``VITALWATCH_PROPERTY_EXAMPLES=20``. Generation is derandomized (the seed comes
from this test's source), so CI sees the same messages on every run; only their time stamps
move with the clock (relative to the import).

Checked for every message: the parse completes; the message gives at least one row; a
rejection has a reason of REASONS (or IGNORED) and a detail; exactly one row carries the raw
message; an accepted value is complete, finite, within its vital's limits and its time within
[1900-01-01, arrival + 10 min]; accepted ids are FHIR ids or printable identifiers (no control,
format, surrogate or line-separator character) made of the message's own text, never altered.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from vitalwatch.config import Settings
from vitalwatch.fhir.catalogue import load_catalogue
from vitalwatch.fhir.parse import IGNORED, REASONS, ParseRules, parse_observations
from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA

BATCH = 60
EXAMPLES = int(os.environ.get("VITALWATCH_PROPERTY_EXAMPLES", "4"))
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
SKEW = timedelta(minutes=10)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


# -- valid messages to start from -----------------------------------------------------------
# Times are relative to the import (fixed, so generation does not depend on the clock); the
# arrival time of the parse is later, so they stay in the past.
NOW = datetime.now(UTC).replace(microsecond=0)


def _t(minutes_ago: int) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _obs(code: str, value: float, unit: str, oid: str, **extra: Any) -> dict:
    o: dict[str, Any] = {
        "resourceType": "Observation", "id": oid, "meta": {"versionId": "1"}, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/pat-1"}, "effectiveDateTime": _t(5),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}
    o.update(extra)
    return o


def _bp(oid: str) -> dict:
    o = _obs("85354-9", 0, "", oid)
    del o["valueQuantity"]
    o["component"] = [{"code": {"coding": [{"system": LOINC, "code": c}]},
                       "valueQuantity": {"value": v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}}
                      for c, v in (("8480-6", 128), ("8462-4", 84))]
    return o


def _transaction() -> dict:
    pu = "urn:uuid:5b1f7c2e-3d4a-4e8b-9c1d-2a3b4c5d6e7f"
    o = _obs("8867-4", 88, "/min", "tx-hr", subject={"reference": pu}, device={"reference": "Device/mon-12"})
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pu, "resource": {"resourceType": "Patient", "id": "pat-2",
                                     "identifier": [{"system": "urn:mrn", "value": "MRN-2"}]},
         "request": {"method": "PUT", "url": "Patient/pat-2"}},
        {"fullUrl": "urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100", "resource": o,
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:1f0e0d0c-0b0a-4908-8706-050403020100", "resource": _bp("tx-bp"),
         "request": {"method": "POST", "url": "Observation"}}]}


def base_messages() -> list[dict]:
    return [
        _obs("8867-4", 72, "/min", "hr-1"),
        _obs("9279-1", 16, "/min", "rr-1"),
        _obs("59408-5", 97, "%", "spo2-1"),
        _obs("8310-5", 98.6, "[degF]", "temp-1"),
        _obs("8331-1", 37.1, "Cel", "temp-2", effectivePeriod={"start": _t(6)}),
        _obs("29463-7", 70.5, "kg", "wt-1", subject={"identifier": {"system": "urn:mrn", "value": "MRN-1"}}),
        _obs("8302-2", 172, "cm", "ht-1"),
        _obs("39156-5", 23.8, "kg/m2", "bmi-1"),
        _obs("8478-0", 93, "mm[Hg]", "map-1"),
        _bp("bp-1"),
        _transaction(),
    ]


# -- mutations ------------------------------------------------------------------------------
SPECIAL_CHARS = (
    [chr(c) for c in range(0x00, 0x20)] + ["\x7f", "\x85", "\x9b", "\xa0", "\xad"]
    + ["\u200b", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
       "\u2028", "\u2029", "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff", "\ufffd", "\ue000",
       "\uff11", "\u0661", "\ud800", "\udfff", "\U0001f600", "\U000e0001", " ", "/", "|", "#", "\\",
       '"', "'", "%", "\n\n"])
# line terminators (regex "$" matches before a final one), blanks, bidi, zero-width, NUL, surrogate
SUFFIXES = ["\n", "\r\n", "\r", "\x85", "\u2028", "\u2029", " ", "\t", "\u202e", "\u200b", "\x00", "\ud800"]
special_text = st.lists(st.one_of(st.sampled_from(SPECIAL_CHARS), st.characters()), min_size=1,
                        max_size=4).map("".join)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8), special_text)
json_values = st.recursive(json_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(st.sampled_from(["value", "code", "a", "reference", "id"]),
                                                kids, max_size=3)), max_leaves=6)
NUMBERS = [0, -0.0, -1, -72, 1e308, -1e308, 5e-324, 2 ** 63, 2 ** 64 + 1, 10 ** 30, 1e-7, 299.999, 300.0001,
           "NaN", "Infinity", "-Infinity", "1e400", "72", "", None, True, [72], {"value": 72}]
TIMES = ["{now+1d}", "{now+11m}", "{now+9m}", "{now-1h}", "1899-12-31T23:59:59Z", "1900-01-01T00:00:00Z",
         "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2024", "2024-02",
         "2024-02-30", "2024-02-29", "2024-13-01T00:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T10:00:00",
         "2025-01-01T10:00:00+14:00", "2025-01-01T10:00:00-12:00", "2025-01-01T10:00:00+25:00",
         "2025-01-01T10:00Z", "2025-01-01T10:00:00.123456789Z", "2025-01-01t10:00:00z", "yesterday",
         "+12025-01-01T00:00:00Z", "2025-01-01T10:00:00Z\n", " 2025-01-01T10:00:00Z", "", 1735689600000]
RESOURCE_TYPES = ["Observation", "observation", "Bundle", "Patient", "Encounter", "MessageHeader", "",
                  None, "Observation\u202e", "Obs\u200bervation", 7, ["Observation"]]
STATUSES = ["final", "amended", "corrected", "preliminary", "registered", "cancelled", "entered-in-error",
            "unknown", "FINAL", "", None, 1]
CODES = ["8867-4", "8480-6", "8462-4", "85354-9", "8310-5", "2708-6", "2339-0", "8867-4 ", "88674", "",
         None, "8459-0", "85353-1", "9279-1", "29463-7"]
UNITS = ["/min", "{beats}/min", "/s", "Cel", "[degF]", "K", "%", "mm[Hg]", "kPa", "kg", "[lb_av]", "g",
         "", None, "mmHg", "\u00b0C", 12]
SYSTEMS = [LOINC, "http://loinc.org/", "http://snomed.info/sct", "", None, "LOINC"]
BUNDLE_TYPES = ["batch", "transaction", "collection", "searchset", "history", "message", "document",
                "transaction-response", "", None]
REFERENCES = ["Patient/p-9", "Patient/", "Patient/a b", "Patient/p1/_history/2", "urn:uuid:nowhere",
              "urn:uuid:5b1f7c2e-3d4a-4e8b-9c1d-2a3b4c5d6e7f", "Group/g1", "#p1", "http://x.example/fhir/Patient/42",
              "Patient?identifier=urn:mrn|1", "", None, "Patient/p1\n", "Patient/\uff11"]
ID_KEYS = {"id", "reference", "versionId", "fullUrl", "value", "effectiveDateTime", "start", "code"}
FIELD_CHOICES = {"resourceType": RESOURCE_TYPES, "status": STATUSES, "code": CODES, "unit": UNITS,
                 "system": SYSTEMS, "type": BUNDLE_TYPES, "reference": REFERENCES,
                 "effectiveDateTime": TIMES, "start": TIMES, "effectiveInstant": TIMES, "value": NUMBERS}


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every path (keys and indexes) to a value in the tree, the root included."""
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _set(root: Any, path: tuple, value: Any) -> Any:
    """``root`` with the value at ``path`` replaced by a copy of ``value`` (never shared: the
    drawn values come from module constants, and later mutations work in place)."""
    value = copy.deepcopy(value)
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _times(text: str) -> str:
    now = NOW
    for token, delta in (("{now+1d}", timedelta(days=1)), ("{now+11m}", timedelta(minutes=11)),
                         ("{now+9m}", timedelta(minutes=9)), ("{now-1h}", timedelta(hours=-1))):
        text = text.replace(token, (now + delta).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return text


@st.composite
def tree_mutation(draw, doc: Any) -> Any:
    """One change to the JSON tree ``doc`` (in place where possible; returns the new root)."""
    paths = _paths(doc)
    path = paths[draw(st.integers(0, len(paths) - 1))]
    here = _get(doc, path)
    kind = draw(st.sampled_from(["delete", "replace", "retype", "unicode", "unicode", "suffix", "suffix",
                                 "number", "field", "field", "field", "wrap", "duplicate_item"]))
    if kind == "delete" and path:
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        return doc
    if kind == "replace":
        return _set(doc, path, draw(json_values))
    if kind == "retype":
        options = [None, True, 0, 1.5, "x", [], {}, [here], {"value": here}, json.dumps(here)]
        return _set(doc, path, draw(st.sampled_from(options)))
    if kind == "unicode":  # mostly into ids, references, identifiers and times
        strings = [p for p in paths if isinstance(_get(doc, p), str)]
        keyed = [p for p in strings if p and p[-1] in ID_KEYS]
        if not strings:
            return doc
        pool = keyed if keyed and draw(st.integers(0, 3)) else strings
        p = pool[draw(st.integers(0, len(pool) - 1))]
        s = _get(doc, p)
        at = draw(st.one_of(st.just(len(s)), st.just(0), st.integers(0, len(s))))
        return _set(doc, p, s[:at] + draw(special_text) + s[at:])
    if kind == "suffix":  # an id, reference or time with one invisible character at its end
        keyed = [p for p in paths if p and p[-1] in ID_KEYS and isinstance(_get(doc, p), str)]
        if not keyed:
            return doc
        p = keyed[draw(st.integers(0, len(keyed) - 1))]
        return _set(doc, p, _get(doc, p) + draw(st.sampled_from(SUFFIXES)))
    if kind == "number":
        nums = [p for p in paths if isinstance(_get(doc, p), int | float) and not isinstance(_get(doc, p), bool)]
        if not nums:
            return doc
        p = nums[draw(st.integers(0, len(nums) - 1))]
        return _set(doc, p, draw(st.one_of(st.sampled_from(NUMBERS), st.floats(allow_nan=False, allow_infinity=False))))
    if kind == "field":
        fields = [p for p in paths if p and p[-1] in FIELD_CHOICES]
        if not fields:
            return doc
        p = fields[draw(st.integers(0, len(fields) - 1))]
        return _set(doc, p, draw(st.sampled_from(FIELD_CHOICES[p[-1]])))
    if kind == "wrap":
        return _set(doc, path, draw(st.sampled_from([[here], {"valueQuantity": here}, [here, copy.deepcopy(here)]])))
    if kind == "duplicate_item":
        arrays = [p for p in paths if isinstance(_get(doc, p), list) and _get(doc, p)]
        if arrays:
            a = _get(doc, arrays[draw(st.integers(0, len(arrays) - 1))])
            a.append(copy.deepcopy(a[draw(st.integers(0, len(a) - 1))]))
    return doc


@st.composite
def text_mutation(draw, text: str) -> str | bytes:
    """One change to the serialized message."""
    kind = draw(st.sampled_from(["truncate", "append_bytes", "duplicate_key", "wrap_array", "nest",
                                 "raw_unicode", "prefix", "nan_literal", "whitespace"]))
    if kind == "truncate":
        return text[:draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "append_bytes":
        return text.encode("utf-8", "surrogatepass") + draw(st.binary(min_size=1, max_size=8))
    if kind == "duplicate_key":
        keys = list(re.finditer(r'"([A-Za-z_]+)":', text))
        if not keys:
            return text
        m = keys[draw(st.integers(0, len(keys) - 1))]
        return text[:m.start()] + f'"{m.group(1)}":{json.dumps(draw(json_scalars))},' + text[m.start():]
    if kind == "wrap_array":
        return "[" + text + "]"
    if kind == "nest":
        n = draw(st.sampled_from([2, 30, 63, 64, 65, 200, 3000]))
        return '{"a":' * n + text + "}" * n
    if kind == "raw_unicode":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(special_text) + text[at:]
    if kind == "prefix":
        return draw(st.sampled_from(["\ufeff", " ", "\n", "\x00", "x", "[", "{"])) + text
    if kind == "nan_literal":
        return re.sub(r'"value": ?-?[0-9.e+]+', '"value":' + draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "0x10", "01", "+1", ".5"])), text, count=1)
    return draw(st.sampled_from(["", " ", "\r\n\t", "null", "{}", "[]", "0", '""']))


BASES = base_messages()


@st.composite
def messages(draw) -> bytes | None:
    doc = copy.deepcopy(BASES[draw(st.integers(0, len(BASES) - 1))])
    for _ in range(draw(st.integers(0, 2))):
        doc = draw(tree_mutation(doc))
    text = _times(json.dumps(doc, ensure_ascii=draw(st.booleans())))
    out: str | bytes = text
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2]))):  # most stay JSON, to reach the value rules
        if isinstance(out, bytes):
            break
        out = draw(text_mutation(out))
    if isinstance(out, str):
        out = out.encode("utf-8", "surrogatepass")
    return None if draw(st.integers(0, 99)) == 99 else out  # a null Kafka value, now and then


# -- the property -----------------------------------------------------------------------------
def _unprintable(s: str) -> bool:
    return any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in s)


def _id_ok(s: str | None) -> bool:
    return s is not None and (FHIR_ID.fullmatch(s) is not None or (len(s) <= 128 and s.strip() != ""
                                                                   and not _unprintable(s)))


def _raw_ok(raw: str | None, value: bytes | None) -> bool:
    if value is None:
        return raw is None
    try:
        return raw == value.decode("utf-8")
    except UnicodeDecodeError:  # U+FFFD where the bytes were malformed; Java and Python may count differently
        collapse = lambda s: re.sub("\ufffd+", "\ufffd", s)  # noqa: E731
        return raw is not None and collapse(raw) == collapse(value.decode("utf-8", "replace"))


def _strings(o: Any) -> list[str]:
    """Every string (value or key) in a JSON tree."""
    if isinstance(o, str):
        return [o]
    if isinstance(o, dict):
        return [*o.keys(), *(s for v in o.values() for s in _strings(v))]
    if isinstance(o, list):
        return [s for v in o for s in _strings(v)]
    return []


def _from_message(ident: str, strings: list[str]) -> bool:
    """Whether an id is the parser's own digest or made of strings of the message (an id, a
    part of a reference, or ``system|value`` of an identifier): never altered characters, never
    the text of a JSON number, boolean or object where FHIR requires a string."""
    if re.fullmatch(r"[0-9a-f]{64}", ident):
        return True
    return all(any(part in s for s in strings) for part in ident.split("|"))


def check_message(value: bytes | None, rows: list, arrival: datetime, limits: dict) -> list[str]:
    """What is wrong with one message's output rows (empty: nothing)."""
    bad: list[str] = []
    if not rows:
        return ["no output row"]
    strings: list[str] | None = None
    if any(r["reason"] is None for r in rows):
        try:  # accepted, so one strict JSON document
            strings = _strings(json.loads(value.decode("utf-8")))  # type: ignore[union-attr]
        except (ValueError, AttributeError) as e:
            bad.append(f"accepted values from a message Python cannot read as JSON: {e}")
    for r in rows:
        if r["reason"] is None:
            for col in ("vital", "value", "unit", "patient_id", "observation_id", "effective_time"):
                if r[col] is None:
                    bad.append(f"accepted row without {col}")
            if r["value"] is not None and r["vital"] in limits:
                lo, hi = limits[r["vital"]]
                if not (math.isfinite(r["value"]) and lo <= r["value"] <= hi):
                    bad.append(f"accepted {r['vital']} {r['value']} outside [{lo}, {hi}]")
            for col in ("patient_id", "observation_id"):
                if r[col] is not None and not _id_ok(r[col]):
                    bad.append(f"accepted {col} {r[col]!r} is neither a FHIR id nor printable")
                if r[col] is not None and strings is not None and not _from_message(r[col], strings):
                    bad.append(f"accepted {col} {r[col]!r} is no string of the message (altered, or read "
                               "from a number, boolean or object)")
            for col in ("version_id", "device_id"):  # optional, but never unprintable
                if r[col] is not None and (len(r[col]) > 128 or _unprintable(r[col])):
                    bad.append(f"accepted {col} {r[col]!r} is not printable")
            t = r["effective_time"]
            if t is not None and not (MIN_TIME <= t.astimezone(UTC) <= arrival + SKEW):
                bad.append(f"accepted effective_time {t} outside [1900-01-01, arrival + 10 min]")
        elif r["reason"] not in REASONS and r["reason"] != IGNORED:
            bad.append(f"unknown reason {r['reason']!r}")
        elif not (r["detail"] or "").strip():
            bad.append(f"{r['reason']} without detail")
    carriers = [r for r in rows if r["raw"] is not None]
    if value is not None and len(carriers) != 1:
        bad.append(f"{len(carriers)} rows carry raw")
    elif carriers and not _raw_ok(carriers[0]["raw"], value):
        bad.append("raw differs from the message")
    return bad


class Parser:
    """The parser on this session's Spark (a short repr: Hypothesis prints its arguments)."""

    def __init__(self, spark: SparkSession, rules: ParseRules) -> None:
        self.spark, self.rules = spark, rules

    def __repr__(self) -> str:
        return "Parser()"

    def parse(self, values: list[bytes | None], arrival: datetime) -> dict[int, list]:
        """All ``values`` in one DataFrame (one Spark job): their output rows by offset."""
        rows = [(b"k", v, "vitals.observations", 0, i, arrival, 1, arrival, arrival.date())
                for i, v in enumerate(values)]
        out = parse_observations(self.spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA), self.rules).collect()
        by_offset: dict[int, list] = {i: [] for i in range(len(values))}
        for r in out:
            by_offset[r["offset"]].append(r)
        return by_offset


@pytest.fixture(scope="module")
def parser(spark: SparkSession, base_settings: Settings) -> Parser:
    return Parser(spark, ParseRules.from_settings(base_settings))


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # the failing batch, when printed
@given(batch=st.lists(messages(), min_size=BATCH, max_size=BATCH))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, print_blob=True, database=None,
          phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_broken_messages_never_crash_lose_or_leak(parser: Parser, batch: list[bytes | None]) -> None:
    values = [json.dumps(m).encode() for m in BASES] + batch  # the unbroken ones too
    arrival = datetime.now(UTC).replace(microsecond=0)
    by_offset = parser.parse(values, arrival)  # raises if the parse does
    limits = {v.name: (v.min, v.max) for v in load_catalogue().vitals.values()}
    problems = []
    for i, v in enumerate(values):
        bad = check_message(v, by_offset[i], arrival, limits)
        if i < len(BASES) and any(r["reason"] is not None and r["reason"] != IGNORED for r in by_offset[i]):
            bad.append("an unbroken base message was not accepted")
        if bad:
            shown = None if v is None else v[:400]
            rows_shown = [(r["reason"], r["vital"], r["observation_id"], r["patient_id"], (r["detail"] or "")[:80])
                          for r in by_offset[i]]
            problems.append(f"message {i}: {bad}\n  value: {shown!r}\n  rows: {rows_shown}")
    assert not problems, f"{len(problems)} of {len(values)} messages broke a property:\n" + "\n".join(problems)
