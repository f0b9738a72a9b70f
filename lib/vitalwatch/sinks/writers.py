"""The gold writers: the Kafka topics (:meth:`Sinks.publish_alerts`, on the alert path), MongoDB
and Elasticsearch (the ``store_*`` methods, one store each, from :mod:`vitalwatch.pipeline.serving`).
Webhooks are the notifier's (:mod:`vitalwatch.alerts.notifier`).

:class:`Sinks` is built once per query on the driver and called from ``foreachBatch``; each
write is keyed by observation or alert id, so replaying a batch changes nothing.
A sink that is down makes the batch fail: the query stops, and the supervisor
(:func:`vitalwatch.pipeline.runner.run_continuous`) restarts it from its checkpoint, which
replays the batch — nothing is lost and, thanks to the keys, nothing is doubled. A row a store
refuses for good does not: it goes to ``gold/dead_letter`` and the rest of the batch is written
(:mod:`vitalwatch.sinks.dead_letter`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import PyMongoError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints, resolve
from vitalwatch.pipeline.keys import es_id, score_key
from vitalwatch.sinks import mongo, search
from vitalwatch.sinks.dead_letter import (
    ES_MAX_DOCUMENT_BYTES,
    mongo_sink,
    mongo_write,
    write_or_dead_letter,
)
from vitalwatch.sinks.events import kafka_records, normal_assessments

log = logging.getLogger(__name__)
SINKS = ("mongo", "elasticsearch", "kafka")
_MONGO_SCORE_COLUMNS = ["patient_id", "observation_id", "effective_time", "systolic", "diastolic", "heart_rate",
                        "respiratory_rate", "spo2", "temperature", "score_status", "level", "level_reasons",
                        "crisis_now", "news2", "news2_red_flag", "model_name", "model_version", "alert_id",
                        "scored_time"]


@dataclass
class Sinks:
    spark: SparkSession
    settings: Settings
    endpoints: Endpoints
    enabled: tuple[str, ...] = SINKS
    delivered: dict[str, int] = field(default_factory=dict)
    es_max_document_bytes: int = ES_MAX_DOCUMENT_BYTES  # larger documents are dead-lettered, not sent
                                                        # (from gold.es_max_document_bytes)
    _teams: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict, repr=False)
    _client: Any = field(default=None, repr=False)
    _registry_retry_at: float = field(default=0.0, repr=False)

    @classmethod
    def from_settings(cls, spark: SparkSession, settings: Settings, enabled: list[str] | None = None) -> Sinks:
        enabled = tuple(enabled if enabled is not None else settings.gold.sinks)
        unknown = set(enabled) - set(SINKS)
        if unknown:
            raise ValueError(f"unknown sinks {sorted(unknown)}; known: {', '.join(SINKS)}")
        need = tuple(n for n, s in (("kafka", "kafka"), ("mongo", "mongo"), ("elasticsearch", "elasticsearch"))
                     if s in enabled)
        return cls(spark, settings, resolve(settings, need or ("kafka",)), enabled,
                   es_max_document_bytes=settings.gold.es_max_document_bytes)

    # -- setup -------------------------------------------------------------------------------
    @property
    def mongo_uri(self) -> str:
        return mongo.pipeline_uri(self.settings, self.endpoints.mongo_uri or "")

    def _db(self):
        """One client per Sinks (connecting and authenticating per batch costs more than the query)."""
        import pymongo

        if self._client is None:
            timeout_ms = int(self.settings.alerts.registry_timeout_s * 1000)
            self._client = pymongo.MongoClient(self.mongo_uri, serverSelectionTimeoutMS=timeout_ms,
                                               connectTimeoutMS=timeout_ms)
        return self._client[self.settings.mongo.database]

    def care_teams(self, patient_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Ward and care team of the registered patients among ``patient_ids``, for routing.

        Cached for ``alerts.registry_cache_s``. An alert must not wait on the registry: if it
        cannot be reached within ``alerts.registry_timeout_s`` the cached entry is used, else
        the patient is routed like an unregistered one (the fallback team, ward ``unassigned``),
        and it is not asked again for ``alerts.registry_retry_s``."""
        if "mongo" not in self.enabled:
            return {}
        now = time.monotonic()
        ttl = self.settings.alerts.registry_cache_s
        stale = [p for p in patient_ids if p not in self._teams or now - self._teams[p][0] > ttl]
        if stale and now >= self._registry_retry_at:
            try:
                found = mongo.care_teams(self._db(), stale)
            except PyMongoError as e:
                # Not asked again for a while: every batch paying the timeout would delay every alert.
                self._registry_retry_at = now + self.settings.alerts.registry_retry_s
                log.warning("patient registry unreachable (%s): %d patients routed from the cache or to "
                            "the fallback team; asking again in %.0f s", str(e).splitlines()[0][:200], len(stale),
                            self.settings.alerts.registry_retry_s)
            else:
                self._teams.update({p: (now, found.get(p)) for p in stale})
        return {p: self._teams[p][1] for p in patient_ids if p in self._teams and self._teams[p][1]}

    # -- writes --------------------------------------------------------------------------------
    def publish_alerts(self, alerts: DataFrame) -> None:
        """Alert events to ``vitals.alerts``: the first write of a batch (people wait on it)."""
        if "kafka" in self.enabled:
            self._publish(kafka_records(alerts), self.settings.kafka.topics.alerts)

    def follow_ups(self, risk: DataFrame, alerts: DataFrame, any_alert: bool) -> list[tuple[str, Callable[[], None]]]:
        """The other channels, independent of each other (the caller may run them at once):
        below-alert assessments to ``vitals.normal``. Empty writes are left out."""
        s, out = self.settings, []
        if "kafka" in self.enabled and s.alerts.publish_normal:
            out.append(("kafka_normal",
                        lambda: self._publish(kafka_records(normal_assessments(risk, s)), s.kafka.topics.normal)))
        return out

    def store_scores_mongo(self, risk: DataFrame, status: DataFrame) -> None:
        """``gold/risk_scores`` readings and the patients' status into MongoDB."""
        if "mongo" in self.enabled:
            self._write_mongo_scores(risk.where(F.col("observation_id").isNotNull()), status)

    def store_scores_es(self, risk: DataFrame) -> None:
        """``gold/risk_scores`` readings into Elasticsearch ``vitalwatch-risk``."""
        if "elasticsearch" in self.enabled:
            readings = risk.where(F.col("observation_id").isNotNull())
            search.write(readings.withColumn("doc_id", es_id(score_key())), self.settings,
                         self.endpoints.es_nodes or "", "risk", "doc_id", self.es_max_document_bytes)

    def store_alerts_mongo(self, alerts: DataFrame) -> None:
        """``gold/alerts`` rows into MongoDB, keyed by ``alert_id``."""
        if "mongo" in self.enabled:
            self._write_mongo(alerts.withColumn("_id", F.col("alert_id")), "alerts")

    def store_alerts_es(self, alerts: DataFrame) -> None:
        """``gold/alerts`` rows into Elasticsearch, keyed by ``alert_id``."""
        if "elasticsearch" in self.enabled:
            search.write(alerts, self.settings, self.endpoints.es_nodes or "", "alerts", "alert_id",
                         self.es_max_document_bytes)

    def _write_mongo_scores(self, risk: DataFrame, status: DataFrame) -> None:
        scores = risk.select(score_key().alias("_id"), *_MONGO_SCORE_COLUMNS,
                             *[c for c in risk.columns if c.startswith("risk_")])
        self._write_mongo(scores, "risk_scores")
        self._write_mongo(status.select(F.col("patient_id").alias("_id"), F.struct(*status.columns).alias("status")),
                          "patients")
        pids = [r[0] for r in risk.select("patient_id").distinct().collect()]
        mongo.trim_scores(self._db(), pids, self.settings.gold.mongo_latest_scores)

    def _write_mongo(self, docs: DataFrame, collection: str) -> int:
        """Upsert ``docs`` (keyed by ``_id``) into ``collection``; the rows MongoDB refuses for
        good go to ``gold/dead_letter`` (how many is returned)."""
        from vitalwatch.sinks.isolate import mongo_isolate

        db, uri = self.settings.mongo.database, self.mongo_uri

        def connector(d: DataFrame) -> None:
            d.write.format("mongodb").options(**mongo.connector_options(uri, db, collection)).mode("append").save()

        def isolate(d: DataFrame) -> list:
            return mongo_isolate(d, uri, db, collection, mongo_sink(collection),
                                 self.settings.gold.dead_letter_payload_bytes)

        return write_or_dead_letter(docs, self.settings, mongo_write(connector, isolate, collection))

    def publish_records(self, records: DataFrame) -> None:
        """Records with their own ``topic`` column (the gold tables' topics: always written,
        whatever ``gold.sinks`` says, since the lake depends on them)."""
        self._publish(records, None)

    def _publish(self, records: DataFrame, topic: str | None) -> None:
        w = (records.write.format("kafka").options(**self.endpoints.kafka("pipeline").spark_options())
             .option("kafka.acks", "all").option("kafka.enable.idempotence", "true"))
        (w.option("topic", topic) if topic else w).save()
