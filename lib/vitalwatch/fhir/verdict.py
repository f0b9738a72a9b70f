"""Parse steps 5–6: each resource's verdict, then one output row per value or rejection.
Each function is one DataFrame → DataFrame step of :func:`vitalwatch.fhir.parse.parse_observations`."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vitalwatch.fhir.exprs import RESOURCE_TYPE, ParseRules, describe, shown, with_cols
from vitalwatch.fhir.reasons import IGNORED, REASONS, TIME_BOUND_REASONS


# -- 5. each resource's verdict ---------------------------------------------------------------
def resource_reason(df: DataFrame, rules: ParseRules) -> DataFrame:
    """``res_reason``: the first rule a resource breaks, in the order of docs/silver-rules."""
    r = F.col("r")
    rt = r.getField("resourceType")
    ref = r.getField("subject").getField("reference")
    n_known, precision = F.col("n_known"), F.col("precision")
    return with_cols(df, res_reason=(
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


def resource_detail(df: DataFrame, rules: ParseRules) -> DataFrame:
    """``res_detail``: what to say about the resource's rejection (values shown safely)."""
    r = F.col("r")
    rt = r.getField("resourceType")
    why = F.col("res_reason")
    return with_cols(df, res_detail=(
        F.when(F.col("msg_reason").isNotNull(), F.col("msg_detail"))
        .when(why == "status_not_accepted", F.format_string("status '%s'", shown(r.getField("status"))))
        .when(why.isin("imprecise_effective_time", "effective_time_without_timezone", "invalid_effective_time"),
              F.format_string("effective '%s'", shown("eff_raw")))
        .when(why == "effective_time_too_old",
              F.format_string("effective '%s' before %s", shown("eff_raw"), F.lit(rules.min_effective_time.isoformat())))
        .when(why == "effective_time_in_future",
              F.format_string("effective '%s' later than arrival + skew (%s UTC)", shown("eff_raw"),
                              F.date_format("latest", "yyyy-MM-dd'T'HH:mm:ss")))
        .when(why.isin("subject_not_patient", "unresolved_reference"),
              F.format_string("subject %s", shown(F.to_json(r.getField("subject")), 200)))
        .when(why == "invalid_identifier", F.col("bad_id"))
        .when(why == "unsupported_code",
              F.format_string("code %s", F.coalesce(shown("resource_loinc"), F.lit("without LOINC"))))
        .when(why == "unsupported_resource_type",
              F.format_string("resourceType '%s'", F.coalesce(shown(rt), F.lit(""))))
        .when(why == "fhir_type_error", F.coalesce(F.col("msg_detail"), F.lit(REASONS["fhir_type_error"])))
        .when(why == IGNORED, F.coalesce(rt, F.lit("")))))


# -- 6. one row per value or rejection --------------------------------------------------------
def value_array(df: DataFrame, rules: ParseRules) -> DataFrame:
    """``values``: the values of a resource that reached them (accepted, or rejected only for its
    time), else one empty element; the implausible BP pair marked. The raw message (inside the
    array, as in :func:`~vitalwatch.fhir.message.resource_rows`) goes on the resource's first
    rejected value, else its first value."""
    cat_bp = rules.catalogue.bp_names
    why = F.col("res_reason")
    element = df.schema["enriched"].dataType.elementType
    nothing = F.array(F.struct(*[F.lit(None).cast(f.dataType).alias(f.name) for f in element.fields],
                               F.col("raw").alias("raw")))

    def implausible(x: Column) -> Column:
        return F.col("implausible") & x.getField("vital").isin(*cat_bp) & x.getField("reason").isNull()

    first_bad = F.array_position(F.transform("enriched", lambda x: x.getField("reason").isNotNull() | implausible(x)),
                                 True)
    df = with_cols(df, raw_at=F.greatest(F.coalesce(first_bad, F.lit(0)) - 1, F.lit(0)))
    pair = F.format_string("diastolic %s >= systolic %s", F.col("dbp").cast("string"), F.col("sbp").cast("string"))

    def final(x: Column, i: Column) -> Column:
        bad = implausible(x)
        fields = {f.name: x.getField(f.name) for f in element.fields}
        fields["reason"] = F.when(bad, F.lit("implausible_blood_pressure")).otherwise(x.getField("reason"))
        fields["detail"] = F.when(bad, pair).otherwise(x.getField("detail"))
        return F.struct(*[c.alias(n) for n, c in fields.items()], F.when(i == F.col("raw_at"), F.col("raw")).alias("raw"))

    values = F.when((why.isNull() | why.isin(*TIME_BOUND_REASONS)) & (F.col("n_known") > 0),
                    F.transform("enriched", final)).otherwise(nothing)
    return with_cols(df, values=values).drop("enriched", "raw")


def value_rows(df: DataFrame) -> DataFrame:
    """One row per element of ``values`` (outer: a resource without values keeps its row)."""
    return df.select(*[c for c in df.columns if c != "values"], F.explode_outer("values").alias("v"))


def output_columns(df: DataFrame) -> DataFrame:
    """The parse's output row: the resource's reason first, else the value's; details fall back
    to the reason's description. An untimely value keeps its value: its crisis must alert."""
    why, v, r = F.col("res_reason"), F.col("v"), F.col("r")
    reason = F.coalesce(why, v.getField("reason"))
    return df.select(
        reason.alias("reason"),
        F.coalesce(F.col("res_detail"), v.getField("detail"), describe(reason)).alias("detail"),
        F.col("obs").getField("value").alias("observation_id"), "version_id",
        F.col("patient").getField("value").alias("patient_id"), "device_id", "effective_time",
        F.to_date("effective_time").alias("effective_date"),
        F.when(F.col("precision").isin("day", "time"), F.col("precision")).alias("effective_precision"),
        F.coalesce(v.getField("loinc"), F.col("resource_loinc")).alias("loinc"),
        v.getField("vital").alias("vital"),
        F.when(v.getField("reason").isNull() & (why.isNull() | why.isin(*TIME_BOUND_REASONS)),
               v.getField("value")).alias("value"),
        v.getField("unit").alias("unit"), v.getField("original_value").alias("original_value"),
        v.getField("original_unit").alias("original_unit"), r.getField("status").alias("status"),
        "entry_index", v.getField("path").alias("source_path"), r.getField("resourceType").alias("resource_type"),
        F.coalesce(v.getField("reason").isNull() & v.getField("value").isNotNull(), F.lit(False)).alias("value_ok"),
        v.getField("raw").alias("raw"),
        "kafka_key", "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
    )
