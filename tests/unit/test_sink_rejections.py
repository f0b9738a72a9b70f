"""Which refusals dead-letter a row and which retry the batch (lib/vitalwatch/sinks/rejections.py),
on error payloads captured from the real servers this project runs (Elasticsearch 8.19
integ-test-zip, mongod 6.0.5, mongo-spark-connector 10.5, elasticsearch-spark 8.19), and the
row-isolation loop (lib/vitalwatch/sinks/isolate.py) driven by those payloads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from bson import Int64

from vitalwatch.sinks import isolate
from vitalwatch.sinks.dead_letter import Rejected, _rows
from vitalwatch.sinks.rejections import (
    Verdict,
    es_error,
    es_item_verdict,
    mongo_error_type,
    mongo_write_error_verdict,
    scrub,
    store_unreachable,
)

# -- Elasticsearch 8.19 `_bulk` answers (update + doc_as_upsert), as the server sent them --------
ES_ITEMS = {
    "mapping": {"update": {"_index": "vitalwatch-risk", "_id": "bad-mapping", "status": 400, "error": {
        "type": "document_parsing_exception",
        "reason": "[1:13] failed to parse field [systolic] of type [double] in document with id 'bad-mapping'. "
                  "Preview of field's value: 'not-a-number'",
        "caused_by": {"type": "number_format_exception", "reason": "For input string: \"not-a-number\""}}}},
    "strict": {"update": {"_index": "vitalwatch-risk", "_id": "strict", "status": 400, "error": {
        "type": "strict_dynamic_mapping_exception",
        "reason": "[1:18] mapping set to strict, dynamic introduction of [unknown_field] within [_doc] is not allowed"}}},
    "empty_field": {"update": {"_index": "probe-x", "_id": "b", "status": 400, "error": {
        "type": "document_parsing_exception", "reason": "[1:2] failed to parse: field name cannot be an empty string",
        "caused_by": {"type": "illegal_argument_exception", "reason": "field name cannot be an empty string"}}}},
    "closed": {"update": {"_index": "probe-closed", "_id": "a", "status": 400, "error": {
        "type": "index_closed_exception", "reason": "closed", "index_uuid": "Kqdda7MvQZy0UeHg38Y22w",
        "index": "probe-closed"}}},
    "bad_index": {"update": {"_index": "Probe-Upper", "_id": "a", "status": 400, "error": {
        "type": "invalid_index_name_exception", "reason": "Invalid index name [Probe-Upper], must be lowercase",
        "index_uuid": "_na_", "index": "Probe-Upper"}}},
    "write_block": {"update": {"_index": "probe-ro", "_id": "a", "status": 403, "error": {
        "type": "cluster_block_exception", "reason": "index [probe-ro] blocked by: [FORBIDDEN/8/index write (api)];"}}},
    "flood_stage": {"update": {"_index": "probe-ro2", "_id": "a", "status": 429, "error": {
        "type": "cluster_block_exception",
        "reason": "index [probe-ro2] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, "
                  "index has read-only-allow-delete block; for more information, see https://www.elastic.co/guide/"
                  "en/elasticsearch/reference/8.19/fix-watermark-errors.html];"}}},
    "ok": {"update": {"_index": "vitalwatch-risk", "_id": "good1", "_version": 1, "result": "created",
                      "_shards": {"total": 1, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1,
                      "status": 201}},
}
# A request refused as a whole (HTTP 400) for one of its documents: the id over 512 bytes.
ES_ID_TOO_LONG = {"error": {"root_cause": [{"type": "action_request_validation_exception",
                                            "reason": "Validation Failed: 1: id [xxx] is too long, must be no longer "
                                                      "than 512 bytes but was: 600;"}],
                            "type": "action_request_validation_exception",
                            "reason": "Validation Failed: 1: id [xxx] is too long, must be no longer than 512 bytes "
                                      "but was: 600;"}, "status": 400}

# -- mongod 6.0.5 BulkWriteError.details["writeErrors"] entries (ordered=False upserts) ----------
MONGO_VALIDATION = {"index": 1, "code": 121, "errmsg": "Document failed validation", "errInfo": {
    "failingDocumentId": "bad", "details": {"operatorName": "$jsonSchema", "schemaRulesNotSatisfied": [
        {"operatorName": "properties", "propertiesNotSatisfied": [{"propertyName": "level", "details": [
            {"operatorName": "enum", "specifiedAs": {"enum": ["LOW", "MEDIUM", "HIGH", "CRITICAL"]},
             "reason": "value was not found in enum", "consideredValue": "BOGUS"}]}]}]}}}
MONGO_DUP_SECONDARY = {"index": 0, "code": 11000,
                       "errmsg": "E11000 duplicate key error collection: vw_probe.c index: u_1 dup key: { u: 1 }",
                       "keyPattern": {"u": 1}, "keyValue": {"u": 1}}
MONGO_DUP_ID = {"index": 0, "code": 11000,
                "errmsg": "E11000 duplicate key error collection: vw_probe.c index: _id_ dup key: { _id: \"c\" }",
                "keyPattern": {"_id": 1}, "keyValue": {"_id": "c"}}
MONGO_GREW_TOO_LARGE = {"index": 1, "code": 10334, "errmsg": "BSONObj size: 18874412 (0x120002C) is invalid. Size "
                        "must be between 0 and 16793600(16MB) First element: _id: \"a\""}

# -- JVM exception chains of failed connector writes (jvm_classes of the Py4JJavaError) ---------
CHAINS = {
    "es_mapping": ["org.apache.spark.SparkException", "org.apache.spark.util.TaskCompletionListenerException",
                   "org.elasticsearch.hadoop.EsHadoopException"],
    "es_id_too_long": ["org.apache.spark.SparkException", "org.apache.spark.util.TaskCompletionListenerException",
                       "org.elasticsearch.hadoop.rest.EsHadoopInvalidRequest"],
    "es_refused": ["org.elasticsearch.hadoop.EsHadoopIllegalArgumentException",
                   "org.elasticsearch.hadoop.rest.EsHadoopNoNodesLeftException"],
    "mongo_validation": ["org.apache.spark.SparkException", "org.apache.spark.SparkException",
                         "com.mongodb.spark.sql.connector.exceptions.DataException"],
    "mongo_too_large": ["org.apache.spark.SparkException", "org.apache.spark.SparkException",
                        "org.bson.BsonMaximumSizeExceededException",
                        "com.mongodb.spark.sql.connector.exceptions.DataException"],
    "mongo_refused": ["org.apache.spark.SparkException", "org.apache.spark.SparkException",
                      "com.mongodb.MongoTimeoutException", "com.mongodb.spark.sql.connector.exceptions.DataException"],
}


def item(name: str) -> tuple[int, str]:
    res = ES_ITEMS[name]["update"]
    return res["status"], res.get("error", {}).get("type")


@pytest.mark.parametrize(("name", "verdict"), [
    ("mapping", Verdict.ROW), ("strict", Verdict.ROW), ("empty_field", Verdict.ROW),
    ("closed", Verdict.RETRY), ("bad_index", Verdict.RETRY), ("write_block", Verdict.RETRY),
    ("flood_stage", Verdict.RETRY)])
def test_es_bulk_items(name: str, verdict: Verdict) -> None:
    assert es_item_verdict(*item(name)) is verdict


def test_es_statuses_of_the_store_retry() -> None:
    assert es_item_verdict(400, ES_ID_TOO_LONG["error"]["type"]) is Verdict.ROW  # one document's request
    assert es_item_verdict(413, "request_entity_too_large") is Verdict.ROW
    for status, kind in [(429, "es_rejected_execution_exception"), (503, "unavailable_shards_exception"),
                         (500, "illegal_state_exception"), (409, "version_conflict_engine_exception"),
                         (401, "security_exception"), (404, "index_not_found_exception"), (400, "security_exception")]:
        assert es_item_verdict(status, kind) is Verdict.RETRY, (status, kind)


def test_es_error_keeps_the_root_cause() -> None:
    kind, reason = es_error(ES_ITEMS["mapping"]["update"]["error"])
    assert kind == "document_parsing_exception"
    assert "of type [double]" in reason and "number_format_exception: For input string" in reason
    assert es_error(None) == ("error", "") and es_error("oops") == ("error", "oops")


def test_mongo_write_errors() -> None:
    assert mongo_write_error_verdict(MONGO_VALIDATION) is Verdict.ROW
    assert mongo_write_error_verdict(MONGO_DUP_SECONDARY) is Verdict.ROW
    assert mongo_write_error_verdict(MONGO_GREW_TOO_LARGE) is Verdict.ROW
    assert mongo_write_error_verdict(MONGO_DUP_ID) is Verdict.RETRY  # two upserts of one _id raced
    assert mongo_write_error_verdict({"code": 11000, "errmsg": "E11000 ... index: _id_ dup key"}) is Verdict.RETRY
    for code in (91, 189, 10107, 11600, 13, 64, 262):
        assert mongo_write_error_verdict({"code": code, "errmsg": "x"}) is Verdict.RETRY, code
    assert mongo_write_error_verdict({"code": 2, "errorLabels": ["RetryableWriteError"]}) is Verdict.RETRY
    # the message is never read: a document quoting an outage is still the document's fault
    assert mongo_write_error_verdict({**MONGO_VALIDATION, "errmsg": "Connection refused"}) is Verdict.ROW
    assert mongo_error_type(MONGO_VALIDATION) == "DocumentValidationFailure(121)"
    assert mongo_error_type({"code": 10334, "codeName": "BSONObjectTooLarge"}) == "BSONObjectTooLarge(10334)"


@pytest.mark.parametrize(("name", "unreachable"), [
    ("es_mapping", False), ("es_id_too_long", False), ("es_refused", True),
    ("mongo_validation", False), ("mongo_too_large", False), ("mongo_refused", True)])
def test_failed_connector_writes(name: str, unreachable: bool) -> None:
    assert store_unreachable(CHAINS[name]) is unreachable


def test_scrub_removes_credentials_and_cuts() -> None:
    text = ("MongoSecurityException for mongodb://vitalwatch_pipeline:s3cr3t-pw@127.0.0.1:27017/?authSource=vw "
            "with Authorization: ApiKey abc123 and {'password': 'hunter2'}")
    out = scrub(text)
    assert "s3cr3t-pw" not in out and "abc123" not in out and "hunter2" not in out
    assert "mongodb://***@127.0.0.1:27017" in out
    assert scrub("x" * 50, 10) == "x" * 9 + "…"


def test_dead_letter_rows_dedupe_and_cut_on_a_character() -> None:
    payload = json.dumps({"ward": "é" * 2000})
    rows = _rows("mongo:alerts", [Rejected("k", "BadValue(2)", "r", payload)] * 2
                 + [Rejected("k", "BadValue(2)", "r", payload + " ")], 1001)
    assert len(rows) == 2, "the same row twice in a batch is one dead letter; another payload is another"
    cut = rows[0][4]
    assert len(cut.encode()) <= 1001 and payload.startswith(cut) and rows[0][5] == len(payload.encode())


# -- the isolation loop, fed with the servers' answers -------------------------------------------
def fake_es(answers: dict[str, dict]):
    """A ``_bulk`` endpoint answering per document id as the real server did; a chunk holding
    the long id is refused as a whole, as ES does."""
    calls: list[list[str]] = []

    def post(items):
        ids = [k for k, _d, _p in items]
        calls.append(ids)
        if any(len(k) > 512 for k in ids):
            return 400, ES_ID_TOO_LONG
        if "huge" in ids:  # over http.max_content_length: 413 and an empty body
            return 413, ""
        return 200, {"errors": True, "items": [answers.get(k, ES_ITEMS["ok"]) for k in ids]}

    return post, calls


def test_es_chunk_splits_a_refused_request_down_to_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolate, "BACKOFF_S", 0)
    post, calls = fake_es({"bad": ES_ITEMS["mapping"]})
    docs = [(k, "{}", f"payload-{k}") for k in ["a", "b", "x" * 600, "bad", "huge", "c"]]
    out = isolate._es_chunk(post, docs)
    assert sorted((o[0], o[1][:4], o[2]) for o in out) == [
        ("row", "bad", "document_parsing_exception"), ("row", "huge", "request_entity_too_large"),
        ("row", "xxxx", "action_request_validation_exception")]
    assert all(o[4] == f"payload-{o[1]}" for o in out)
    assert ["x" * 600] in calls, "the long id was isolated in a request of its own"


def test_es_chunk_retries_the_store_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolate, "BACKOFF_S", 0)
    answers = {"a": ES_ITEMS["flood_stage"]}
    post, calls = fake_es(answers)
    with pytest.raises(isolate._StoreDown, match="cluster_block_exception"):
        isolate._es_chunk(post, [("a", "{}", ""), ("b", "{}", "")])
    assert calls == [["a", "b"], ["a"], ["a"]], "only the refused item is sent again, TRIES times"
    answers.clear()  # the block lifted: the retry succeeds, nothing is dead-lettered
    post, _ = fake_es({})
    assert isolate._es_chunk(post, [("a", "{}", "")]) == []


def test_bson_values_are_the_connectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """bigint → Int64, a timestamp (PySpark hands a naive local time) → its UTC instant, a date →
    midnight UTC — as mongo-spark-connector stores them, whatever the worker's time zone."""
    import time

    from pyspark.sql.types import DateType, LongType, StructField, StructType, TimestampType

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        schema = StructType([StructField("l", LongType()), StructField("t", TimestampType()),
                             StructField("d", DateType())])
        instant = datetime(2026, 6, 1, 14, 30, 5, 123000, tzinfo=UTC)
        naive_local = datetime.fromtimestamp(instant.timestamp())
        assert naive_local.hour == 10
        doc = isolate.bson_value({"l": 7, "t": naive_local, "d": date(2026, 6, 1)}, schema)
        assert type(doc["l"]) is Int64 and doc["t"] == instant
        assert doc["d"] == datetime(2026, 6, 1, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
