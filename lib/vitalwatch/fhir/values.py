"""Parse step 4 (continued): each known value judged on its own, one step per column —
definition and unit, conversion, canonical value, verdict, detail — then the blood-pressure pair.
Each function is one DataFrame → DataFrame step of :func:`vitalwatch.fhir.parse.parse_observations`."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vitalwatch.fhir.exprs import ParseRules, conversion_map, extend, shown, vital_map, with_cols

_F0 = ("loinc", "q", "other_value", "absent", "path")  # from resource.vital_codes
_F1 = (*_F0, "vdef", "unit_in")
_F2 = (*_F1, "conv")
_F3 = (*_F2, "value", "same")


def value_definitions(df: DataFrame, rules: ParseRules) -> DataFrame:
    """Each value's catalogue definition and unit as given (``v1``), then its conversion to the
    canonical unit (``v2``); ``repeats``: whether a vital is given twice (rare: count only then)."""
    vitals, conversions = vital_map(rules.catalogue), conversion_map(rules.catalogue)
    df = with_cols(df, v1=F.transform("known", lambda e: extend(
        e, _F0, vdef=F.try_element_at(vitals, e.getField("loinc")),
        unit_in=F.coalesce(e.getField("q").getField("code"), e.getField("q").getField("unit")))))
    df = with_cols(df, v2=F.transform("v1", lambda e: extend(e, _F1, conv=F.try_element_at(
        conversions, F.concat(e.getField("loinc"), F.lit("|"), e.getField("unit_in"))))),
        names=F.transform("v1", lambda e: e.getField("vdef").getField("name")))
    return with_cols(df, repeats=F.size(F.array_distinct("names")) < F.size("names"))


def canonical_values(df: DataFrame) -> DataFrame:
    """``v3``: the value in the canonical unit, and how often its vital occurs in the resource."""
    return with_cols(df, v3=F.transform("v2", lambda e: extend(e, _F2, value=(
        e.getField("q").getField("value") * e.getField("conv").getField("factor")
        + e.getField("conv").getField("offset")),
        same=F.when(F.col("repeats"), F.size(F.filter("names", lambda x: x == e.getField("vdef").getField("name"))))
        .otherwise(F.lit(1)))))


def _finite(x: Column) -> Column:
    return ~F.isnan(x) & (F.abs(x) != float("inf"))


def _value_reason(e: Column) -> Column:
    """The first rule a value breaks, in the order of docs/silver-rules."""
    q, value, vdef = e.getField("q"), e.getField("value"), e.getField("vdef")
    raw_value = q.getField("value")
    return (
        F.when(e.getField("same") > 1, "conflicting_duplicate")
        .when(e.getField("absent") | (q.isNull() & ~e.getField("other_value")), "no_measured_value")
        .when(q.isNull(), "value_not_quantity")
        .when(raw_value.isNull() | ~_finite(raw_value), "invalid_value")
        .when(q.getField("comparator").isNotNull(), "value_has_comparator")
        .when(e.getField("unit_in").isNull(), "missing_unit")
        .when(e.getField("conv").isNull(), "unit_not_convertible")
        .when(~_finite(value), "invalid_value")
        .when((value < vdef.getField("min")) | (value > vdef.getField("max")), "out_of_physiological_range"))


def value_verdicts(df: DataFrame) -> DataFrame:
    """``v4``: each value with the first rule it breaks (null: accepted)."""
    return with_cols(df, v4=F.transform("v3", lambda e: extend(e, _F3, reason=_value_reason(e))))


def _enriched(e: Column) -> Column:
    """A judged value as it leaves this step: names, units, canonical value if accepted, detail."""
    q, value, vdef, reason = e.getField("q"), e.getField("value"), e.getField("vdef"), e.getField("reason")
    detail = (
        F.when(reason == "unit_not_convertible",
               F.format_string("unit '%s' has no conversion to %s", shown(e.getField("unit_in")),
                               vdef.getField("unit")))
        .when(reason == "out_of_physiological_range",
              F.format_string("%s %s outside [%s, %s]", F.round(value, 3).cast("string"),
                              vdef.getField("unit"), vdef.getField("min").cast("string"),
                              vdef.getField("max").cast("string")))
        .when(reason == "value_has_comparator", F.format_string("comparator '%s'", shown(q.getField("comparator"))))
        .when(reason == "conflicting_duplicate",
              F.format_string("%s given %d times in one resource", vdef.getField("name"), e.getField("same")))
        .when(reason == "invalid_value",
              F.format_string("value %s", F.coalesce(q.getField("value").cast("string"), F.lit("missing")))))
    return F.struct(e.getField("loinc").alias("loinc"), e.getField("path").alias("path"),
                    vdef.getField("name").alias("vital"), vdef.getField("unit").alias("unit"),
                    F.when(reason.isNull(), value).alias("value"),
                    q.getField("value").alias("original_value"), e.getField("unit_in").alias("original_unit"),
                    reason.alias("reason"), detail.alias("detail"))


def value_details(df: DataFrame) -> DataFrame:
    """``enriched``: the judged values with their details; the intermediate columns go."""
    return with_cols(df, enriched=F.transform("v4", _enriched)).drop("v1", "v2", "v3", "v4", "names", "repeats",
                                                                       "known")


def bp_pair(df: DataFrame, rules: ParseRules) -> DataFrame:
    """The panel's accepted systolic and diastolic, and whether the pair is implausible
    (diastolic not below systolic: both values are then quarantined)."""
    sys_name, dia_name = rules.catalogue.bp_names

    def ok_value(name: str) -> Column:
        hit = F.filter("enriched", lambda x: (x.getField("vital") == name) & x.getField("reason").isNull())
        return hit.getItem(0).getField("value")

    df = with_cols(df, sbp=ok_value(sys_name), dbp=ok_value(dia_name))
    return with_cols(df, implausible=F.coalesce(F.col("dbp") >= F.col("sbp"), F.lit(False)))
