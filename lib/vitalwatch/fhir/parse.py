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

Rules (README, "Silver rules"; reasons in :data:`REASONS`):
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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.fhir.catalogue import Catalogue, load_catalogue
from vitalwatch.fhir.schema import IDENTIFIERS, MESSAGE, MESSAGE_TYPED, OBSERVATION_FIELDS, RESOURCE
from vitalwatch.jvm import JSON_CHECK_UDF

LOINC = "http://loinc.org"
IGNORED = "non_vital_resource"  # a Bundle's other resources: counted per type, not quarantined
TIME_BOUND_REASONS = ("effective_time_in_future", "effective_time_too_old")
LOG_APPEND_TIME = 1  # Kafka's timestampType for a broker-set time
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}\z"  # \z: Java's $ also matches before a final line break
UNPRINTABLE = r"[\p{C}\p{Zl}\p{Zp}]"  # control, format (bidi), private-use, unassigned, surrogates, line separators
RESOURCE_TYPE = r"^[A-Z][A-Za-z]{0,63}\z"  # a FHIR resource type name

REASONS: dict[str, str] = {
    "empty_message": "the Kafka value is empty",
    "message_too_large": "the Kafka value is larger than fhir.max_message_bytes (not parsed)",
    "invalid_encoding": "the Kafka value is not valid UTF-8",
    "invalid_json": "the Kafka value is not one valid JSON document (syntax, NaN/Infinity, control characters)",
    "duplicate_json_key": "a JSON object names the same key twice (FHIR JSON forbids it; no value is picked)",
    "trailing_data": "more data after the first JSON value",
    "json_too_deep": "JSON nested deeper than fhir.max_json_depth",
    "bundle_too_large": "a Bundle with more entries than fhir.max_bundle_entries (not parsed)",
    "fhir_type_error": "valid JSON, but a field has the wrong JSON type for FHIR R4 (e.g. a string value where a decimal is required)",
    "not_a_fhir_resource": "the JSON has no resourceType",
    "unsupported_resource_type": "a message that is neither an Observation nor a Bundle",
    "unsupported_bundle_type": "a Bundle whose type is not one of fhir.bundle_types",
    "empty_bundle": "a Bundle without entries",
    "bundle_entry_without_resource": "a Bundle entry without a resource",
    "status_not_accepted": "the Observation status is not one of fhir.accepted_statuses",
    "missing_subject": "the Observation has no subject",
    "unresolved_reference": "the subject is a urn:uuid:/urn:oid: reference to no Patient entry of the Bundle",
    "subject_not_patient": "the subject is not a Patient",
    "invalid_identifier": "an id that is not a FHIR id, or an identifier that is too long or not printable",
    "missing_effective_time": "no effective[x]",
    "imprecise_effective_time": "effective time given only to the year or month",
    "effective_time_without_timezone": "a dateTime with a time but no zone",
    "invalid_effective_time": "effective[x] is not a FHIR dateTime",
    "effective_time_too_old": "effective time before fhir.min_effective_time",
    "effective_time_in_future": "effective time later than its arrival plus fhir.max_clock_skew",
    "unsupported_code": "no LOINC code of a monitored vital sign",
    "no_measured_value": "a known vital sign without a value (dataAbsentReason, panel only)",
    "value_not_quantity": "the value is not a Quantity",
    "invalid_value": "valueQuantity without a finite numeric value (missing, NaN, Infinity, overflow)",
    "value_has_comparator": "a value with a comparator (<, >) is not a measurement",
    "missing_unit": "valueQuantity without a unit",
    "unit_not_convertible": "no defined conversion from the unit to the canonical unit",
    "out_of_physiological_range": "outside the physiological limits of conf/vitals.yaml",
    "implausible_blood_pressure": "diastolic not below systolic in one panel",
    "conflicting_duplicate": "the same vital twice in one resource, or the same observation id and version "
                             "as an accepted value but another value (the first accepted stays)",
}

SILVER_COLUMNS = (
    "observation_id", "version_id", "patient_id", "device_id", "effective_time", "effective_date",
    "effective_precision", "loinc", "vital", "value", "unit", "original_value", "original_unit",
    "status", "source_path", "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
)

QUARANTINE_COLUMNS = (
    "reason", "detail", "observation_id", "patient_id", "loinc", "entry_index", "source_path",
    "raw", "kafka_key", "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
)


@dataclass(frozen=True)
class ParseRules:
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


