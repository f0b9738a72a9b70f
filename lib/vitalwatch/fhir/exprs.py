"""What every parse step shares: the rules it applies (:class:`ParseRules`), the catalogue as
Spark literals, and small expression helpers that keep the plan small.

Each step is its own projection over named columns. Spark columns are expression trees, so
reusing a Python Column object copies its whole tree; written as one expression the parser
was a 288 KB plan that took about 0.9 s to plan per micro-batch. The optimizer keeps these
steps apart wherever collapsing them would copy a non-trivial expression (CollapseProject).
Struct fields are built by name (:func:`extend`), never with ``withField``: Spark simplifies a
field read of ``withField`` by copying the expression, and chained steps then grew the plan
to megabytes (measured: 1.5 MB, 13 s to plan 300 messages). ``tests/unit/test_parse_plan.py``
guards the plan's size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.fhir.catalogue import Catalogue, load_catalogue
from vitalwatch.fhir.reasons import REASONS

LOINC = "http://loinc.org"
LOG_APPEND_TIME = 1  # Kafka's timestampType for a broker-set time
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}\z"  # \z: Java's $ also matches before a final line break
UNPRINTABLE = r"[\p{C}\p{Zl}\p{Zp}]"  # control, format (bidi), private-use, unassigned, surrogates, line separators
RESOURCE_TYPE = r"^[A-Z][A-Za-z]{0,63}\z"  # a FHIR resource type name
JSON_OPTIONS = {"columnNameOfCorruptRecord": "_corrupt_record", "allowSingleQuotes": "false"}


@dataclass(frozen=True)
class ParseRules:
    """The configurable input rules (``fhir.*`` and the vitals catalogue), as plain values."""

    accepted_statuses: tuple[str, ...]
    bundle_types: tuple[str, ...]
    catalogue: Catalogue
    min_effective_time: datetime
    max_clock_skew_ms: int
    max_message_bytes: int
    max_bundle_entries: int
    max_json_depth: int
    max_identifier_length: int

    @classmethod
    def from_settings(cls, settings: Settings, catalogue: Catalogue | None = None) -> ParseRules:
        f = settings.fhir
        return cls(tuple(f.accepted_statuses), tuple(f.bundle_types), catalogue or load_catalogue(),
                   f.min_effective_time, f.max_clock_skew_ms, f.max_message_bytes, f.max_bundle_entries,
                   f.max_json_depth, f.max_identifier_length)


# -- the catalogue as Spark literals ------------------------------------------------------
def vital_map(cat: Catalogue) -> Column:
    """LOINC code → (name, canonical unit, physiological min and max)."""
    kv: list[Column] = []
    for code, v in cat.vitals.items():
        kv += [F.lit(code), F.struct(F.lit(v.name).alias("name"), F.lit(v.unit).alias("unit"),
                                     F.lit(float(v.min)).alias("min"), F.lit(float(v.max)).alias("max"))]
    return F.create_map(*kv)


def conversion_map(cat: Catalogue) -> Column:
    """``code|unit`` → (factor, offset) to the canonical unit (identity for the canonical one)."""
    kv: list[Column] = []
    for code, v in cat.vitals.items():
        for unit, c in {v.unit: None, **v.convert}.items():
            factor, offset = (1.0, 0.0) if c is None else (c.factor, c.offset)
            kv += [F.lit(f"{code}|{unit}"),
                   F.struct(F.lit(float(factor)).alias("factor"), F.lit(float(offset)).alias("offset"))]
    return F.create_map(*kv)


def codings(cc: Column) -> Column:
    """A CodeableConcept's codings, never null (so filters need no null check)."""
    return F.coalesce(cc.getField("coding"), F.array())


# -- small expression helpers ------------------------------------------------------------
def with_cols(df: DataFrame, **cols: Column) -> DataFrame:
    """``df`` plus the named ``cols``, in one projection (one step of the plan)."""
    return df.select("*", *[c.alias(n) for n, c in cols.items()])


def extend(e: Column, fields: tuple[str, ...], **new: Column) -> Column:
    """``e``'s ``fields`` plus the ``new`` ones, as a struct (inside an array lambda)."""
    return F.struct(*[e.getField(f).alias(f) for f in fields], *[c.alias(n) for n, c in new.items()])


def shown(s: Column | str, n: int = 80) -> Column:
    """A value for a detail string: unprintable characters as '?', at most ``n`` characters."""
    s = F.col(s) if isinstance(s, str) else s
    cut = F.regexp_replace(F.substring(s, 1, n), UNPRINTABLE, "?")
    return F.when(F.length(s) > n, F.concat(cut, F.lit("…"))).otherwise(cut)


def is_fhir_id(s: Column) -> Column:
    """FHIR id syntax (false, not null, for a missing value)."""
    return F.coalesce(s.rlike(FHIR_ID), F.lit(False))


def is_printable(s: Column, max_len: int) -> Column:
    """Non-blank, at most ``max_len`` characters, nothing unprintable (false for null)."""
    return F.coalesce((F.length(s) <= max_len) & (F.trim(s) != "") & ~s.rlike(UNPRINTABLE), F.lit(False))


def describe(reason: Column) -> Column:
    """The :data:`REASONS` text of a reason: the detail when nothing more specific is known."""
    return F.create_map(*[x for k, d in REASONS.items() for x in (F.lit(k), F.lit(d))])[reason]
