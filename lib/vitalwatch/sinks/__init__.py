"""Where gold goes besides the lake: MongoDB, Elasticsearch, the Kafka topics, webhooks.

:class:`Sinks` is built once per query on the driver and called from ``foreachBatch``; each
write is keyed by observation or alert id, so replaying a batch changes nothing.
A sink that is down makes the batch fail: the query stops, and the supervisor
(:func:`vitalwatch.pipeline.runner.run_continuous`) restarts it from its checkpoint, which
replays the batch — nothing is lost and, thanks to the keys, nothing is doubled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints, resolve
from vitalwatch.sinks import mongo, search
from vitalwatch.sinks.events import kafka_records, normal_assessments

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
        import pymongo

        return pymongo.MongoClient(self.mongo_uri, serverSelectionTimeoutMS=10000)[self.settings.mongo.database]

    def prepare(self) -> None:
        """Index templates exist before the first document (else dynamic mappings would win)."""
        if "elasticsearch" in self.enabled:
            search.apply_templates(self.settings, self.endpoints.es_nodes or "")

    def care_teams(self, patient_ids: list[str]) -> dict[str, dict[str, Any]]:
        if "mongo" not in self.enabled:
            return {}
        return mongo.care_teams(self._db(), patient_ids)

    # -- writes --------------------------------------------------------------------------------
    def notify(self, risk: DataFrame, alerts: DataFrame, any_alert: bool, on_step=lambda _name: None) -> None:
        """The channels that reach people: the topics and webhooks (first, for latency).
        Writes of no alerts are skipped."""
        s = self.settings
        if "kafka" in self.enabled:
            if any_alert:
                self._publish(kafka_records(alerts), s.kafka.topics.alerts)
            if s.alerts.publish_normal:
                self._publish(kafka_records(normal_assessments(risk, s)), s.kafka.topics.normal)
            on_step("kafka")
        if "webhook" in self.enabled and s.alerts.webhooks and any_alert:
            self._post_webhooks(alerts)
            on_step("webhook")

    def write(self, batch_id: int, risk: DataFrame, alerts: DataFrame, status: DataFrame, any_alert: bool,
              on_step=lambda _name: None) -> None:
        """The stored views: MongoDB and Elasticsearch."""
        s = self.settings
        if "mongo" in self.enabled:
            self._write_mongo(risk, alerts, status, any_alert)
            on_step("mongo")
        if "elasticsearch" in self.enabled:
            nodes = self.endpoints.es_nodes or ""
            search.write(risk.where(F.col("observation_id").isNotNull()), s, nodes, "risk", "observation_id")
            if any_alert:
                search.write(alerts, s, nodes, "alerts", "alert_id")
            on_step("elasticsearch")

    def _post_webhooks(self, alerts: DataFrame) -> None:
        from vitalwatch.alerts.notify import post_alerts

        events = [r.asDict(recursive=True) for r in alerts.collect()]
        rep = post_alerts(events, self.settings.alerts.webhooks)
        self.delivered["webhook"] = self.delivered.get("webhook", 0) + rep.delivered

    def _write_mongo(self, risk: DataFrame, alerts: DataFrame, status: DataFrame, any_alert: bool) -> None:
        s = self.settings
        db, uri = s.mongo.database, self.mongo_uri
        scores = risk.where(F.col("observation_id").isNotNull()).select(
            F.col("observation_id").alias("_id"), *_MONGO_SCORE_COLUMNS,
            *[c for c in risk.columns if c.startswith("risk_")])
        scores.write.format("mongodb").options(**mongo.connector_options(uri, db, "risk_scores")).mode("append").save()
        if any_alert:
            alerts.withColumn("_id", F.col("alert_id")).write.format("mongodb") \
                .options(**mongo.connector_options(uri, db, "alerts")).mode("append").save()
        (status.select(F.col("patient_id").alias("_id"), F.struct(*status.columns).alias("status"))
         .write.format("mongodb").options(**mongo.connector_options(uri, db, "patients")).mode("append").save())
        pids = [r[0] for r in risk.select("patient_id").distinct().collect()]
        mongo.trim_scores(self._db(), pids, s.gold.mongo_latest_scores)

    def _publish(self, records: DataFrame, topic: str) -> None:
        (records.write.format("kafka").option("kafka.bootstrap.servers", self.endpoints.kafka_bootstrap)
         .option("kafka.acks", "all").option("kafka.enable.idempotence", "true")
         .option("topic", topic).save())