# -- catalogue as Spark literals --------------------------------------------------------
def _vital_map(cat: Catalogue) -> Column:
    kv: list[Column] = []
    for code, v in cat.vitals.items():
        kv += [F.lit(code), F.struct(F.lit(v.name).alias("name"), F.lit(v.unit).alias("unit"),
                                     F.lit(float(v.min)).alias("min"), F.lit(float(v.max)).alias("max"))]
    return F.create_map(*kv)


def _conversion_map(cat: Catalogue) -> Column:
    kv: list[Column] = []
    for code, v in cat.vitals.items():
        for unit, c in {v.unit: None, **v.convert}.items():
            factor, offset = (1.0, 0.0) if c is None else (c.factor, c.offset)
            kv += [F.lit(f"{code}|{unit}"),
                   F.struct(F.lit(float(factor)).alias("factor"), F.lit(float(offset)).alias("offset"))]
    return F.create_map(*kv)


def _codings(cc: Column) -> Column:
    return F.coalesce(cc.getField("coding"), F.array())


# -- small expression helpers ----------------------------------------------------------------
# Each step is its own projection over named columns. Spark columns are expression trees, so
# reusing a Python Column object copies its whole tree; written as one expression the parser
# was a 288 KB plan that took about 0.9 s to plan per micro-batch. The optimizer keeps these
# steps apart wherever collapsing them would copy a non-trivial expression (CollapseProject).
# Struct fields are built by name (``_extend``), never with ``withField``: Spark simplifies a
# field read of ``withField`` by copying the expression, and chained steps then grew the plan
# to megabytes (measured: 1.5 MB, 13 s to plan 300 messages).
def _with(df: DataFrame, **cols: Column) -> DataFrame:
    return df.select("*", *[c.alias(n) for n, c in cols.items()])


def _extend(e: Column, fields: tuple[str, ...], **new: Column) -> Column:
    """``e``'s ``fields`` plus the ``new`` ones, as a struct (inside an array lambda)."""
    return F.struct(*[e.getField(f).alias(f) for f in fields], *[c.alias(n) for n, c in new.items()])


def _shown(s: Column | str, n: int = 80) -> Column:
    """A value for a detail string: unprintable characters as '?', at most ``n`` characters."""
    s = F.col(s) if isinstance(s, str) else s
    cut = F.regexp_replace(F.substring(s, 1, n), UNPRINTABLE, "?")
    return F.when(F.length(s) > n, F.concat(cut, F.lit("…"))).otherwise(cut)


def _is_fhir_id(s: Column) -> Column:
    return F.coalesce(s.rlike(FHIR_ID), F.lit(False))


def _is_printable(s: Column, max_len: int) -> Column:
    return F.coalesce((F.length(s) <= max_len) & (F.trim(s) != "") & ~s.rlike(UNPRINTABLE), F.lit(False))


def _describe(reason: Column) -> Column:
    return F.create_map(*[x for k, d in REASONS.items() for x in (F.lit(k), F.lit(d))])[reason]


