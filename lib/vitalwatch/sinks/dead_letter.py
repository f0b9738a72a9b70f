"""Poison rows never block a store: a row MongoDB or Elasticsearch refuses for good goes to the
Delta table ``gold/dead_letter`` and the rest of the batch is written; a store that is down,
overloaded or blocked fails the batch, which the query retries (docs/requirements.md §5, §7).

How a serving write goes (:func:`write_or_dead_letter`):

1. **Pre-checks** (one Spark pass, no round trip): a row without a key, an Elasticsearch ``_id``
   over 512 bytes (ES refuses the *whole bulk request* for it, not just the item) and a row
   larger than the store's document limit (estimated as JSON, :func:`json_size`; MongoDB's
   16 MiB BSON limit, Elasticsearch's ``ES_MAX_DOCUMENT_BYTES`` or the ``Sinks``' own) are
   rejected before the connector sees them. The batch is cached for the pass, so the rows
   checked are the rows written.
2. **The connector writes the rest** (mongo-spark-connector / elasticsearch-spark): the fast
   path, and the only one while nothing is refused.
3. **If that write fails**, the JVM exception chain is read (class names only — messages quote
   the documents, and a row must never be able to pass for an outage): a connection, socket,
   timeout, election or authentication failure re-raises at once — the batch is retried.
   Anything else means some rows may be poison: the batch is **written again row-addressably**
   from the executors (:mod:`vitalwatch.sinks.isolate`): ``pymongo`` ``bulk_write`` with
   ``ordered=False`` (each ``writeErrors`` entry names its row) and the Elasticsearch ``_bulk``
   API (a status per item; a request refused as a whole — 400 validation, 413 — is split in
   halves down to the row). The documents are the connectors' own (same fields, BSON types,
   epoch-millisecond times, nulls), and every write is an upsert by key, so rewriting rows the
   connector had already written changes nothing. Each refusal is classified by
   :mod:`vitalwatch.sinks.rejections`: a row's own fault is dead-lettered, a store's (429, 5xx,
   blocks, elections, auth…) is retried a few times with back-off and then fails the batch.
4. **Dead letters are recorded last** (after every good row is in), by a Delta ``MERGE`` that
   inserts only rows not already there, matched on (sink, key, error type, SHA-256 of the
   payload): a replayed batch — the query failed after step 4, or the dead-letter write itself
   failed — adds nothing. The table is partitioned by ``sink`` and the merge condition names
   the sink, so the three serving queries (disjoint sinks) never conflict.

Why not the connectors' own hooks: elasticsearch-spark's bulk error handlers
(``es.write.rest.error.handlers``) are JVM classes that can drop, log or forward a failed
document to another *index*, but cannot hand the rows back to this Delta table from the task;
mongo-spark-connector has none (``ordered=false`` only writes past an error before failing the
task, without saying which rows). Rows rejected up front or at isolation keep the row as JSON
(``payload``, cut to ``gold.dead_letter_payload_bytes``; ``payload_bytes`` and
``payload_sha256`` describe the whole), the server's error type and its message without
credentials. ``vitalwatch show`` counts them (:func:`counts`)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from vitalwatch.config import Settings
from vitalwatch.pipeline.keys import ES_MAX_ID_BYTES
from vitalwatch.pipeline.lake import GOLD_DEAD_LETTER, ensure_table
from vitalwatch.sinks.rejections import jvm_classes, scrub, store_unreachable

log = logging.getLogger(__name__)

DEAD_LETTER_SCHEMA = StructType([
    StructField("sink", StringType()),            # "mongo:<collection>" or "elasticsearch:<index>"
    StructField("key", StringType()),             # the row's _id in that store
    StructField("error_type", StringType()),      # ES error type, MongoDB codeName(code), or a pre-check
    StructField("reason", StringType()),          # the server's message, credentials removed
    StructField("payload", StringType()),         # the row as JSON, cut to gold.dead_letter_payload_bytes
    StructField("payload_bytes", LongType()),     # ... whose whole size was this
    StructField("payload_sha256", StringType()),  # ... and hash (the replay key with sink, key, error_type)
    StructField("dead_time", TimestampType()),    # when it was first refused
])
PARTITION_BY = ["sink"]
MONGO_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024     # MongoDB's BSON document limit
ES_MAX_DOCUMENT_BYTES = 10 * 1024 * 1024        # well under http.max_content_length (100mb)
_CHECK = "_dead_letter_check"


@dataclass(frozen=True)
class Rejected:
    """A row a store refused for good."""

    key: str | None
    error_type: str
    reason: str
    payload: str                      # the row as JSON, or its beginning (cut to bytes when recorded)
    payload_bytes: int | None = None  # the whole's size (None: ``payload`` is the whole)
    payload_sha256: str | None = None

    @classmethod
    def of(cls, key: str | None, error_type: str, reason: str, payload: Any) -> Rejected:
        """With ``payload`` a :func:`payload_struct` value (a Row), or None."""
        if payload is None:
            return cls(key, error_type, reason, "")
        return cls(key, error_type, reason, payload["text"] or "", payload["bytes"], payload["sha256"])


@dataclass(frozen=True)
class GuardedWrite:
    """One store write: where to (``sink``), the key column, the connector write, how to
    rewrite a batch row-addressably, and the pre-checks' limits."""

    sink: str
    key: str
    write: Callable[[DataFrame], None]
    isolate: Callable[[DataFrame], list[Rejected]]
    max_document_bytes: int
    max_key_bytes: int | None = None


