"""The keys that identify a row in every store: one definition for the gold tables' topics
(``gold_lake`` deduplicates on them), MongoDB ``_id`` and Elasticsearch ``_id``.

An observation id is only unique within its patient, so every key of a reading includes the
patient. Parts are joined as a JSON array, not with a separator: ids may contain ``:`` or ``|``
(``urn:uuid:…`` fullUrls, identifier values), and ``a:b`` + ``c`` must never equal ``a`` +
``b:c`` (a forged reading could otherwise take a genuine one's key and have it dropped)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

ES_MAX_ID_BYTES = 512  # Elasticsearch refuses a longer _id


def key(*parts: Column | str) -> Column:
    """An unambiguous string key of ``parts`` (null parts kept as JSON null)."""
    return F.to_json(F.array(*[F.col(p) if isinstance(p, str) else p for p in parts]))


def score_key(alias: str | None = None) -> Column:
    """A ``gold/risk_scores`` row: patient + observation; a discharge marker: patient + its
    expiry; an untimely reading (a time outside the bounds, kept only for its crisis alert):
    patient + observation + its claimed time, so a corrected re-send of the same id is not
    mistaken for it."""
    def c(name: str) -> str:  # a column of the aliased side of a MERGE, or of the row
        return f"{alias}.{name}" if alias else name

    t = F.unix_micros(c("effective_time")).cast("string")
    return (F.when(F.col(c("observation_id")).isNull(),
                   key(c("patient_id"), F.lit("discharged"), F.unix_micros(c("silver_time")).cast("string")))
            .when(F.col(c("score_status")) == "untimely",
                  key(c("patient_id"), c("observation_id"), F.lit("untimely"), t))
            .otherwise(key(c("patient_id"), c("observation_id"))))


def vital_key() -> Column:
    """A ``silver/vital_signs`` value: patient, observation, version, vital."""
    return key("patient_id", "observation_id", F.coalesce("version_id", F.lit("")), "vital")


def es_id(k: Column) -> Column:
    """``k`` as an Elasticsearch ``_id``: itself, or its SHA-256 when longer than ES allows."""
    return F.when(F.octet_length(k) <= ES_MAX_ID_BYTES, k).otherwise(F.sha2(k, 256))
