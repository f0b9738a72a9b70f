"""Where gold goes besides the lake: the Kafka topics and webhooks (:meth:`Sinks.notify`, on the
alert path), MongoDB and Elasticsearch (:meth:`Sinks.store_scores`, :meth:`Sinks.store_alerts`,
from :mod:`vitalwatch.pipeline.serve`).

:class:`Sinks` is built once per query on the driver and called from ``foreachBatch``; each
write is keyed by observation or alert id, so replaying a batch changes nothing.
A sink that is down makes the batch fail: the query stops, and the supervisor
(:func:`vitalwatch.pipeline.runner.run_continuous`) restarts it from its checkpoint, which
replays the batch — nothing is lost and, thanks to the keys, nothing is doubled."""

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
from vitalwatch.sinks.events import kafka_records, normal_assessments

log = logging.getLogger(__name__)
SINKS = ("mongo", "elasticsearch", "kafka", "webhook")
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
    _teams: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict, repr=False)
    _client: Any = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, spark: SparkSession, settings: Settings, enabled: list[str] | None = None) -> Sinks:
        enabled = tuple(enabled if enabled is not None else settings.gold.sinks)
        unknown = set(enabled) - set(SINKS)
        if unknown:
            raise ValueError(f"unknown sinks {sorted(unknown)}; known: {', '.join(SINKS)}")
        need = tuple(n for n, s in (("kafka", "kafka"), ("mongo", "mongo"), ("elasticsearch", "elasticsearch"))
                     if s in enabled)
        return cls(spark, settings, resolve(settings, need or ("kafka",)), enabled)

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

    def prepare(self) -> None:
        """Index templates exist before the first document (else dynamic mappings would win)."""
        if "elasticsearch" in self.enabled:
            search.apply_templates(self.settings, self.endpoints.es_nodes or "")

    def care_teams(self, patient_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Ward and care team of the registered patients among ``patient_ids``, for routing.

        Cached for ``alerts.registry_cache_s``. An alert must not wait on the registry: if it
        cannot be reached within ``alerts.registry_timeout_s`` the cached entry is used, else
        the patient is routed like an unregistered one (the fallback team, ward ``unassigned``)."""
        if "mongo" not in self.enabled:
            return {}
        now = time.monotonic()
        ttl = self.settings.alerts.registry_cache_s
        stale = [p for p in patient_ids if p not in self._teams or now - self._teams[p][0] > ttl]
        if stale:
            try:
                found = mongo.care_teams(self._db(), stale)
            except PyMongoError as e:
                log.warning("patient registry unreachable (%s): %d patients routed from the cache or to "
                            "the fallback team", str(e).splitlines()[0][:200], len(stale))
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
        below-alert assessments to ``vitals.normal`` and webhooks. Empty writes are left out."""
        s, out = self.settings, []
        if "kafka" in self.enabled and s.alerts.publish_normal:
            out.append(("kafka_normal",
                        lambda: self._publish(kafka_records(normal_assessments(risk, s)), s.kafka.topics.normal)))
        if "webhook" in self.enabled and s.alerts.webhooks and any_alert:
            out.append(("webhook", lambda: self._post_webhooks(alerts)))
        return out

    def store_scores(self, risk: DataFrame, status: DataFrame, on_step=lambda _name: None) -> None:
        """``gold/risk_scores`` rows and the patients' status into MongoDB and Elasticsearch."""
        readings = risk.where(F.col("observation_id").isNotNull())
        if "mongo" in self.enabled:
            self._write_mongo_scores(readings, status)
            on_step("mongo")
        if "elasticsearch" in self.enabled:
            search.write(readings.withColumn("doc_id", es_id(score_key())), self.settings,
                         self.endpoints.es_nodes or "", "risk", "doc_id")
            on_step("elasticsearch")

    def store_alerts(self, alerts: DataFrame) -> None:
        """``gold/alerts`` rows into MongoDB and Elasticsearch, keyed by ``alert_id``."""
        if "mongo" in self.enabled:
            alerts.withColumn("_id", F.col("alert_id")).write.format("mongodb") \
                .options(**mongo.connector_options(self.mongo_uri, self.settings.mongo.database, "alerts")) \
                .mode("append").save()
        if "elasticsearch" in self.enabled:
            search.write(alerts, self.settings, self.endpoints.es_nodes or "", "alerts", "alert_id")

    def _post_webhooks(self, alerts: DataFrame) -> None:
        from vitalwatch.alerts.notify import post_alerts

        events = [r.asDict(recursive=True) for r in alerts.collect()]
        rep = post_alerts(events, self.settings.alerts.webhooks)
        self.delivered["webhook"] = self.delivered.get("webhook", 0) + rep.delivered

    def _write_mongo_scores(self, risk: DataFrame, status: DataFrame) -> None:
        s = self.settings
        db, uri = s.mongo.database, self.mongo_uri
        scores = risk.select(score_key().alias("_id"), *_MONGO_SCORE_COLUMNS,
                             *[c for c in risk.columns if c.startswith("risk_")])
        scores.write.format("mongodb").options(**mongo.connector_options(uri, db, "risk_scores")).mode("append").save()
        (status.select(F.col("patient_id").alias("_id"), F.struct(*status.columns).alias("status"))
         .write.format("mongodb").options(**mongo.connector_options(uri, db, "patients")).mode("append").save())
        pids = [r[0] for r in risk.select("patient_id").distinct().collect()]
        mongo.trim_scores(self._db(), pids, s.gold.mongo_latest_scores)

    def publish_records(self, records: DataFrame) -> None:
        """Records with their own ``topic`` column (the gold tables' topics: always written,
        whatever ``gold.sinks`` says, since the lake depends on them)."""
        self._publish(records, None)

    def _publish(self, records: DataFrame, topic: str | None) -> None:
        w = (records.write.format("kafka").option("kafka.bootstrap.servers", self.endpoints.kafka_bootstrap)
             .option("kafka.acks", "all").option("kafka.enable.idempotence", "true"))
        (w.option("topic", topic) if topic else w).save()
