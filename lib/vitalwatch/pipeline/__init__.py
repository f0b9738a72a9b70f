"""The streaming pipeline stages: bronze (Kafka as received), silver (parsed vital signs),
gold (scores and alerts) and the serving copies (patient status, MongoDB, Elasticsearch).

Each stage is described once, in :mod:`vitalwatch.pipeline.stages`; the names here are derived."""

from vitalwatch.pipeline.stages import apps, stage_names

# The streaming stages, in dependency order; lib/vitalwatch/pipeline/runner.py starts them
# (available-now: each after the stages it reads from, see stages.stage_inputs).
STAGES = stage_names()

# The applications (separate Spark applications, separate processes): the alert path alone, so
# that nothing the lake or the stores do can slow or stop it (docs/requirements.md §5). ``vitalwatch
# pipeline --app NAME`` runs one; ``vitalwatch run`` starts all three, the alert app first.
# The serving app runs one query per store.
APPS = apps()

__all__ = ["APPS", "STAGES"]
