"""What tests share besides fixtures: the repository's paths and the tests' stage triggers.
Tests import these from here; ``conftest.py`` holds only fixtures and hooks (settings copies are
``Settings.with_updates``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
ARTIFACTS = ROOT / "test-artifacts"

# The lake and serving triggers the integration tests run with: conf/local.yaml's are slower,
# tuned for the main command's latency on 2 cores; these keep the tests' waits short.
TEST_STAGE_TRIGGERS = {"gold": "500 milliseconds", "bronze": "15 seconds", "silver": "15 seconds",
                       "gold_lake": "10 seconds", "serve_scores": "15 seconds", "es_scores": "15 seconds",
                       "serve_alerts": "5 seconds", "es_alerts": "5 seconds", "es_vitals": "30 seconds",
                       "model_outcomes": "30 seconds"}

