"""Parse steps 3–4: each resource's subject, ids and effective time, then its catalogued codes.
Each function is one DataFrame → DataFrame step of
:func:`vitalwatch.fhir.parse.parse_observations`."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vitalwatch.fhir.catalogue import Catalogue
from vitalwatch.fhir.exprs import (
    LOINC,
    ParseRules,
    codings,
    is_fhir_id,
    is_printable,
    shown,
    with_cols,
)
from vitalwatch.fhir.schema import IDENTIFIERS

_ABSOLUTE = r"^(urn:(uuid|oid):|[A-Za-z][A-Za-z0-9+.\-]*://)"
_RESTFUL = r"^(https?://.+/)[A-Za-z]+/[^/]+(/_history/[^/]+)?\z"
_PATIENT_REF = r"(?:^|/)Patient/([^/]+?)(?:/_history/[^/]+)?\z"
_DAY = r"^\d{4}-\d{2}-\d{2}\z"
_ZONED = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-](0\d|1[0-4]):[0-5]\d)\z"
_COARSE = r"^\d{4}(-\d{2})?\z"
_NO_ZONE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?\z"


# -- 3. each resource's subject, ids and time -------------------------------------------------
def subject_patient(df: DataFrame) -> DataFrame:
    """The patient of each resource: a reference resolved inside the Bundle (absolute or
    ``urn:`` as written; relative against the entry's RESTful fullUrl base), else the id of a
    ``Patient/<id>`` reference, else the subject identifier; with the kind of id it is."""
    subj = F.col("r").getField("subject")
    ref = subj.getField("reference")
    base = F.regexp_extract("full_url", _RESTFUL, 1)
    target = F.when(ref.rlike(_ABSOLUTE), ref).when((base != "") & ~ref.startswith("#"), F.concat(base, ref))
    df = with_cols(df, target=F.regexp_replace(target, r"/_history/[^/]+\z", ""),
                   pid_ref=F.regexp_extract(ref, _PATIENT_REF, 1))
    hits = F.filter("patients", lambda p: p.getField("url") == F.col("target"))
    df = with_cols(df, hits=hits)
    ids = F.array_distinct(F.transform("hits", lambda p: F.coalesce(p.getField("id"), p.getField("identifier"))))
    resolved = F.when(F.size(ids) == 1, F.struct(
        ids.getItem(0).alias("value"),
        F.when(F.col("hits").getItem(0).getField("id").isNotNull(), "id").otherwise("identifier").alias("kind")))
    patient = (F.when(F.size(ids) == 1, resolved)
               .when(F.col("pid_ref") != "", F.struct(F.col("pid_ref").alias("value"), F.lit("id").alias("kind")))
               .when(ref.isNull() & subj.getField("identifier").getField("value").isNotNull(),
                     F.struct(subj.getField("identifier").getField("value").alias("value"),
                              F.lit("identifier").alias("kind"))))
    return with_cols(df, patient=patient).drop("target", "pid_ref", "hits", "patients")


def observation_identity(df: DataFrame) -> DataFrame:
    """Observation id (``id``, else the entry's fullUrl, else the first identifier, else a
    digest of the resource, so a row is always traceable), version and device."""
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
    return with_cols(df, obs=obs,
                     device_id=F.coalesce(d.getField("reference"), d.getField("identifier").getField("value"),
                                          d.getField("display")),
                     version_id=F.coalesce(meta.getField("versionId"), meta.getField("lastUpdated")))


def first_bad_id(df: DataFrame, rules: ParseRules) -> DataFrame:
    """``bad_id``: what is wrong with the first id that is not well-formed (ids end up in keys,
    logs and dashboards, so a malformed one is quarantined, never cleaned up)."""
    n = rules.max_identifier_length
    meta = F.col("r").getField("meta")

    def ok(kv: str) -> Column:
        v = F.col(kv).getField("value")
        return F.when(F.col(kv).getField("kind") == "id", is_fhir_id(v)).otherwise(is_printable(v, n))

    dev = F.col("device_id")
    version, updated = meta.getField("versionId"), meta.getField("lastUpdated")
    checks = [
        ("patient", F.col("patient").getField("value"), ~ok("patient")),
        ("observation", F.col("obs").getField("value"), ~ok("obs")),
        ("version", version, version.isNotNull() & ~is_fhir_id(version)),
        ("version", updated, updated.isNotNull() & ~is_printable(updated, 64)),
        ("device", dev, dev.isNotNull() & (~is_printable(dev, n) | (
            dev.rlike(r"(?:^|/)Device/") & ~is_fhir_id(F.regexp_extract(dev, r"(?:^|/)Device/([^/]*)\z", 1))))),
    ]
    bad = None
    for what, value, is_bad in reversed(checks):
        say = F.when(value.isNull(), F.lit(what + " id is missing")).otherwise(
            F.format_string(what + " id '%s' (%d characters) is not valid", shown(value), F.length(value)))
        bad = F.when(is_bad, say) if bad is None else F.when(is_bad, say).otherwise(bad)
    return with_cols(df, bad_id=bad)


def effective_precision(df: DataFrame) -> DataFrame:
    """``eff_raw`` (effectiveDateTime, effectiveInstant or effectivePeriod.start) and its
    precision: a zoned time, a day, too coarse, without a zone, or not a dateTime."""
    r = F.col("r")
    df = with_cols(df, eff_raw=F.coalesce(r.getField("effectiveDateTime"), r.getField("effectiveInstant"),
                                          r.getField("effectivePeriod").getField("start")))
    eff = F.col("eff_raw")
    return with_cols(df, precision=(
        F.when(eff.rlike(_DAY), "day")
        .when(eff.rlike(_ZONED), "time")
        .when(eff.rlike(_COARSE), "coarse")
        .when(eff.rlike(_NO_ZONE), "no_zone")
        .otherwise("invalid")))


def effective_bounds(df: DataFrame, rules: ParseRules) -> DataFrame:
    """The UTC effective time and whether it lies within [min_effective_time, arrival + skew]."""
    eff = F.col("eff_raw")
    df = with_cols(df, effective_time=F.when(F.col("precision").isin("day", "time"), eff.cast("timestamp")),
                   latest=F.timestamp_millis(F.unix_millis("arrival") + F.lit(rules.max_clock_skew_ms)))
    t = F.col("effective_time")
    earliest = F.lit(rules.min_effective_time.replace(tzinfo=None)).cast("timestamp")
    return with_cols(df, time_bound=F.when(t < earliest, "effective_time_too_old")
                     .when(t > F.col("latest"), "effective_time_in_future"))


# -- 4. its codes ------------------------------------------------------------------------------
def _known_loinc(cc: Column, cat: Catalogue) -> Column:
    hits = F.filter(codings(cc), lambda c: (c.getField("system") == LOINC) & c.getField("code").isin(*cat.vitals))
    return hits.getItem(0).getField("code")


def _value_entry(holder: Column, path: Column, cat: Catalogue) -> Column:
    """A value holder (the resource or a component): its known code, Quantity, whether it has
    another kind of value or a dataAbsentReason, and its path."""
    other = (holder.getField("valueString").isNotNull() | holder.getField("valueBoolean").isNotNull()
             | holder.getField("valueInteger").isNotNull() | holder.getField("valueCodeableConcept").isNotNull())
    return F.struct(_known_loinc(holder.getField("code"), cat).alias("loinc"),
                    holder.getField("valueQuantity").alias("q"), other.alias("other_value"),
                    holder.getField("dataAbsentReason").isNotNull().alias("absent"), path.alias("path"))


def vital_codes(df: DataFrame, rules: ParseRules) -> DataFrame:
    """``known``: the resource's values with a catalogued LOINC code (its own value and its
    components); whether it is a panel; its LOINC code for a detail."""
    cat = rules.catalogue
    r = F.col("r")
    code_codings = codings(r.getField("code"))
    df = with_cols(df,
                   is_panel=F.coalesce(F.exists(code_codings, lambda c: F.coalesce(
                       (c.getField("system") == LOINC) & c.getField("code").isin(*cat.panels), F.lit(False))),
                       F.lit(False)),
                   resource_loinc=F.coalesce(_known_loinc(r.getField("code"), cat), F.filter(
                       code_codings, lambda c: c.getField("system") == LOINC).getItem(0).getField("code")),
                   top=_value_entry(r, F.lit("value"), cat))
    comps = F.coalesce(r.getField("component"), F.array())
    include_top = (r.getField("valueQuantity").isNotNull() | F.col("top.other_value")
                   | r.getField("dataAbsentReason").isNotNull() | (F.size(comps) <= 0))
    all_entries = F.concat(
        F.filter(F.array(F.col("top")), lambda _: include_top),
        F.transform(comps, lambda c, i: _value_entry(c, F.concat(F.lit("component["), i.cast("string"), F.lit("]")),
                                                     cat)))
    df = with_cols(df, known=F.filter(all_entries, lambda x: x.getField("loinc").isNotNull())).drop("top")
    return with_cols(df, n_known=F.size("known"))
