"""Is a store's refusal about one row (dead-letter it, write the rest) or about the store
(fail the batch so the query retries it)? One place for the rules; see
:mod:`vitalwatch.sinks.dead_letter` for how they are used.

Only what the server says about *one document* dead-letters it:

- Elasticsearch, per bulk item (or a one-document request): 4xx — mapping/parsing errors
  (``document_parsing_exception``, ``mapper_parsing_exception``,
  ``strict_dynamic_mapping_exception``, ``illegal_argument_exception``), a request that fails
  validation for that document (``action_request_validation_exception``: id too long,
  missing), 413 (the document alone exceeds ``http.max_content_length``) — except the
  statuses and types that describe the store: 401/403/404/408/409, 429 and 5xx,
  ``cluster_block_exception`` (read-only or flood-stage blocks, lifted by the cluster),
  ``index_closed_exception``, ``index_not_found_exception``, ``es_rejected_execution_exception``,
  ``circuit_breaking_exception``, unavailable shards, ``version_conflict_engine_exception``…
- MongoDB, per write error of an unordered bulk: the document's own faults (121 validation,
  10334 / 17419 too large, 2 BadValue, 52/56/57 field names, 11000 on a secondary unique
  index…) — except the codes of an unavailable or unauthorised server (network, elections,
  shutdown, 13/18, write concern) and 11000 on ``_id`` (two upserts of one id raced: the
  retry succeeds).

Everything else — connection refused, timeouts, authentication, a whole command refused for
a reason that is not one document — is the store's: the batch fails and is retried."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    ROW = "row"      # this document can never be written as it is: dead-letter it
    RETRY = "retry"  # the store, not the row: fail the batch, the query retries it


class SinkUnavailable(RuntimeError):
    """A store refused a batch for a reason that is not one of its rows (down, overloaded,
    blocked, unauthorised): the batch fails and the query retries it."""


ES_RETRY_STATUSES = frozenset({401, 403, 404, 408, 409, 429})
ES_RETRY_TYPES = frozenset({
    "es_rejected_execution_exception", "circuit_breaking_exception", "cluster_block_exception",
    "unavailable_shards_exception", "no_shard_available_action_exception", "node_not_connected_exception",
    "node_disconnected_exception", "node_closed_exception", "connect_transport_exception",
    "receive_timeout_transport_exception", "process_cluster_event_timeout_exception",
    "master_not_discovered_exception", "primary_missing_action_exception", "no_node_available_exception",
    "version_conflict_engine_exception", "index_closed_exception", "index_not_found_exception",
    "invalid_index_name_exception", "security_exception", "timeout_exception",
    "illegal_index_shard_state_exception", "shard_not_in_primary_mode_exception",
})

# MongoDB error codes that describe the server, not the document: network, elections and
# shutdown, time limits, stale routing, auth, write concern, a view in the collection's place.
MONGO_RETRY_CODES = frozenset({
    6, 7, 11, 13, 18, 50, 63, 64, 89, 91, 112, 133, 134, 150, 166, 189, 202, 251, 262, 8000, 9001,
    10107, 11600, 11602, 13388, 13435, 13436,
})

_SECRET = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_AUTH_HEADER = re.compile(r"(?i)(authorization|api[-_]?key|password|pwd)([\"']?\s*[:=]\s*[\"']?)"
                          r"(?:(?:basic|bearer|apikey)\s+)?[^\s,\"'}]+")


def es_item_verdict(status: int, error_type: str | None) -> Verdict:
    """A bulk item's (or a one-document request's) refusal."""
    if status >= 500 or status in ES_RETRY_STATUSES or (error_type or "") in ES_RETRY_TYPES:
        return Verdict.RETRY
    return Verdict.ROW if 400 <= status < 500 else Verdict.RETRY


def es_error(error: Any) -> tuple[str, str]:
    """``(type, reason)`` of an Elasticsearch ``error`` object (or a bare string), the root
    cause's reason appended when it says more."""
    if not isinstance(error, Mapping):
        return "error", str(error or "")
    kind = str(error.get("type") or "error")
    reason = str(error.get("reason") or "")
    cause = error.get("caused_by")
    if isinstance(cause, Mapping) and cause.get("reason") and str(cause["reason"]) not in reason:
        reason = f"{reason} (caused by {cause.get('type')}: {cause['reason']})"
    return kind, reason


def mongo_write_error_verdict(error: Mapping[str, Any]) -> Verdict:
    """One ``writeErrors`` entry of a ``BulkWriteError``."""
    code = error.get("code")
    if code == 11000:
        key = error.get("keyPattern")
        on_id = list(key) == ["_id"] if isinstance(key, Mapping) else "index: _id_ " in str(error.get("errmsg"))
        return Verdict.RETRY if on_id else Verdict.ROW
    if code in MONGO_RETRY_CODES or "RetryableWriteError" in (error.get("errorLabels") or ()):
        return Verdict.RETRY
    return Verdict.ROW


def mongo_error_type(error: Mapping[str, Any]) -> str:
    name = error.get("codeName") or {121: "DocumentValidationFailure", 11000: "DuplicateKey",
                                      10334: "BSONObjectTooLarge", 17419: "BSONObjectTooLarge", 2: "BadValue",
                                      52: "DollarPrefixedFieldName", 56: "EmptyFieldName",
                                      57: "DottedFieldName"}.get(error.get("code"), "WriteError")
    return f"{name}({error.get('code')})"


# JVM exceptions that mean the store could not be reached or refused us as a client: the
# batch is retried without trying row by row. Matched on class names only (never on
# messages, which quote the rejected documents: a row must not be able to pass for an outage).
UNREACHABLE_JVM_CLASSES = (
    "java.net.ConnectException", "java.net.SocketTimeoutException", "java.net.UnknownHostException",
    "java.net.NoRouteToHostException", "java.net.SocketException",
    "com.mongodb.MongoTimeoutException", "com.mongodb.MongoSocket", "com.mongodb.MongoSecurityException",
    "com.mongodb.MongoNotPrimaryException", "com.mongodb.MongoNodeIsRecoveringException",
    "com.mongodb.MongoConnectionPoolClearedException", "com.mongodb.MongoInterruptedException",
    "com.mongodb.MongoServerUnavailableException", "com.mongodb.MongoWriteConcernException",
    "org.elasticsearch.hadoop.rest.EsHadoopNoNodesLeftException",
    "org.elasticsearch.hadoop.rest.EsHadoopTransportException",
)


def jvm_classes(exc: BaseException, limit: int = 64) -> list[str]:
    """Class names of a Py4J/PySpark exception's JVM exception, its causes and suppressed
    exceptions (empty for a Python exception)."""
    root = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    out: list[str] = []
    seen: set[int] = set()
    todo = [root] if root is not None else []
    while todo and len(out) < limit:
        t = todo.pop()
        try:
            h = t.hashCode()
            if h in seen:
                continue
            seen.add(h)
            out.append(t.getClass().getName())
            todo.extend(list(t.getSuppressed() or []))
            if t.getCause() is not None:
                todo.append(t.getCause())
        except Exception:
            break
    return out


def store_unreachable(classes: list[str]) -> bool:
    return any(c.startswith(p) for c in classes for p in UNREACHABLE_JVM_CLASSES)


def scrub(text: str, limit: int = 1000) -> str:
    """``text`` without credentials (``scheme://user:password@`` and auth headers), cut to ``limit``."""
    text = _AUTH_HEADER.sub(r"\1\2***", _SECRET.sub(r"\1***@", text))
    return text if len(text) <= limit else text[: limit - 1] + "…"
