"""The streaming pipeline stages: bronze (Kafka as received), silver (parsed vital signs),
gold (scores and alerts) and the serving copies (patient status, MongoDB, Elasticsearch)."""

# The streaming stages, in dependency order; lib/vitalwatch/pipeline/runner.py starts them
# (available-now: each after the stages it reads from, see runner.stage_inputs).
STAGES = ("bronze", "silver", "gold", "gold_lake", "model_outcomes", "serve_scores", "es_scores", "serve_alerts",
          "es_alerts", "es_vitals")

# The applications (separate Spark applications, separate processes): the alert path alone, so
# that nothing the lake or the stores do can slow or stop it (PRODUCT §5). ``vitalwatch
# pipeline --app NAME`` runs one; ``vitalwatch run`` starts all three, the alert app first.
APPS = {
    "alerts": ("gold",),
    "lake": ("bronze", "silver", "gold_lake", "model_outcomes"),
    "serving": ("serve_scores", "es_scores", "serve_alerts", "es_alerts", "es_vitals"),  # one query per store
}
