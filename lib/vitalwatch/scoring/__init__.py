"""Scoring readings: per-patient state, the feature vector, the model, the alert policy."""
