"""Parse steps 1–2: the Kafka message (strict JSON check, read once typed, its own verdict), then
one row per resource. Each function is one DataFrame → DataFrame step of
:func:`vitalwatch.fhir.parse.parse_observations`."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vitalwatch.fhir.exprs import JSON_OPTIONS, LOG_APPEND_TIME, ParseRules, shown, with_cols
from vitalwatch.fhir.schema import IDENTIFIERS, MESSAGE, MESSAGE_TYPED, OBSERVATION_FIELDS, RESOURCE
from vitalwatch.jvm import JSON_CHECK_UDF

_TOP_FIELDS = [f.name for f in MESSAGE.fields if f.name != "entry"]


# -- 1. the message --------------------------------------------------------------------------
def kafka_columns(bronze: DataFrame) -> DataFrame:
    """Bronze row → key, raw value (bytes and text), coordinates and arrival: the broker's
    LogAppendTime where known, else the ingest time, never the device's clock."""
    cols = set(bronze.columns)
    ts_type = F.col("kafka_timestamp_type") if "kafka_timestamp_type" in cols else F.lit(LOG_APPEND_TIME)
    return bronze.select(
        F.col("key").cast("string").alias("kafka_key"),
        F.col("value").cast("binary").alias("raw_bytes"),
        F.col("value").cast("string").alias("raw"),
        "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
        F.when(ts_type == LOG_APPEND_TIME, F.col("kafka_timestamp")).otherwise(F.col("ingest_time")).alias("arrival"),
    )


def json_verdict(df: DataFrame, rules: ParseRules) -> DataFrame:
    """``json_check``: size caps first (an oversized message is never parsed), then the JVM's
    strict JSON check (encoding, syntax, duplicate keys, depth, entry count); null if it passed."""
    n = F.coalesce(F.length("raw_bytes"), F.lit(0))
    df = with_cols(df, json_check=(
        F.when(n > rules.max_message_bytes,
               F.concat(F.lit("message_too_large\t"), n.cast("string"), F.lit(" bytes > "),
                        F.lit(str(rules.max_message_bytes))))
        .when(n == 0, F.lit("empty_message\t"))
        .otherwise(F.call_udf(JSON_CHECK_UDF, F.col("raw_bytes"), F.lit(rules.max_json_depth),
                              F.lit(rules.max_bundle_entries)))))
    return df.drop("raw_bytes")


def read_json(df: DataFrame) -> DataFrame:
    """Read once with every entry typed (most messages); only a message that does not fit is read
    again with its entries as text, each entry then read on its own (see :func:`resource_array`)."""
    readable = F.col("json_check").isNull() | F.col("json_check").startswith("fhir_type_error@")
    df = with_cols(df, typed=F.when(readable & F.col("json_check").isNull(),
                                    F.from_json("raw", MESSAGE_TYPED, JSON_OPTIONS)))
    fits = F.col("typed").isNotNull() & F.col("typed").getField("_corrupt_record").isNull()
    return with_cols(df, typed_ok=fits, text=F.when(readable & ~fits, F.from_json("raw", MESSAGE, JSON_OPTIONS)))


def message_fields(df: DataFrame) -> DataFrame:
    """``msg``: the message's top-level fields and entry count, from whichever read fitted."""
    return with_cols(df, msg=F.when(F.col("typed_ok"), F.struct(
        *[F.col("typed").getField(f).alias(f) for f in _TOP_FIELDS],
        F.size(F.col("typed").getField("entry")).alias("entries")))
        .otherwise(F.struct(*[F.col("text").getField(f).alias(f) for f in _TOP_FIELDS],
                            F.size(F.col("text").getField("entry")).alias("entries"))))


def entry_errors(df: DataFrame) -> DataFrame:
    """Split the JSON verdict: type errors inside Bundle entries (``bad_entries``) reject those
    entries only; any other verdict (``msg_check``) rejects the whole message."""
    rt = F.col("msg").getField("resourceType")
    df = with_cols(df, is_bundle=F.coalesce(rt == "Bundle", F.lit(False)), check=F.split(F.col("json_check"), "\t", 2))
    check = F.col("check")
    entry_errors = F.coalesce(check.getItem(0).startswith("fhir_type_error@"), F.lit(False))  # those entries only
    return with_cols(df, bad_entries=F.when(entry_errors, F.split(F.substring_index(check.getItem(0), "@", -1), ",")
                                            .cast("array<int>")),
                     msg_check=F.when(~entry_errors, F.col("json_check")))


