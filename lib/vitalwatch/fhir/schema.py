"""Spark schemas for the parts of FHIR R4 Observation and Bundle that vitalwatch reads.

A partial schema on purpose: ``from_json`` ignores fields it does not name, so unknown
extensions never break parsing, and the raw message stays in bronze and quarantine."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)


def _s(*fields: StructField) -> StructType:
    return StructType(list(fields))


def _f(name: str, dtype) -> StructField:
    return StructField(name, dtype, True)


CODING = _s(_f("system", StringType()), _f("code", StringType()), _f("display", StringType()))
CODEABLE_CONCEPT = _s(_f("coding", ArrayType(CODING)), _f("text", StringType()))
QUANTITY = _s(_f("value", DoubleType()), _f("unit", StringType()), _f("system", StringType()),
              _f("code", StringType()), _f("comparator", StringType()))
IDENTIFIER = _s(_f("system", StringType()), _f("value", StringType()))
REFERENCE = _s(_f("reference", StringType()), _f("display", StringType()), _f("identifier", IDENTIFIER))
PERIOD = _s(_f("start", StringType()), _f("end", StringType()))
META = _s(_f("versionId", StringType()), _f("lastUpdated", StringType()))

_VALUE_FIELDS = (
    _f("valueQuantity", QUANTITY),
    _f("valueString", StringType()),
    _f("valueBoolean", BooleanType()),
    _f("valueInteger", LongType()),
    _f("valueCodeableConcept", CODEABLE_CONCEPT),
    _f("dataAbsentReason", CODEABLE_CONCEPT),
)

COMPONENT = _s(_f("code", CODEABLE_CONCEPT), *_VALUE_FIELDS)

OBSERVATION_FIELDS: tuple[StructField, ...] = (
    _f("resourceType", StringType()),
    _f("id", StringType()),
    _f("meta", META),
    # Read as text (any JSON value), parsed with IDENTIFIERS only where an id is needed: a
    # Bundle's or a QuestionnaireResponse's ``identifier`` is one object, an Observation's an
    # array, and one schema that guessed wrong would reject the whole message.
    _f("identifier", StringType()),
    _f("status", StringType()),
    _f("code", CODEABLE_CONCEPT),
    _f("subject", REFERENCE),
    _f("device", REFERENCE),
    _f("effectiveDateTime", StringType()),
    _f("effectiveInstant", StringType()),
    _f("effectivePeriod", PERIOD),
    *_VALUE_FIELDS,
    _f("component", ArrayType(COMPONENT)),
)
IDENTIFIERS = ArrayType(IDENTIFIER)

# One resource (an Observation, or any other type read for its type, id and identifier), with
# the corrupt-record column that says it did not fit these types.
RESOURCE = StructType([*OBSERVATION_FIELDS, _f("_corrupt_record", StringType())])
OBSERVATION = StructType(list(OBSERVATION_FIELDS))

# A Bundle entry's resource stays text here and is read with RESOURCE on its own, so one entry
# of the wrong shape is that entry's rejection, not the whole Bundle's.
ENTRY = _s(_f("fullUrl", StringType()), _f("resource", StringType()))

# One schema reads both message shapes: an Observation, or a Bundle of resources.
MESSAGE = StructType([
    *OBSERVATION_FIELDS,
    _f("type", StringType()),
    _f("entry", ArrayType(ENTRY)),
    _f("_corrupt_record", StringType()),
])

# The same with every entry's resource typed: one read for a message that fits it (most do).
MESSAGE_TYPED = StructType([
    *OBSERVATION_FIELDS,
    _f("type", StringType()),
    _f("entry", ArrayType(_s(_f("fullUrl", StringType()), _f("resource", OBSERVATION)))),
    _f("_corrupt_record", StringType()),
])
