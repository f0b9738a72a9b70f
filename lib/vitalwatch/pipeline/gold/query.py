"""Starting the scoring query (the ``gold`` stage): its input stream, model, sinks,
checkpoint guard and ``foreachBatch`` writer."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints, resolve
from vitalwatch.pipeline.gold.checkpoint import check_state_layout, checkpoint_name
from vitalwatch.pipeline.gold.model import champion_loadable, load_model_or_rules
from vitalwatch.pipeline.gold.state import keyed_rows, score_stream
from vitalwatch.pipeline.gold.tables import ensure_gold
from vitalwatch.pipeline.gold.writer import write_batch
from vitalwatch.pipeline.lake import SILVER_VITALS, stream_table
from vitalwatch.pipeline.stages import BY_NAME
from vitalwatch.pipeline.triggers import start_foreach_batch
from vitalwatch.scoring.model_ref import ModelRef

QUERY = BY_NAME["gold"].query  # the scoring query's name (its checkpoint adds gold.source)
# mongo: the registry, for routing (cached; never waited on). Webhooks are not here: the notifier
# (``vitalwatch notify``) delivers them from the alert topic, so no receiver can delay an alert.
ALERT_PATH_SINKS = ("kafka", "mongo")


def gold_input(spark: SparkSession, settings: Settings, endpoints: Endpoints | None = None) -> DataFrame:
    """Silver rows as a stream (``gold.source``, see :mod:`vitalwatch.pipeline.gold`): the vitals
    the features use, with the reading's source times."""
    if settings.gold.source == "kafka":
        from vitalwatch.fhir.parse import ParseRules, alertable, parse_observations
        from vitalwatch.pipeline.bronze import kafka_stream, to_bronze

        endpoints = endpoints or resolve(settings, ("kafka",))
        raw = to_bronze(kafka_stream(spark, settings, endpoints, settings.kafka.topics.observations))
        silver = alertable(parse_observations(raw, ParseRules.from_settings(settings))).withColumn(
            "silver_time", F.current_timestamp())
    else:
        silver = stream_table(spark, settings, SILVER_VITALS)
    return keyed_rows(silver, settings)


def start_gold(spark: SparkSession, settings: Settings, *, available_now: bool = False,
               query_name: str = QUERY, model: ModelRef | None = None,
               sinks=None, endpoints: Endpoints | None = None) -> StreamingQuery:
    from vitalwatch.sinks.writers import Sinks

    ensure_gold(spark, settings)
    reason = None
    if model is None:
        model, reason = load_model_or_rules(settings)
    sinks = sinks or Sinks.from_settings(spark, settings, [x for x in settings.gold.sinks if x in ALERT_PATH_SINKS])
    checkpoint = settings.checkpoint_path(checkpoint_name(settings, query_name))
    check_state_layout(spark, checkpoint, settings)
    rows = score_stream(gold_input(spark, settings, endpoints), model, settings)
    q = start_foreach_batch(rows, settings, query_name=query_name, checkpoint=checkpoint,
                            write=lambda df, bid, _app_id: write_batch(df, bid, settings, sinks),
                            available_now=available_now, stage="gold")
    if reason is not None:  # the supervisor shows it degraded and restarts it once the champion loads
        q.degraded_reason = reason  # type: ignore[attr-defined]
        q.recovered = lambda: champion_loadable(settings)  # type: ignore[attr-defined]
    return q