def message_reason(df: DataFrame, rules: ParseRules) -> DataFrame:
    """The first rule the message as a whole breaks (``msg_reason``) and what to say about it."""
    m = F.col("msg")
    rt = m.getField("resourceType")
    is_bundle, check = F.col("is_bundle"), F.col("check")
    df = with_cols(df, msg_reason=(
        F.when(F.col("msg_check").isNotNull(), check.getItem(0))
        .when(~F.col("typed_ok") & (F.col("text").isNull() | F.col("text").getField("_corrupt_record").isNotNull()),
              "fhir_type_error")
        .when(rt.isNull(), "not_a_fhir_resource")
        .when(~rt.isin("Observation", "Bundle"), "unsupported_resource_type")
        .when(is_bundle & ~F.coalesce(m.getField("type").isin(*rules.bundle_types), F.lit(False)),
              "unsupported_bundle_type")
        .when(is_bundle & (F.coalesce(m.getField("entries"), F.lit(0)) <= 0), "empty_bundle")))
    return with_cols(df, msg_detail=(
        F.when(F.length(check.getItem(1)) > 0, shown(check.getItem(1), 300))
        .when(F.col("msg_reason") == "unsupported_resource_type", F.format_string("resourceType '%s'", shown(rt)))
        .when(F.col("msg_reason") == "unsupported_bundle_type",
              F.format_string("Bundle type '%s'", shown(F.coalesce(m.getField("type"), F.lit(""))))))
    ).drop("json_check", "msg_check", "check")


# -- 2. its resources, one row each ------------------------------------------------------------
def _entry(i: Column | None, full_url: Column | None, r: Column, raw: Column) -> Column:
    """One element of ``res``: entry index, fullUrl, resource and (on entry 0 only) the raw text."""
    return F.struct((F.lit(None).cast("int") if i is None else i).alias("entry_index"),
                    (F.lit(None).cast("string") if full_url is None else full_url).alias("full_url"),
                    r.alias("r"), raw.alias("raw"))


def resource_array(df: DataFrame) -> DataFrame:
    """``res``: the Observation, or each Bundle entry read on its own (so one entry of the wrong
    shape is that entry's rejection, not the Bundle's); one empty element for a rejected message."""
    m, raw = F.col("msg"), F.col("raw")
    no_corrupt = F.lit(None).cast("string").alias("_corrupt_record")
    single = F.struct(*[m.getField(f.name).alias(f.name) for f in OBSERVATION_FIELDS], no_corrupt)
    one = F.array(_entry(None, None, single, raw))

    def typed_resource(r: Column) -> Column:
        return F.when(r.isNotNull(), F.struct(*[r.getField(f.name).alias(f.name) for f in OBSERVATION_FIELDS],
                                              no_corrupt))

    typed_entries = F.transform(F.col("typed").getField("entry"), lambda e, i: _entry(
        i, e.getField("fullUrl"), typed_resource(e.getField("resource")), F.when(i == 0, raw)))
    text_entries = F.transform(F.col("text").getField("entry"), lambda e, i: _entry(
        i, e.getField("fullUrl"), F.when(e.getField("resource").isNotNull(), F.from_json(
            e.getField("resource"), RESOURCE, JSON_OPTIONS)), F.when(i == 0, raw)))
    entries = F.when(F.col("typed_ok"), typed_entries).otherwise(text_entries)
    none = F.array(_entry(None, None, F.lit(None).cast(RESOURCE), raw))
    return with_cols(df, res=F.when(F.col("msg_reason").isNotNull(), none)
                     .when(F.col("is_bundle"), entries).otherwise(one))


def bundle_patients(df: DataFrame) -> DataFrame:
    """``patients``: the Bundle's Patient entries (url, id, first identifier), for references that
    name them (FHIR R4 Bundle, "Resolving references in Bundles"); the message columns go."""
    patient_entries = F.filter("res", lambda e: F.coalesce(e.getField("r").getField("resourceType") == "Patient",
                                                           F.lit(False)))
    return with_cols(df, patients=F.transform(patient_entries, lambda e: F.struct(
        e.getField("full_url").alias("url"), e.getField("r").getField("id").alias("id"),
        F.from_json(e.getField("r").getField("identifier"), IDENTIFIERS).getItem(0)
        .getField("value").alias("identifier")))).drop("msg", "raw", "typed", "text", "typed_ok")


def resource_rows(df: DataFrame) -> DataFrame:
    """One row per resource. The raw message rides inside the array (on entry 0 only): a column
    beside the explode would be copied into every entry's row (a 2,000-entry Bundle of 1 MB:
    2 GB). Outer: no filter inferred from the generator, which would copy the whole ``res``
    expression into the plan."""
    df = df.select(*[c for c in df.columns if c != "res"], F.explode_outer("res").alias("res"))
    return df.select(*[c for c in df.columns if c != "res"],
                     F.col("res.entry_index").alias("entry_index"), F.col("res.full_url").alias("full_url"),
                     F.col("res.r").alias("r"), F.col("res.raw").alias("raw"))
