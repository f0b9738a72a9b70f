"""A batch the connector could not write, written again so that every refusal names its row
(step 3 of :mod:`vitalwatch.sinks.dead_letter`).

Runs on the executors (``mapPartitions``, one client per partition) and sends the connectors'
own documents as upserts by key, so rows written twice are unchanged:

- Elasticsearch ``_bulk`` ``update`` + ``doc_as_upsert`` — elasticsearch-spark's ``upsert``;
  the document is the row as JSON with top-level timestamps and dates as epoch milliseconds
  and nulls left out, as elasticsearch-spark writes it. Per-item statuses; a request refused
  as a whole (400 validation, 413 too large) is split in halves down to the row.
- MongoDB ``bulk_write(ordered=False)`` of ``UpdateOne({_id}, {$set: row}, upsert=True)`` —
  mongo-spark-connector's ``update`` + ``upsertDocument``; values typed as the connector
  types them (``bigint`` → Int64, timestamps → UTC dates at millisecond precision, dates →
  midnight UTC, decimals → Decimal128, nulls kept). Each ``writeErrors`` entry names its row;
  a document over the BSON limit is refused before it is sent (one would fail the command).

Refusals of the store's own (429, 5xx, elections, write concern…) are retried ``TRIES`` times
with back-off; after that, or at once on a connection failure, the partition reports the
store down and the driver raises :class:`SinkUnavailable`, so the batch is retried."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, TypeVar

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DataType,
    DateType,
    DecimalType,
    LongType,
    MapType,
    StructType,
    TimestampType,
)

from vitalwatch.sinks.dead_letter import MONGO_MAX_DOCUMENT_BYTES, Rejected, payload_struct
from vitalwatch.sinks.rejections import (
    SinkUnavailable,
    Verdict,
    es_error,
    es_item_verdict,
    mongo_error_type,
    mongo_write_error_verdict,
    scrub,
)

T = TypeVar("T")
Outcome = tuple[str, str | None, str, str, Any]  # verdict, key, error type, reason, payload (a Row)
TRIES = 3
BACKOFF_S = 1.0
CHUNK_ITEMS = 500
CHUNK_BYTES = 4 * 1024 * 1024
ES_TIMEOUT_S = 60
_KEY, _DOC, _PAYLOAD = "_dl_key", "_dl_doc", "_dl_payload"


class _StoreDown(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind, self.reason = kind, reason


# -- driver side ---------------------------------------------------------------------------------
def es_isolate(df: DataFrame, base: str, headers: dict[str, str], index: str, id_column: str,
               sink: str, payload_limit: int) -> list[Rejected]:
    """Upsert ``df`` into ``index`` row-addressably; the rows refused for good."""
    docs = df.select(F.col(f"`{id_column}`").cast("string").alias(_KEY), es_document(df).alias(_DOC),
                     payload_struct(df.columns, payload_limit).alias(_PAYLOAD))
    return _settle(sink, docs.rdd.mapPartitions(partial(_es_partition, base, headers, index)).collect())


def mongo_isolate(df: DataFrame, uri: str, database: str, collection: str, sink: str,
                  payload_limit: int) -> list[Rejected]:
    """Upsert ``df`` (keyed by ``_id``) into ``collection`` row-addressably; the rows refused for good."""
    rows = df.withColumn(_PAYLOAD, payload_struct(df.columns, payload_limit))
    fn = partial(_mongo_partition, uri, database, collection, df.schema)
    return _settle(sink, rows.rdd.mapPartitions(fn).collect())


def _settle(sink: str, outcomes: list[Outcome]) -> list[Rejected]:
    down = [o for o in outcomes if o[0] == Verdict.RETRY.value]
    if down:
        raise SinkUnavailable(f"{sink} is unavailable: {down[0][2]}: {scrub(down[0][3], 300)}")
    return [Rejected.of(key, kind, reason, payload) for _v, key, kind, reason, payload in outcomes]


def es_document(df: DataFrame) -> Column:
    """A row as elasticsearch-spark writes it: JSON, top-level times as epoch milliseconds."""
    def value(name: str, dtype: DataType) -> Column:
        c = F.col(f"`{name}`")
        if isinstance(dtype, TimestampType):
            return F.unix_millis(c).alias(name)
        if isinstance(dtype, DateType):
            return F.unix_millis(c.cast("timestamp")).alias(name)
        return c

    return F.to_json(F.struct(*[value(f.name, f.dataType) for f in df.schema.fields]))


def _chunks(items: Iterable[T], size: Callable[[T], int]) -> Iterator[list[T]]:
    chunk: list[T] = []
    total = 0
    for it in items:
        n = size(it)
        if chunk and (len(chunk) >= CHUNK_ITEMS or total + n > CHUNK_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(it)
        total += n
    if chunk:
        yield chunk


def _partition(work: Callable[[], list[Outcome]]) -> Iterator[Outcome]:
    try:
        return iter(work())
    except _StoreDown as e:
        return iter([(Verdict.RETRY.value, None, e.kind, e.reason, None)])


# -- Elasticsearch (executors) ---------------------------------------------------------------------
def _es_partition(base: str, headers: dict[str, str], index: str, rows: Iterable[Row]) -> Iterator[Outcome]:
    import requests

    def work() -> list[Outcome]:
        with requests.Session() as session:
            session.headers.update(headers)
            post = partial(_es_post, session, base, index)
            items = ((r[_KEY], r[_DOC], r[_PAYLOAD]) for r in rows)
            return [o for chunk in _chunks(items, lambda it: len(it[1]) + 100) for o in _es_chunk(post, chunk)]

    return _partition(work)


def _bulk_body(index: str, items: list[tuple[str, str, str]]) -> bytes:
    head = json.dumps(index)
    return "".join(f'{{"update":{{"_index":{head},"_id":{json.dumps(k)}}}}}\n{{"doc":{doc},"doc_as_upsert":true}}\n'
                   for k, doc, _p in items).encode()


def _es_post(session: Any, base: str, index: str, items: list[tuple[str, str, str]]) -> tuple[int, Any]:
    import requests

    try:
        r = session.post(f"{base}/_bulk", data=_bulk_body(index, items),
                         headers={"Content-Type": "application/x-ndjson"}, timeout=ES_TIMEOUT_S)
    except requests.RequestException as e:
        raise _StoreDown(type(e).__name__, str(e)) from e
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def _es_chunk(post: Callable[[list], tuple[int, Any]], pending: list[tuple[str, str, str]]) -> list[Outcome]:
    out: list[Outcome] = []
    last = ("unknown", "")
    for attempt in range(TRIES):
        status, body = post(pending)
        items = body.get("items") if isinstance(body, dict) else None
        if items is None:  # the request refused as a whole
            kind, reason = ("request_entity_too_large", "larger than http.max_content_length") if status == 413 \
                else es_error(body.get("error") if isinstance(body, dict) else body)
            if es_item_verdict(status, kind) is Verdict.ROW:
                if len(pending) == 1:
                    return [*out, (Verdict.ROW.value, pending[0][0], kind, reason, pending[0][2])]
                mid = len(pending) // 2
                return out + _es_chunk(post, pending[:mid]) + _es_chunk(post, pending[mid:])
            last = (kind, f"HTTP {status}: {reason}")
        else:
            again = []
            for it, item in zip(pending, items, strict=True):
                res = next(iter(item.values()))
                st = int(res.get("status", 200))
                if st < 300:
                    continue
                kind, reason = es_error(res.get("error"))
                if es_item_verdict(st, kind) is Verdict.ROW:
                    out.append((Verdict.ROW.value, it[0], kind, reason, it[2]))
                else:
                    again.append(it)
                    last = (kind, f"HTTP {st}: {reason}")
            if not again:
                return out
            pending = again
        if attempt < TRIES - 1:
            time.sleep(BACKOFF_S * 2 ** attempt)
    raise _StoreDown(*last)


# -- MongoDB (executors) --------------------------------------------------------------------------
def bson_value(value: Any, dtype: DataType) -> Any:
    """A Spark value as mongo-spark-connector stores it."""
    from bson import Decimal128, Int64

    if value is None:
        return None
    if isinstance(dtype, StructType):
        return {f.name: bson_value(value[f.name], f.dataType) for f in dtype.fields}
    if isinstance(dtype, ArrayType):
        return [bson_value(v, dtype.elementType) for v in value]
    if isinstance(dtype, MapType):
        return {str(k): bson_value(v, dtype.valueType) for k, v in value.items()}
    if isinstance(dtype, LongType):
        return Int64(value)
    if isinstance(dtype, TimestampType):  # PySpark hands a naive local time (or an aware one)
        return value.astimezone(UTC)
    if isinstance(dtype, DateType) and isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(dtype, DecimalType):
        return Decimal128(value)
    if isinstance(dtype, BinaryType):
        return bytes(value)
    return value


def _mongo_partition(uri: str, database: str, collection: str, schema: StructType,
                     rows: Iterable[Row]) -> Iterator[Outcome]:
    import bson
    import pymongo

    def work() -> list[Outcome]:
        out: list[Outcome] = []
        client: Any = pymongo.MongoClient(uri, connectTimeoutMS=10_000, socketTimeoutMS=120_000)
        try:
            coll = client[database][collection]

            def sized() -> Iterator[tuple[dict, Any, int]]:
                for r in rows:
                    doc = bson_value(r, schema)
                    n = len(bson.encode(doc))
                    if n <= MONGO_MAX_DOCUMENT_BYTES:
                        yield doc, r[_PAYLOAD], n
                    else:  # sent, it would fail the whole command, not just itself
                        out.append((Verdict.ROW.value, _str(doc.get("_id")), "BSONObjectTooLarge(10334)",
                                    f"the document is {n} bytes as BSON; MongoDB allows {MONGO_MAX_DOCUMENT_BYTES}",
                                    r[_PAYLOAD]))

            for chunk in _chunks(sized(), lambda it: it[2]):
                out += _mongo_chunk(coll, [(d, p) for d, p, _n in chunk])
            return out
        finally:
            client.close()

    return _partition(work)


def _mongo_reason(error: dict[str, Any]) -> str:
    """The server's message, with its ``errInfo`` (which rule a document failed) when it has one."""
    info = error.get("errInfo")
    return f"{error.get('errmsg', '')}: {json.dumps(info, default=str)}" if info else str(error.get("errmsg", ""))


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _mongo_chunk(coll: Any, pending: list[tuple[dict, str]]) -> list[Outcome]:
    from pymongo import UpdateOne
    from pymongo.errors import BulkWriteError, InvalidDocument, OperationFailure, PyMongoError

    out: list[Outcome] = []
    last = ("unknown", "")
    for attempt in range(TRIES):
        ops = [UpdateOne({"_id": d["_id"]}, {"$set": {k: v for k, v in d.items() if k != "_id"}}, upsert=True)
               for d, _p in pending]
        try:
            coll.bulk_write(ops, ordered=False)
            return out
        except BulkWriteError as e:
            failed = {int(w["index"]): w for w in e.details.get("writeErrors", [])}
            rows = {i for i, w in failed.items() if mongo_write_error_verdict(w) is Verdict.ROW}
            out += [(Verdict.ROW.value, _str(pending[i][0].get("_id")), mongo_error_type(failed[i]),
                     _mongo_reason(failed[i]), pending[i][1]) for i in sorted(rows)]
            concern = e.details.get("writeConcernErrors") or []
            again = [p for i, p in enumerate(pending) if i not in rows and (i in failed or concern)]
            for i in set(failed) - rows:
                last = (mongo_error_type(failed[i]), str(failed[i].get("errmsg", "")))
            if concern:
                last = ("WriteConcernError", str(concern[0].get("errmsg", "")))
            if not again:
                return out
            pending = again
        except (InvalidDocument, OperationFailure) as e:  # pymongo cannot send one, or the command refused
            code = getattr(e, "code", None)
            if isinstance(e, OperationFailure) and code not in (10334, 17419):
                raise _StoreDown(f"OperationFailure({code})", str(e)) from e
            if len(pending) == 1:
                return [*out, (Verdict.ROW.value, _str(pending[0][0].get("_id")),
                               type(e).__name__ if code is None else f"BSONObjectTooLarge({code})",
                               str(e), pending[0][1])]
            mid = len(pending) // 2
            return out + _mongo_chunk(coll, pending[:mid]) + _mongo_chunk(coll, pending[mid:])
        except PyMongoError as e:  # connection, server selection, timeouts
            raise _StoreDown(type(e).__name__, str(e)) from e
        if attempt < TRIES - 1:
            time.sleep(BACKOFF_S * 2 ** attempt)
    raise _StoreDown(*last)