# -- 1. the message --------------------------------------------------------------------------
def _message(bronze: DataFrame, rules: ParseRules) -> DataFrame:
    """Bronze row → its raw value, arrival time, strict JSON verdict and, if that passed, the
    message read with :data:`MESSAGE`."""
    cols = set(bronze.columns)
    ts_type = F.col("kafka_timestamp_type") if "kafka_timestamp_type" in cols else F.lit(LOG_APPEND_TIME)
    df = bronze.select(
        F.col("key").cast("string").alias("kafka_key"),
        F.col("value").cast("binary").alias("raw_bytes"),
        F.col("value").cast("string").alias("raw"),
        "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
        F.when(ts_type == LOG_APPEND_TIME, F.col("kafka_timestamp")).otherwise(F.col("ingest_time")).alias("arrival"),
    )
    n = F.coalesce(F.length("raw_bytes"), F.lit(0))
    df = _with(df, json_check=(
        F.when(n > rules.max_message_bytes,
               F.concat(F.lit("message_too_large\t"), n.cast("string"), F.lit(" bytes > "),
                        F.lit(str(rules.max_message_bytes))))
        .when(n == 0, F.lit("empty_message\t"))
        .otherwise(F.call_udf(JSON_CHECK_UDF, F.col("raw_bytes"), F.lit(rules.max_json_depth),
                              F.lit(rules.max_bundle_entries)))))
    df = df.drop("raw_bytes")
    # Read once with every entry typed (most messages); only a message that does not fit is read
    # again with its entries as text, each entry then read on its own (see _resources).
    opts = {"columnNameOfCorruptRecord": "_corrupt_record", "allowSingleQuotes": "false"}
    readable = F.col("json_check").isNull() | F.col("json_check").startswith("fhir_type_error@")
    df = _with(df, typed=F.when(readable & F.col("json_check").isNull(), F.from_json("raw", MESSAGE_TYPED, opts)))
    fits = F.col("typed").isNotNull() & F.col("typed").getField("_corrupt_record").isNull()
    df = _with(df, typed_ok=fits, text=F.when(readable & ~fits, F.from_json("raw", MESSAGE, opts)))
    top = [f.name for f in MESSAGE.fields if f.name != "entry"]
    df = _with(df, msg=F.when(F.col("typed_ok"), F.struct(*[F.col("typed").getField(f).alias(f) for f in top],
                                                           F.size(F.col("typed").getField("entry")).alias("entries")))
               .otherwise(F.struct(*[F.col("text").getField(f).alias(f) for f in top],
                                   F.size(F.col("text").getField("entry")).alias("entries"))))
    m = F.col("msg")
    rt = m.getField("resourceType")
    df = _with(df, is_bundle=F.coalesce(rt == "Bundle", F.lit(False)), check=F.split(F.col("json_check"), "\t", 2))
    is_bundle, check = F.col("is_bundle"), F.col("check")
    entry_errors = F.coalesce(check.getItem(0).startswith("fhir_type_error@"), F.lit(False))  # those entries only
    df = _with(df, bad_entries=F.when(entry_errors, F.split(F.substring_index(check.getItem(0), "@", -1), ",")
                                      .cast("array<int>")),
               msg_check=F.when(~entry_errors, F.col("json_check")))
    df = _with(df, msg_reason=(
        F.when(F.col("msg_check").isNotNull(), check.getItem(0))
        .when(~F.col("typed_ok") & (F.col("text").isNull() | F.col("text").getField("_corrupt_record").isNotNull()),
              "fhir_type_error")
        .when(rt.isNull(), "not_a_fhir_resource")
        .when(~rt.isin("Observation", "Bundle"), "unsupported_resource_type")
        .when(is_bundle & ~F.coalesce(m.getField("type").isin(*rules.bundle_types), F.lit(False)),
              "unsupported_bundle_type")
        .when(is_bundle & (F.coalesce(m.getField("entries"), F.lit(0)) <= 0), "empty_bundle")))
    return _with(df, msg_detail=(
        F.when(F.length(check.getItem(1)) > 0, _shown(check.getItem(1), 300))
        .when(F.col("msg_reason") == "unsupported_resource_type", F.format_string("resourceType '%s'", _shown(rt)))
        .when(F.col("msg_reason") == "unsupported_bundle_type",
              F.format_string("Bundle type '%s'", _shown(F.coalesce(m.getField("type"), F.lit(""))))))
    ).drop("json_check", "msg_check", "check")


# -- 2. its resources, one row each ------------------------------------------------------------
def _resources(df: DataFrame) -> DataFrame:
    """One row per resource: the Observation, or each Bundle entry read on its own (so one entry
    of the wrong shape is that entry's rejection, not the Bundle's), with its entry index and
    fullUrl; ``patients``: the Bundle's Patient entries, for references that name them. The
    raw message stays on the message's first row only."""
    m = F.col("msg")
    raw = F.col("raw")
    no_corrupt = F.lit(None).cast("string").alias("_corrupt_record")
    single = F.struct(*[m.getField(f.name).alias(f.name) for f in OBSERVATION_FIELDS], no_corrupt)
    one = F.array(F.struct(F.lit(None).cast("int").alias("entry_index"),
                           F.lit(None).cast("string").alias("full_url"), single.alias("r"), raw.alias("raw")))

    def typed_resource(r: Column) -> Column:
        return F.when(r.isNotNull(), F.struct(*[r.getField(f.name).alias(f.name) for f in OBSERVATION_FIELDS],
                                              no_corrupt))

    typed_entries = F.transform(F.col("typed").getField("entry"), lambda e, i: F.struct(
        i.alias("entry_index"), e.getField("fullUrl").alias("full_url"),
        typed_resource(e.getField("resource")).alias("r"), F.when(i == 0, raw).alias("raw")))
    text_entries = F.transform(F.col("text").getField("entry"), lambda e, i: F.struct(
        i.alias("entry_index"), e.getField("fullUrl").alias("full_url"),
        F.when(e.getField("resource").isNotNull(), F.from_json(
            e.getField("resource"), RESOURCE, {"columnNameOfCorruptRecord": "_corrupt_record",
                                               "allowSingleQuotes": "false"})).alias("r"),
        F.when(i == 0, raw).alias("raw")))
    entries = F.when(F.col("typed_ok"), typed_entries).otherwise(text_entries)
    none = F.array(F.struct(F.lit(None).cast("int").alias("entry_index"),
                            F.lit(None).cast("string").alias("full_url"), F.lit(None).cast(RESOURCE).alias("r"),
                            raw.alias("raw")))
    df = _with(df, res=F.when(F.col("msg_reason").isNotNull(), none).when(F.col("is_bundle"), entries).otherwise(one))
    patient_entries = F.filter("res", lambda e: F.coalesce(e.getField("r").getField("resourceType") == "Patient",
                                                           F.lit(False)))
    df = _with(df, patients=F.transform(patient_entries, lambda e: F.struct(
        e.getField("full_url").alias("url"), e.getField("r").getField("id").alias("id"),
        F.from_json(e.getField("r").getField("identifier"), IDENTIFIERS).getItem(0)
        .getField("value").alias("identifier")))).drop("msg", "raw", "typed", "text", "typed_ok")
    # The raw message rides inside the array (on entry 0 only): a column beside the explode would
    # be copied into every entry's row (a 2,000-entry Bundle of 1 MB: 2 GB). Outer: no filter
    # inferred from the generator, which would copy the whole ``res`` expression into the plan.
    df = df.select(*[c for c in df.columns if c != "res"], F.explode_outer("res").alias("res"))
    return df.select(*[c for c in df.columns if c != "res"],
                     F.col("res.entry_index").alias("entry_index"), F.col("res.full_url").alias("full_url"),
                     F.col("res.r").alias("r"), F.col("res.raw").alias("raw"))


