"""The adversarial FHIR corpus: one YAML file per case under ``cases/`` (see README.md).

Importable without Spark (only PyYAML and the standard library), so the same cases feed the
unit runner (tests/unit/test_adversarial_corpus.py, the parser on a DataFrame) and an
integration test that sends them through a real Kafka broker.

A case file holds ``description``, ``key`` (text or null), the message as exactly one of
``value`` (text, UTF-8 encoded), ``value_hex`` (raw bytes) or ``generate`` (a generator of
:data:`GENERATORS` with its parameters, for big inputs), optional ``tags`` and ``expect``.
Text in ``value`` (and generated messages) may hold time placeholders, substituted when the
corpus is loaded relative to ``now`` (UTC, default ``datetime.now(UTC)``):
``{{now}}``, ``{{now-30m}}``, ``{{now+1d}}`` (units s, m, h, d, w) → ``%Y-%m-%dT%H:%M:%SZ``;
append ``|date`` (``{{now-1d|date}}``) for a date alone (``%Y-%m-%d``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

CASES_DIR = Path(__file__).parent / "cases"
TOPIC = "vitals.observations"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_FORMAT = "%Y-%m-%d"
EXPECT_KEYS = {"silver", "quarantine", "ignored", "untimely", "detail_contains", "patient_id",
               "observation_id", "values"}
# Kafka's default message.max.bytes is about 1 MB: bigger cases need a broker/topic configured
# for them (or are sent only where the test says so); see Case.size and the "large" tag.
KAFKA_DEFAULT_MAX_BYTES = 1_048_588

_PLACEHOLDER = re.compile(r"\{\{now(?:([+-])(\d+)([smhdw]))?(\|date)?\}\}")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def substitute_times(text: str, now: datetime) -> str:
    """Replace every ``{{now±N<unit>[|date]}}`` in ``text`` by that time in UTC."""
    def one(m: re.Match) -> str:
        t = now
        if m.group(1):
            delta = timedelta(**{_UNITS[m.group(3)]: int(m.group(2))})
            t = now + delta if m.group(1) == "+" else now - delta
        return t.astimezone(UTC).strftime(DATE_FORMAT if m.group(4) else TIME_FORMAT)
    return _PLACEHOLDER.sub(one, text)


@dataclass
class Case:
    """One adversarial message and the outcome a hospital wants for it."""

    name: str
    description: str
    key: bytes | None
    value: bytes | None
    expect: dict[str, Any]
    tags: tuple[str, ...] = ()
    path: Path | None = field(default=None, repr=False)

    # -- the message ---------------------------------------------------------------------
    def message(self) -> tuple[bytes | None, bytes | None]:
        """The Kafka record to send: ``(key, value)`` as bytes (either may be None)."""
        return self.key, self.value

    def message_bytes(self) -> bytes | None:
        """The Kafka value as bytes (None for a null value)."""
        return self.value

    @property
    def size(self) -> int:
        return 0 if self.value is None else len(self.value)

    @property
    def kafka_sendable(self) -> bool:
        """Whether a broker with default limits accepts the record (about 1 MB)."""
        return self.size + (0 if self.key is None else len(self.key)) < KAFKA_DEFAULT_MAX_BYTES

    @property
    def is_utf8(self) -> bool:
        if self.value is None:
            return True
        try:
            self.value.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    def raw_text(self) -> str | None:
        """The value as the parser's ``raw`` column holds it: the UTF-8 text; where the value is
        not UTF-8, Spark (Java) puts U+FFFD for each malformed sequence, and Java and Python do
        not always agree on how many, so compare such text with :func:`collapse_replacements`."""
        if self.value is None:
            return None
        return self.value.decode("utf-8", errors="replace")

    # -- the expectation -----------------------------------------------------------------
    @property
    def silver(self) -> dict[str, int]:
        return dict(self.expect.get("silver") or {})

    @property
    def quarantine(self) -> dict[str, int]:
        return dict(self.expect.get("quarantine") or {})

    @property
    def ignored(self) -> dict[str, int]:
        return dict(self.expect.get("ignored") or {})

    @property
    def untimely(self) -> int:
        return int(self.expect.get("untimely") or 0)

    @property
    def detail_contains(self) -> dict[str, str]:
        return dict(self.expect.get("detail_contains") or {})

    @property
    def rows(self) -> int:
        """How many output rows the message should give."""
        return sum(self.silver.values()) + sum(self.quarantine.values()) + sum(self.ignored.values())


def collapse_replacements(s: str | None) -> str | None:
    """``s`` with each run of U+FFFD made one (see :meth:`Case.raw_text`)."""
    return None if s is None else re.sub("\ufffd+", "\ufffd", s)


# -- generators (big inputs) -----------------------------------------------------------------
def _observation(oid: str, when: str, code: str = "8867-4", value: float = 72, unit: str = "/min",
                 patient: str = "p1") -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                              "code": unit}}


def _dumps(o: Any) -> str:
    return json.dumps(o, separators=(",", ":"), ensure_ascii=True)


def gen_observation_bundle(now: datetime, entries: int, type: str = "batch") -> bytes:
    """A Bundle of ``entries`` valid heart-rate Observations (distinct ids and values)."""
    when = (now - timedelta(minutes=10)).strftime(TIME_FORMAT)
    es = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
           "resource": _observation(f"hr-{i}", when, value=40 + i % 100)} for i in range(entries)]
    return _dumps({"resourceType": "Bundle", "type": type, "entry": es}).encode()


def gen_empty_entry_bundle(now: datetime, entries: int, type: str = "batch") -> bytes:
    """A Bundle with ``entries`` empty entries (``{}``), small enough for the size limit."""
    body = ",".join(["{}"] * entries)
    return f'{{"resourceType":"Bundle","type":"{type}","entry":[{body}]}}'.encode()


def gen_deep_observation(now: datetime, depth: int) -> bytes:
    """A valid heart-rate Observation whose ``extension`` nests arrays so that the document's
    deepest nesting is exactly ``depth`` (the root object being level 1)."""
    o = _observation("deep-1", (now - timedelta(minutes=5)).strftime(TIME_FORMAT))
    base = _dumps(o)
    if depth < 5:  # the Observation itself nests 5 levels (category[0].coding[0])
        raise ValueError("depth must be at least 5")
    inner = depth - 1  # arrays under the root object
    return (base[:-1] + ',"extension":' + "[" * inner + "]" * inner + "}").encode()


def gen_deep_array(now: datetime, depth: int) -> bytes:
    """An Observation-looking object with ``depth`` nested arrays (a nesting attack)."""
    return ('{"resourceType":"Observation","extension":' + "[" * depth + "]" * depth + "}").encode()


def gen_padded_observation(now: datetime, size: int) -> bytes:
    """A valid heart-rate Observation padded with a ``note`` text to exactly ``size`` bytes."""
    o = _observation("big-1", (now - timedelta(minutes=5)).strftime(TIME_FORMAT))
    head = _dumps(o)[:-1] + ',"note":[{"text":"'
    tail = '"}]}'
    pad = size - len(head) - len(tail)
    if pad < 0:
        raise ValueError(f"size {size} is smaller than the Observation")
    out = (head + "x" * pad + tail).encode()
    assert len(out) == size
    return out


GENERATORS: dict[str, Callable[..., bytes]] = {
    "observation_bundle": gen_observation_bundle,
    "empty_entry_bundle": gen_empty_entry_bundle,
    "deep_observation": gen_deep_observation,
    "deep_array": gen_deep_array,
    "padded_observation": gen_padded_observation,
}


# -- loading ---------------------------------------------------------------------------------
class CorpusError(ValueError):
    pass


def _value_of(doc: dict, now: datetime, where: Path) -> bytes | None:
    given = [k for k in ("value", "value_hex", "generate") if k in doc]
    if len(given) != 1:
        raise CorpusError(f"{where}: exactly one of value, value_hex, generate (got {given})")
    k = given[0]
    if k == "value":
        v = doc["value"]
        if v is None:
            return None
        if not isinstance(v, str):
            raise CorpusError(f"{where}: value must be text or null")
        return substitute_times(v, now).encode("utf-8")
    if k == "value_hex":
        return bytes.fromhex("".join(str(doc["value_hex"]).split()))
    g = dict(doc["generate"])
    name = g.pop("name")
    if name not in GENERATORS:
        raise CorpusError(f"{where}: unknown generator {name!r} (known: {sorted(GENERATORS)})")
    return GENERATORS[name](now, **g)


def load_case(path: Path, now: datetime | None = None) -> Case:
    now = now or datetime.now(UTC)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise CorpusError(f"{path}: not a mapping")
    for k in ("description", "key", "expect"):
        if k not in doc:
            raise CorpusError(f"{path}: missing {k!r}")
    expect = doc["expect"] or {}
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        raise CorpusError(f"{path}: unknown expect keys {sorted(unknown)}")
    key = doc["key"]
    return Case(name=path.stem, description=str(doc["description"]).strip(),
                key=None if key is None else str(key).encode("utf-8"),
                value=_value_of(doc, now, path), expect=expect,
                tags=tuple(doc.get("tags") or ()), path=path)


def load_cases(now: datetime | None = None, directory: Path = CASES_DIR) -> list[Case]:
    """Every case of the corpus, sorted by name, placeholders resolved against ``now``."""
    now = now or datetime.now(UTC)
    return [load_case(p, now) for p in sorted(directory.glob("*.yaml"))]