def es_sink(index: str) -> str:
    return f"elasticsearch:{index}"


def mongo_sink(collection: str) -> str:
    return f"mongo:{collection}"


def ensure_dead_letter(spark: SparkSession, settings: Settings) -> None:
    ensure_table(spark, settings.table_path(*GOLD_DEAD_LETTER), DEAD_LETTER_SCHEMA, PARTITION_BY)


def payload_json(columns: list[str]) -> Column:
    return F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns]))


def payload_struct(columns: list[str], limit: int) -> Column:
    """The row as JSON for a dead letter: its first ``limit`` characters (so a 17 MiB row is
    not collected whole; cut to ``limit`` bytes when recorded), the whole's size and SHA-256."""
    p = payload_json(columns)
    return F.struct(F.substring(p, 1, limit).alias("text"), F.octet_length(p).alias("bytes"),
                    F.sha2(p, 256).alias("sha256"))


def json_size(df: DataFrame) -> Column:
    """About how many bytes a row is as JSON, cheaply: strings and binaries by length, nested
    values (arrays, maps, structs) as JSON, every other value as 24 bytes (names and numbers)."""
    parts: list[Column] = [F.lit(24 * len(df.columns))]
    for f in df.schema.fields:
        c = F.col(f"`{f.name}`")
        if isinstance(f.dataType, StringType | BinaryType):
            parts.append(F.coalesce(F.octet_length(c), F.lit(0)))
        elif isinstance(f.dataType, ArrayType | MapType | StructType):
            parts.append(F.coalesce(F.octet_length(F.to_json(c)), F.lit(0)))
    return sum(parts[1:], parts[0])


def _checks(df: DataFrame, w: GuardedWrite) -> tuple[Column, Column]:
    """(error type, reason) of the pre-checks, null for a row that passes."""
    key, size = F.col(f"`{w.key}`"), json_size(df)
    cases: list[tuple[Column, str, Column]] = [
        (key.isNull() | (key.cast("string") == ""), "missing_key", F.lit(f"no {w.key}: nothing to key the document by"))]
    if w.max_key_bytes:
        cases.append((F.octet_length(key.cast("string")) > w.max_key_bytes, "id_too_long",
                      F.format_string(f"{w.key} is %d bytes; the store allows {w.max_key_bytes}",
                                      F.octet_length(key.cast("string")))))
    cases.append((size > w.max_document_bytes, "document_too_large",
                  F.format_string(f"the document is about %d bytes as JSON; the limit is {w.max_document_bytes}", size)))
    kind, reason = F.lit(None).cast("string"), F.lit(None).cast("string")
    for cond, name, text in reversed(cases):
        kind, reason = F.when(cond, F.lit(name)).otherwise(kind), F.when(cond, text).otherwise(reason)
    return kind, reason