# -- 3. each resource's subject, ids and time -------------------------------------------------
_ABSOLUTE = r"^(urn:(uuid|oid):|[A-Za-z][A-Za-z0-9+.\-]*://)"
_RESTFUL = r"^(https?://.+/)[A-Za-z]+/[^/]+(/_history/[^/]+)?\z"
_PATIENT_REF = r"(?:^|/)Patient/([^/]+?)(?:/_history/[^/]+)?\z"


def _subject(df: DataFrame) -> DataFrame:
    """The patient of each resource: a reference resolved inside the Bundle (absolute or
    ``urn:`` as written; relative against the entry's RESTful fullUrl base), else the id of a
    ``Patient/<id>`` reference, else the subject identifier; with the kind of id it is."""
    subj = F.col("r").getField("subject")
    ref = subj.getField("reference")
    base = F.regexp_extract("full_url", _RESTFUL, 1)
    target = F.when(ref.rlike(_ABSOLUTE), ref).when((base != "") & ~ref.startswith("#"), F.concat(base, ref))
    df = _with(df, target=F.regexp_replace(target, r"/_history/[^/]+\z", ""),
               pid_ref=F.regexp_extract(ref, _PATIENT_REF, 1))
    hits = F.filter("patients", lambda p: p.getField("url") == F.col("target"))
    df = _with(df, hits=hits)
    ids = F.array_distinct(F.transform("hits", lambda p: F.coalesce(p.getField("id"), p.getField("identifier"))))
    resolved = F.when(F.size(ids) == 1, F.struct(
        ids.getItem(0).alias("value"),
        F.when(F.col("hits").getItem(0).getField("id").isNotNull(), "id").otherwise("identifier").alias("kind")))
    patient = (F.when(F.size(ids) == 1, resolved)
               .when(F.col("pid_ref") != "", F.struct(F.col("pid_ref").alias("value"), F.lit("id").alias("kind")))
               .when(ref.isNull() & subj.getField("identifier").getField("value").isNotNull(),
                     F.struct(subj.getField("identifier").getField("value").alias("value"),
                              F.lit("identifier").alias("kind"))))
    return _with(df, patient=patient).drop("target", "pid_ref", "hits", "patients")


