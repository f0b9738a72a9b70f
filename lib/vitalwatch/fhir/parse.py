"""FHIR R4 Observations (single or in Bundles) → one row per measured vital-sign value.

Pure DataFrame → DataFrame functions built from Spark-native expressions (and one JVM UDF,
:mod:`vitalwatch.jvm`'s strict JSON check; no Python UDF, no per-row Python), streaming-safe
(no window or shuffle), so the same code parses a batch and a micro-batch. Every message,
resource or value that cannot be accepted yields a row with a machine-readable ``reason``
(see :data:`REASONS`) instead of disappearing; a Bundle's non-vital resources yield one row
each with reason :data:`IGNORED` (counted per type, not quarantined).

A message becomes one row per resource, then one row per value. Its raw payload rides on its
first row only, never copied once per entry, and the Bundle's Patient entries travel with each
entry to resolve references (FHIR R4 Bundle, "Resolving references in Bundles").

Rules (docs/silver-rules.md; reasons in :data:`REASONS`):
- the Kafka value is one strict JSON document (UTF-8, no duplicate keys, nothing after it,
  ``fhir.max_json_depth``), at most ``fhir.max_message_bytes``; a Bundle has at most
  ``fhir.max_bundle_entries`` entries and a type of ``fhir.bundle_types``;
- status one of ``fhir.accepted_statuses``;
- the subject is a Patient: a ``Patient/<id>`` reference, a reference resolved to a Patient
  entry of the Bundle (its id, else its first identifier), or a subject identifier;
- ids (observation, patient, device, version) follow FHIR id syntax; identifier values and
  fallback ids are printable (no control or bidi characters), at most ``fhir.max_identifier_length``;
- effective time: effectiveDateTime, effectiveInstant or effectivePeriod.start. A full
  dateTime must carry a zone (FHIR invariant) and is converted to UTC; a date alone is
  accepted at 00:00 UTC with ``effective_precision = 'day'``; year or year-month is too coarse;
  it must lie within [``fhir.min_effective_time``, arrival + ``fhir.max_clock_skew``], arrival
  being the broker's LogAppendTime (else the ingest time), never the device's clock;
- a value is accepted if its LOINC code is in conf/vitals.yaml, it is a finite Quantity without
  a comparator, its unit is the canonical one or has a defined conversion, the canonical
  value lies within the physiological limits, and the resource gives that vital only once; a
  blood-pressure panel whose diastolic is not below its systolic has both values quarantined.

Where things are: this module is the chain (:func:`parse_observations`) and what the stages
select from its output; the steps are in :mod:`~vitalwatch.fhir.message` (the message, its
resources), :mod:`~vitalwatch.fhir.resource` (subject, ids, time, codes),
:mod:`~vitalwatch.fhir.values` (each value) and :mod:`~vitalwatch.fhir.verdict` (verdicts,
output rows); :mod:`~vitalwatch.fhir.exprs` holds the rules and shared expressions,
:mod:`~vitalwatch.fhir.reasons` the reasons and table columns (re-exported here, with
:class:`~vitalwatch.fhir.exprs.ParseRules`, for the pipeline and the tests).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vitalwatch.fhir import message, resource, values, verdict
from vitalwatch.fhir.exprs import ParseRules
from vitalwatch.fhir.reasons import (
    IGNORED,
    QUARANTINE_COLUMNS,
    REASONS,
    SILVER_COLUMNS,
    TIME_BOUND_REASONS,
)

__all__ = [
    "IGNORED", "QUARANTINE_COLUMNS", "REASONS", "SILVER_COLUMNS", "TIME_BOUND_REASONS", "ParseRules",
    "accepted", "alertable", "dedupe_key", "ignored", "parse_observations", "rejected", "untimely",
]


def parse_observations(bronze: DataFrame, rules: ParseRules) -> DataFrame:
    """Bronze rows → one row per measured value (``reason`` null), per rejection (a reason of
    :data:`REASONS`), or per ignored non-vital Bundle resource (``reason`` = :data:`IGNORED`).
    The raw message is on one row of each message (its first; the silver stage keeps it on the
    message's first quarantine row).

    Needs the bronze columns ``key, value, topic, partition, offset, kafka_timestamp,
    ingest_time`` (``value``/``key`` binary or string) and, where the broker's time type is
    known, ``kafka_timestamp_type``. Each step is one projection over named columns (see
    :mod:`vitalwatch.fhir.exprs` for why), in the order a reader checks a message."""
    return (
        bronze
        # 1. the message
        .transform(message.kafka_columns)
        .transform(message.json_verdict, rules)
        .transform(message.read_json)
        .transform(message.message_fields)
        .transform(message.entry_errors)
        .transform(message.message_reason, rules)
        # 2. its resources, one row each
        .transform(message.resource_array)
        .transform(message.bundle_patients)
        .transform(message.resource_rows)
        # 3. each resource's subject, ids and time
        .transform(resource.subject_patient)
        .transform(resource.observation_identity)
        .transform(resource.first_bad_id, rules)
        .transform(resource.effective_precision)
        .transform(resource.effective_bounds, rules)
        # 4. its codes and values
        .transform(resource.vital_codes, rules)
        .transform(values.value_definitions, rules)
        .transform(values.canonical_values)
        .transform(values.value_verdicts)
        .transform(values.value_details)
        .transform(values.bp_pair, rules)
        # 5. each resource's verdict
        .transform(verdict.resource_reason, rules)
        .transform(verdict.resource_detail, rules)
        # 6. one row per value or rejection
        .transform(verdict.value_array, rules)
        .transform(verdict.value_rows)
        .transform(verdict.output_columns)
    )


def accepted(parsed: DataFrame) -> DataFrame:
    """Rows for ``silver/vital_signs``."""
    return parsed.where(F.col("reason").isNull()).select(*SILVER_COLUMNS)


def rejected(parsed: DataFrame) -> DataFrame:
    """Rows for ``silver/quarantine``."""
    return parsed.where(F.col("reason").isNotNull() & (F.col("reason") != IGNORED)).select(*QUARANTINE_COLUMNS)


def ignored(parsed: DataFrame) -> DataFrame:
    """A Bundle's non-vital resources, one row each (``resource_type``; an Observation of no
    monitored vital counts as ``Observation``)."""
    return parsed.where(F.col("reason") == IGNORED)


def untimely(parsed: DataFrame) -> DataFrame:
    """Values rejected only for their effective time (outside the bounds), valid otherwise: not
    silver, but a crisis among them must still alert."""
    return parsed.where(F.col("reason").isin(*TIME_BOUND_REASONS) & F.col("value_ok")).select(*SILVER_COLUMNS)


def alertable(parsed: DataFrame) -> DataFrame:
    """What the alert path reads, in one pass over the parse: the silver values and the
    :func:`untimely` ones, flagged ``untimely``."""
    late = F.col("reason").isin(*TIME_BOUND_REASONS) & F.col("value_ok")
    return (parsed.where(F.col("reason").isNull() | late)
            .select(*SILVER_COLUMNS, F.coalesce(late, F.lit(False)).alias("untimely")))


def dedupe_key(parsed: DataFrame) -> DataFrame:
    """Adds ``dedupe_key``: one measured value of one version of one patient's Observation
    (an observation id is only unique within its patient); rejections are keyed by their Kafka
    coordinates, so only a re-read of the same message collapses. ``dedupe_content``: what two
    rows with one key must agree on (else the later is a ``conflicting_duplicate``)."""
    acc = F.concat_ws("|", F.lit("v"), "patient_id", "observation_id", F.coalesce("version_id", F.lit("")), "loinc")
    rej = F.concat_ws("|", F.lit("q"), "topic", "partition", "offset",
                      F.coalesce(F.col("entry_index").cast("string"), F.lit("")),
                      F.coalesce("source_path", F.lit("")), "reason")
    content = F.concat_ws("|", F.col("value").cast("string"), F.coalesce("unit", F.lit("")),
                          F.coalesce(F.date_format("effective_time", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"), F.lit("")))
    return (parsed.withColumn("dedupe_key", F.when(F.col("reason").isNull(), acc).otherwise(rej))
            .withColumn("dedupe_content", F.when(F.col("reason").isNull(), content).otherwise(F.lit(""))))
