"""Silver rows → per-patient state → scores and alerts → the alert channels and gold tables.

One streaming query, the alert path: silver rows (the vitals the features use) are grouped by
patient into ``applyInPandasWithState`` (RocksDB state store), whose function is
:func:`vitalwatch.scoring.engine.advance` — the same vector, model and policy as batch —
and emits one row per new reading. ``foreachBatch`` then, in this order:

1. publishes alerts to ``vitals.alerts`` — first, since people wait on these;
2. at once: assessments to ``vitals.normal`` and the rows of ``gold/risk_scores``
   and ``gold/alerts`` to their topics (``kafka.topics.gold_scores`` / ``gold_alerts``), keyed
   by reading and alert id.

The ``gold_lake`` stage (:mod:`vitalwatch.pipeline.gold_lake`) writes those two topics to the
Delta tables, dropping a key it has already written, so the alert path does no Delta commit
(measured: 1.5-7 s of each scoring batch on two cores). The stores people read
(``gold/patient_status``, MongoDB, Elasticsearch) are filled from the gold tables by their own
queries (:mod:`vitalwatch.pipeline.serving`), off the alert path too.

**Source** (``gold.source``). ``kafka`` (default): the observations topic parsed in-stream
(:func:`vitalwatch.fhir.parse.alertable`: the silver values, and those quarantined only for
their time, in which a crisis still alerts), so an alert waits for no Delta commit of bronze or
silver; the silver query records the same rows (and the quarantine) in the lake. Duplicates
need no watermark here: the engine ignores a repeated observation. ``silver``: the ``silver/vital_signs`` table as a stream — for replays and
backfills from the lake. Either way the rows are the same function of the same messages.

**Exactly-once effect.** The state store and the source offsets advance only when a batch
commits; a crash replays the batch with the same state, so it produces the same rows, the same
``alert_id``s and the same keys (a discharge is dated by its expiry, not the clock). Kafka
delivery is at-least-once: ``gold_lake`` drops a key it has seen within
``streaming.dedupe_watermark``, and the alert consumers (``vitalwatch alerts watch``,
:mod:`vitalwatch.alerts.feed`) drop a repeated ``alert_id``.

**Watermark.** On ``silver_time`` (when the row was accepted), not effective time: Spark
drops rows behind a stateful operator's watermark, and a device's delayed reading must never
vanish that way. It drives state expiry: a patient with nothing new for
``gold.state_ttl_hours`` of arrival time is discharged from state (a ``discharged`` row in
``gold/risk_scores``, no observation). Lateness of effective time is the engine's documented
policy instead.

The model is resolved by alias when the query starts; its name and version are on every
score. A new champion is picked up at the next start of the query. When no champion can be
loaded (registry down, none yet, files refused by their checksum) the query scores by the
rules alone and reports itself degraded until the champion loads
(:func:`~vitalwatch.pipeline.gold.model.load_model_or_rules`).

Modules: :mod:`~.state` (the stateful step), :mod:`~.model` (champion, shadow or rules),
:mod:`~.tables` (the gold tables' rows and records), :mod:`~.writer` (one batch to the channels),
:mod:`~.checkpoint` (the state layout guard), :mod:`~.query` (starting the query)."""

from vitalwatch.pipeline.gold.model import load_model
from vitalwatch.pipeline.gold.query import QUERY
from vitalwatch.pipeline.gold.state import scores_schema
from vitalwatch.pipeline.gold.tables import ensure_gold, risk_rows
from vitalwatch.pipeline.gold.writer import report_times

# What other modules and tests import from the package; the rest (start_gold included) is
# imported from its module.
__all__ = ["QUERY", "ensure_gold", "load_model", "report_times", "risk_rows", "scores_schema"]
