"""Crisis-risk and triage models: data sets, training, evaluation, MLflow registry, loading."""