def _identity(df: DataFrame, rules: ParseRules) -> DataFrame:
    """Observation id (``id``, else the entry's fullUrl, else the first identifier, else a
    digest of the resource), version and device, and the first id that is not well-formed."""
    n = rules.max_identifier_length
    r = F.col("r")
    ident = F.from_json(r.getField("identifier"), IDENTIFIERS).getItem(0)
    obs = F.coalesce(
        F.when(r.getField("id").isNotNull(), F.struct(r.getField("id").alias("value"), F.lit("id").alias("kind"))),
        F.when(F.col("full_url").isNotNull(),
               F.struct(F.col("full_url").alias("value"), F.lit("identifier").alias("kind"))),
        F.when(ident.getField("value").isNotNull(),
               F.struct(F.concat_ws("|", ident.getField("system"), ident.getField("value")).alias("value"),
                        F.lit("identifier").alias("kind"))),
        F.when(r.isNotNull(), F.struct(F.sha2(F.to_json(r), 256).alias("value"), F.lit("digest").alias("kind"))))
    d, meta = r.getField("device"), r.getField("meta")
    df = _with(df, obs=obs,
               device_id=F.coalesce(d.getField("reference"), d.getField("identifier").getField("value"),
                                    d.getField("display")),
               version_id=F.coalesce(meta.getField("versionId"), meta.getField("lastUpdated")))

    def ok(kv: str) -> Column:
        v = F.col(kv).getField("value")
        return F.when(F.col(kv).getField("kind") == "id", _is_fhir_id(v)).otherwise(_is_printable(v, n))

    dev = F.col("device_id")
    version, updated = meta.getField("versionId"), meta.getField("lastUpdated")
    checks = [
        ("patient", F.col("patient").getField("value"), ~ok("patient")),
        ("observation", F.col("obs").getField("value"), ~ok("obs")),
        ("version", version, version.isNotNull() & ~_is_fhir_id(version)),
        ("version", updated, updated.isNotNull() & ~_is_printable(updated, 64)),
        ("device", dev, dev.isNotNull() & (~_is_printable(dev, n) | (
            dev.rlike(r"(?:^|/)Device/") & ~_is_fhir_id(F.regexp_extract(dev, r"(?:^|/)Device/([^/]*)\z", 1))))),
    ]
    bad = None
    for what, value, is_bad in reversed(checks):
        say = F.when(value.isNull(), F.lit(what + " id is missing")).otherwise(
            F.format_string(what + " id '%s' (%d characters) is not valid", _shown(value), F.length(value)))
        bad = F.when(is_bad, say) if bad is None else F.when(is_bad, say).otherwise(bad)
    return _with(df, bad_id=bad)