def write_or_dead_letter(df: DataFrame, settings: Settings, w: GuardedWrite) -> int:
    """Write ``df`` with ``w``; rows refused for good go to ``gold/dead_letter`` (how many is
    returned). Raises when the store itself is the problem, so the batch is retried."""
    kind, reason = _checks(df, w)
    flagged = df.withColumn(_CHECK, kind).persist()
    try:
        refused = flagged.where(F.col(_CHECK).isNotNull()).select(
            F.col(f"`{w.key}`").cast("string"), F.col(_CHECK), reason,
            payload_struct(df.columns, settings.gold.dead_letter_payload_bytes)).collect()
        rejected = [Rejected.of(*r) for r in refused]
        rejected += _write(flagged.where(F.col(_CHECK).isNull()).drop(_CHECK), w)
        if rejected:
            record(df.sparkSession, settings, w.sink, rejected)
        return len(rejected)
    finally:
        flagged.unpersist()


def _write(good: DataFrame, w: GuardedWrite) -> list[Rejected]:
    try:
        w.write(good)
        return []
    except (PySparkException, Py4JJavaError) as e:
        classes = jvm_classes(e)
        if not classes or store_unreachable(classes):
            raise  # a Python-side failure, or the store cannot be reached: retry the batch
        log.warning("%s refused part of a batch (%s); writing it row by row to find the rows it refuses",
                    w.sink, ", ".join(dict.fromkeys(c.rsplit(".", 1)[-1] for c in classes)))
        return w.isolate(good)


def _rows(sink: str, rejected: list[Rejected], payload_limit: int) -> list[tuple]:
    now, out = datetime.now(UTC), {}
    for r in rejected:
        raw = r.payload.encode()
        sha = r.payload_sha256 or hashlib.sha256(raw).hexdigest()
        out.setdefault((r.key, r.error_type, sha), (
            sink, r.key, r.error_type, scrub(r.reason), raw[:payload_limit].decode("utf-8", "ignore"),
            r.payload_bytes if r.payload_bytes is not None else len(raw), sha, now))
    return list(out.values())


def record(spark: SparkSession, settings: Settings, sink: str, rejected: list[Rejected], attempts: int = 4) -> None:
    """Add ``rejected`` to ``gold/dead_letter`` unless already there (a replayed batch adds nothing)."""
    from delta.exceptions import DeltaConcurrentModificationException
    from delta.tables import DeltaTable

    ensure_dead_letter(spark, settings)
    src = spark.createDataFrame(_rows(sink, rejected, settings.gold.dead_letter_payload_bytes), DEAD_LETTER_SCHEMA)
    t, s = "t.", "s."
    cond = ((F.col(t + "sink") == F.lit(sink)) & (F.col(t + "sink") == F.col(s + "sink"))
            & F.col(t + "key").eqNullSafe(F.col(s + "key")) & (F.col(t + "error_type") == F.col(s + "error_type"))
            & (F.col(t + "payload_sha256") == F.col(s + "payload_sha256")))
    for attempt in range(attempts):
        try:
            (DeltaTable.forPath(spark, settings.table_path(*GOLD_DEAD_LETTER)).alias("t")
             .merge(src.alias("s"), cond).whenNotMatchedInsertAll().execute())
            break
        except DeltaConcurrentModificationException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2 ** attempt)
    kinds = sorted({r.error_type for r in rejected})
    log.warning("%s refused %d row(s) for good (%s): kept in gold/dead_letter", sink, len(rejected), ", ".join(kinds))


def counts(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """Dead letters per sink (empty before any serving query created the table)."""
    from delta.tables import DeltaTable

    path = settings.table_path(*GOLD_DEAD_LETTER)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    rows = spark.read.format("delta").load(path).groupBy("sink").count().collect()
    return {r["sink"]: int(r["count"]) for r in rows}


def es_write(write: Callable[[DataFrame], None], isolate: Callable[[DataFrame], list[Rejected]], index: str,
             id_column: str, max_document_bytes: int = ES_MAX_DOCUMENT_BYTES) -> GuardedWrite:
    return GuardedWrite(es_sink(index), id_column, write, isolate, max_document_bytes, ES_MAX_ID_BYTES)


def mongo_write(write: Callable[[DataFrame], None], isolate: Callable[[DataFrame], list[Rejected]],
                collection: str) -> GuardedWrite:
    return GuardedWrite(mongo_sink(collection), "_id", write, isolate, MONGO_MAX_DOCUMENT_BYTES)
