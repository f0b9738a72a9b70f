"""The streaming pipeline stages: bronze (Kafka as received), silver (parsed vital signs),
gold (scores and alerts) and the serving copies (patient status, MongoDB, Elasticsearch)."""

# The streaming stages, in dependency order; lib/vitalwatch/pipeline/runner.py starts them
# (available-now: each after the stages it reads from, see runner.stage_inputs).
STAGES = ("bronze", "silver", "gold", "gold_lake", "serve_scores", "serve_alerts", "es_vitals")