def _time(df: DataFrame, rules: ParseRules) -> DataFrame:
    """Effective time: its precision, its UTC value, and whether it lies within the bounds."""
    r = F.col("r")
    df = _with(df, eff_raw=F.coalesce(r.getField("effectiveDateTime"), r.getField("effectiveInstant"),
                                      r.getField("effectivePeriod").getField("start")))
    eff = F.col("eff_raw")
    df = _with(df, precision=(
        F.when(eff.rlike(r"^\d{4}-\d{2}-\d{2}\z"), "day")
        .when(eff.rlike(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-](0\d|1[0-4]):[0-5]\d)\z"), "time")
        .when(eff.rlike(r"^\d{4}(-\d{2})?\z"), "coarse")
        .when(eff.rlike(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?\z"), "no_zone")
        .otherwise("invalid")))
    df = _with(df, effective_time=F.when(F.col("precision").isin("day", "time"), eff.cast("timestamp")),
               latest=F.timestamp_millis(F.unix_millis("arrival") + F.lit(rules.max_clock_skew_ms)))
    t = F.col("effective_time")
    earliest = F.lit(rules.min_effective_time.replace(tzinfo=None)).cast("timestamp")
    return _with(df, time_bound=F.when(t < earliest, "effective_time_too_old")
                 .when(t > F.col("latest"), "effective_time_in_future"))


# -- 4. its codes and values ------------------------------------------------------------------
def _codes(df: DataFrame, rules: ParseRules) -> DataFrame:
    """``known``: the resource's values with a catalogued LOINC code (its own value and its
    components); whether it is a panel; its LOINC code for a detail."""
    cat = rules.catalogue
    r = F.col("r")

    def known_loinc(cc: Column) -> Column:
        hits = F.filter(_codings(cc), lambda c: (c.getField("system") == LOINC) & c.getField("code").isin(*cat.vitals))
        return hits.getItem(0).getField("code")

    def entry(holder: Column, path: Column) -> Column:
        other = (holder.getField("valueString").isNotNull() | holder.getField("valueBoolean").isNotNull()
                 | holder.getField("valueInteger").isNotNull() | holder.getField("valueCodeableConcept").isNotNull())
        return F.struct(known_loinc(holder.getField("code")).alias("loinc"),
                        holder.getField("valueQuantity").alias("q"), other.alias("other_value"),
                        holder.getField("dataAbsentReason").isNotNull().alias("absent"), path.alias("path"))

    code_codings = _codings(r.getField("code"))
    df = _with(df,
               is_panel=F.coalesce(F.exists(code_codings, lambda c: F.coalesce(
                   (c.getField("system") == LOINC) & c.getField("code").isin(*cat.panels), F.lit(False))), F.lit(False)),
               resource_loinc=F.coalesce(known_loinc(r.getField("code")), F.filter(
                   code_codings, lambda c: c.getField("system") == LOINC).getItem(0).getField("code")),
               top=entry(r, F.lit("value")))
    comps = F.coalesce(r.getField("component"), F.array())
    include_top = (r.getField("valueQuantity").isNotNull() | F.col("top.other_value")
                   | r.getField("dataAbsentReason").isNotNull() | (F.size(comps) <= 0))
    all_entries = F.concat(
        F.filter(F.array(F.col("top")), lambda _: include_top),
        F.transform(comps, lambda c, i: entry(c, F.concat(F.lit("component["), i.cast("string"), F.lit("]")))))
    df = _with(df, known=F.filter(all_entries, lambda x: x.getField("loinc").isNotNull())).drop("top")
    return _with(df, n_known=F.size("known"))


def _values(df: DataFrame, rules: ParseRules) -> DataFrame:
    """Each known value judged on its own (one step per column): definition and unit,
    conversion, canonical value, verdict, detail; then the BP pair."""
    cat = rules.catalogue
    vitals, conversions = _vital_map(cat), _conversion_map(cat)
    base = ("loinc", "q", "other_value", "absent", "path")
    df = _with(df, v1=F.transform("known", lambda e: _extend(
        e, base, vdef=F.try_element_at(vitals, e.getField("loinc")),
        unit_in=F.coalesce(e.getField("q").getField("code"), e.getField("q").getField("unit")))))
    f1 = (*base, "vdef", "unit_in")
    df = _with(df, v2=F.transform("v1", lambda e: _extend(e, f1, conv=F.try_element_at(
        conversions, F.concat(e.getField("loinc"), F.lit("|"), e.getField("unit_in"))))),
        names=F.transform("v1", lambda e: e.getField("vdef").getField("name")))
    df = _with(df, repeats=F.size(F.array_distinct("names")) < F.size("names"))  # rare: count only then
    f2 = (*f1, "conv")
    df = _with(df, v3=F.transform("v2", lambda e: _extend(e, f2, value=(
        e.getField("q").getField("value") * e.getField("conv").getField("factor")
        + e.getField("conv").getField("offset")),
        same=F.when(F.col("repeats"), F.size(F.filter("names", lambda x: x == e.getField("vdef").getField("name"))))
        .otherwise(F.lit(1)))))
    f3 = (*f2, "value", "same")

    def finite(x: Column) -> Column:
        return ~F.isnan(x) & (F.abs(x) != float("inf"))

    def value_reason(e: Column) -> Column:
        q, value, vdef = e.getField("q"), e.getField("value"), e.getField("vdef")
        raw_value = q.getField("value")
        return (
            F.when(e.getField("same") > 1, "conflicting_duplicate")
            .when(e.getField("absent") | (q.isNull() & ~e.getField("other_value")), "no_measured_value")
            .when(q.isNull(), "value_not_quantity")
            .when(raw_value.isNull() | ~finite(raw_value), "invalid_value")
            .when(q.getField("comparator").isNotNull(), "value_has_comparator")
            .when(e.getField("unit_in").isNull(), "missing_unit")
            .when(e.getField("conv").isNull(), "unit_not_convertible")
            .when(~finite(value), "invalid_value")
            .when((value < vdef.getField("min")) | (value > vdef.getField("max")), "out_of_physiological_range"))

    df = _with(df, v4=F.transform("v3", lambda e: _extend(e, f3, reason=value_reason(e))))

    def enriched(e: Column) -> Column:
        q, value, vdef, reason = e.getField("q"), e.getField("value"), e.getField("vdef"), e.getField("reason")
        detail = (
            F.when(reason == "unit_not_convertible",
                   F.format_string("unit '%s' has no conversion to %s", _shown(e.getField("unit_in")),
                                   vdef.getField("unit")))
            .when(reason == "out_of_physiological_range",
                  F.format_string("%s %s outside [%s, %s]", F.round(value, 3).cast("string"),
                                  vdef.getField("unit"), vdef.getField("min").cast("string"),
                                  vdef.getField("max").cast("string")))
            .when(reason == "value_has_comparator", F.format_string("comparator '%s'", _shown(q.getField("comparator"))))
            .when(reason == "conflicting_duplicate",
                  F.format_string("%s given %d times in one resource", vdef.getField("name"), e.getField("same")))
            .when(reason == "invalid_value",
                  F.format_string("value %s", F.coalesce(q.getField("value").cast("string"), F.lit("missing")))))
        return F.struct(e.getField("loinc").alias("loinc"), e.getField("path").alias("path"),
                        vdef.getField("name").alias("vital"), vdef.getField("unit").alias("unit"),
                        F.when(reason.isNull(), value).alias("value"),
                        q.getField("value").alias("original_value"), e.getField("unit_in").alias("original_unit"),
                        reason.alias("reason"), detail.alias("detail"))

    df = _with(df, enriched=F.transform("v4", enriched)).drop("v1", "v2", "v3", "v4", "names", "repeats", "known")
    sys_name, dia_name = cat.vitals[cat.bp_pair.systolic].name, cat.vitals[cat.bp_pair.diastolic].name

    def ok_value(name: str) -> Column:
        hit = F.filter("enriched", lambda x: (x.getField("vital") == name) & x.getField("reason").isNull())
        return hit.getItem(0).getField("value")

    df = _with(df, sbp=ok_value(sys_name), dbp=ok_value(dia_name))
    return _with(df, implausible=F.coalesce(F.col("dbp") >= F.col("sbp"), F.lit(False)))


# -- 5. each resource's verdict ---------------------------------------------------------------
def _verdict(df: DataFrame, rules: ParseRules) -> DataFrame:
    """The first rule a resource breaks (``res_reason``) and what to say about it."""
    r = F.col("r")
    rt = r.getField("resourceType")
    ref = r.getField("subject").getField("reference")
    n_known, precision = F.col("n_known"), F.col("precision")
    df = _with(df, res_reason=(
        F.when(F.col("msg_reason").isNotNull(), F.col("msg_reason"))
        .when(r.isNull(), "bundle_entry_without_resource")
        .when(r.getField("_corrupt_record").isNotNull()
              | F.coalesce(F.array_contains("bad_entries", F.col("entry_index")), F.lit(False)), "fhir_type_error")
        .when(rt.isNull(), "not_a_fhir_resource")
        .when(F.col("is_bundle") & (rt != "Observation") & rt.rlike(RESOURCE_TYPE), IGNORED)
        .when(F.coalesce(rt, F.lit("")) != "Observation", "unsupported_resource_type")
        .when(F.col("is_bundle") & (n_known == 0) & ~F.col("is_panel"), IGNORED)
        .when((n_known == 0) & ~F.col("is_panel"), "unsupported_code")
        .when(~F.coalesce(r.getField("status").isin(*rules.accepted_statuses), F.lit(False)), "status_not_accepted")
        .when(r.getField("subject").isNull(), "missing_subject")
        .when(F.col("patient").isNull() & F.coalesce(ref.rlike("^urn:(uuid|oid):"), F.lit(False)),
              "unresolved_reference")
        .when(F.col("patient").isNull(), "subject_not_patient")
        .when(F.col("bad_id").isNotNull(), "invalid_identifier")
        .when(F.col("eff_raw").isNull(), "missing_effective_time")
        .when(precision == "coarse", "imprecise_effective_time")
        .when(precision == "no_zone", "effective_time_without_timezone")
        .when(F.col("effective_time").isNull(), "invalid_effective_time")
        .when(F.col("time_bound").isNotNull(), F.col("time_bound"))
        .when(n_known == 0, "no_measured_value")))
    why = F.col("res_reason")
    return _with(df, res_detail=(
        F.when(F.col("msg_reason").isNotNull(), F.col("msg_detail"))
        .when(why == "status_not_accepted", F.format_string("status '%s'", _shown(r.getField("status"))))
        .when(why.isin("imprecise_effective_time", "effective_time_without_timezone", "invalid_effective_time"),
              F.format_string("effective '%s'", _shown("eff_raw")))
        .when(why == "effective_time_too_old",
              F.format_string("effective '%s' before %s", _shown("eff_raw"), F.lit(rules.min_effective_time.isoformat())))
        .when(why == "effective_time_in_future",
              F.format_string("effective '%s' later than arrival + skew (%s UTC)", _shown("eff_raw"),
                              F.date_format("latest", "yyyy-MM-dd'T'HH:mm:ss")))
        .when(why.isin("subject_not_patient", "unresolved_reference"),
              F.format_string("subject %s", _shown(F.to_json(r.getField("subject")), 200)))
        .when(why == "invalid_identifier", F.col("bad_id"))
        .when(why == "unsupported_code",
              F.format_string("code %s", F.coalesce(_shown("resource_loinc"), F.lit("without LOINC"))))
        .when(why == "unsupported_resource_type",
              F.format_string("resourceType '%s'", F.coalesce(_shown(rt), F.lit(""))))
        .when(why == "fhir_type_error", F.coalesce(F.col("msg_detail"), F.lit(REASONS["fhir_type_error"])))
        .when(why == IGNORED, F.coalesce(rt, F.lit("")))))


# -- 6. one row per value or rejection --------------------------------------------------------
def _rows(df: DataFrame, rules: ParseRules) -> DataFrame:
    """One row per value of a resource that reached its values (accepted, or rejected only for
    its time), else one row for the resource. The raw message stays on one row of the message:
    its first resource's first rejected value, else that resource's first row."""
    cat = rules.catalogue
    cat_bp = (cat.vitals[cat.bp_pair.systolic].name, cat.vitals[cat.bp_pair.diastolic].name)
    why = F.col("res_reason")
    element = df.schema["enriched"].dataType.elementType
    nothing = F.array(F.struct(*[F.lit(None).cast(f.dataType).alias(f.name) for f in element.fields],
                               F.col("raw").alias("raw")))

    def implausible(x: Column) -> Column:
        return F.col("implausible") & x.getField("vital").isin(*cat_bp) & x.getField("reason").isNull()

    # the raw message (inside the array, as in _resources) on the resource's first rejected
    # value, else its first value; one pass marks the implausible pair and places it
    first_bad = F.array_position(F.transform("enriched", lambda x: x.getField("reason").isNotNull() | implausible(x)),
                                 True)
    df = _with(df, raw_at=F.greatest(F.coalesce(first_bad, F.lit(0)) - 1, F.lit(0)))
    pair = F.format_string("diastolic %s >= systolic %s", F.col("dbp").cast("string"), F.col("sbp").cast("string"))

    def final(x: Column, i: Column) -> Column:
        bad = implausible(x)
        fields = {f.name: x.getField(f.name) for f in element.fields}
        fields["reason"] = F.when(bad, F.lit("implausible_blood_pressure")).otherwise(x.getField("reason"))
        fields["detail"] = F.when(bad, pair).otherwise(x.getField("detail"))
        return F.struct(*[c.alias(n) for n, c in fields.items()], F.when(i == F.col("raw_at"), F.col("raw")).alias("raw"))

    values = F.when((why.isNull() | why.isin(*TIME_BOUND_REASONS)) & (F.col("n_known") > 0),
                    F.transform("enriched", final)).otherwise(nothing)
    df = _with(df, values=values).drop("enriched", "raw")
    df = df.select(*[c for c in df.columns if c != "values"], F.explode_outer("values").alias("v"))
    v = F.col("v")
    reason = F.coalesce(why, v.getField("reason"))
    r = F.col("r")
    return df.select(
        reason.alias("reason"),
        F.coalesce(F.col("res_detail"), v.getField("detail"), _describe(reason)).alias("detail"),
        F.col("obs").getField("value").alias("observation_id"), "version_id",
        F.col("patient").getField("value").alias("patient_id"), "device_id", "effective_time",
        F.to_date("effective_time").alias("effective_date"),
        F.when(F.col("precision").isin("day", "time"), F.col("precision")).alias("effective_precision"),
        F.coalesce(v.getField("loinc"), F.col("resource_loinc")).alias("loinc"),
        v.getField("vital").alias("vital"),
        F.when(v.getField("reason").isNull() & (why.isNull() | why.isin(*TIME_BOUND_REASONS)),
               v.getField("value")).alias("value"),  # an untimely value keeps it: its crisis must alert
        v.getField("unit").alias("unit"), v.getField("original_value").alias("original_value"),
        v.getField("original_unit").alias("original_unit"), r.getField("status").alias("status"),
        "entry_index", v.getField("path").alias("source_path"), r.getField("resourceType").alias("resource_type"),
        F.coalesce(v.getField("reason").isNull() & v.getField("value").isNotNull(), F.lit(False)).alias("value_ok"),
        v.getField("raw").alias("raw"),
        "kafka_key", "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
    )


def parse_observations(bronze: DataFrame, rules: ParseRules) -> DataFrame:
    """Bronze rows → one row per measured value (``reason`` null), per rejection (a reason of
    :data:`REASONS`), or per ignored non-vital Bundle resource (``reason`` = :data:`IGNORED`).
    The raw message is on one row of each message (its first; the silver stage keeps it on the
    message's first quarantine row).

    Needs the bronze columns ``key, value, topic, partition, offset, kafka_timestamp,
    ingest_time`` (``value``/``key`` binary or string) and, where the broker's time type is
    known, ``kafka_timestamp_type``."""
    df = _message(bronze, rules)
    df = _resources(df)
    df = _subject(df)
    df = _identity(df, rules)
    df = _time(df, rules)
    df = _codes(df, rules)
    df = _values(df, rules)
    df = _verdict(df, rules)
    return _rows(df, rules)


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
