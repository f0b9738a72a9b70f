"""What the producers emit is valid FHIR, judged by an independent validator
(fhir.resources, R4B models: Observation and Bundle are unchanged from R4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from tests.helpers import SHARED_DATA
from vitalwatch.config import Settings
from vitalwatch.producers.icu_replay import replay
from vitalwatch.producers.simulator import SimulationPlan, simulate

MODELS = {"Observation": Observation, "Bundle": Bundle}


def validate(raw: bytes) -> None:
    o = json.loads(raw)
    MODELS[o["resourceType"]].model_validate(o)


def test_validator_accepts_official_vital_examples_and_rejects_a_broken_one() -> None:
    for stem in ("blood-pressure", "heart-rate", "satO2", "body-temperature"):
        validate((SHARED_DATA / "fhir-r4-examples" / f"Observation-{stem}.json").read_bytes())
    broken = json.loads((SHARED_DATA / "fhir-r4-examples" / "Observation-heart-rate.json").read_text())
    broken["valueQuantity"]["value"] = "fast"
    with pytest.raises(ValueError):
        validate(json.dumps(broken).encode())


def test_every_simulator_message_is_valid_fhir(base_settings: Settings) -> None:
    cfg = base_settings.simulator.model_copy(update={"patients": 8, "bundle_fraction": 0.5,
                                                     "duplicate_fraction": 0.1, "late_fraction": 0.1})
    msgs = list(simulate(SimulationPlan(datetime(2026, 1, 1, tzinfo=UTC), 6, cfg)))
    assert len(msgs) > 500
    for m in msgs:
        validate(m.value)


def test_every_icu_replay_message_is_valid_fhir() -> None:
    path = SHARED_DATA / "physionet2019" / "icu_vitals_dev.psv.gz"
    msgs = list(replay(path, datetime(2026, 1, 1, tzinfo=UTC), patients=5))
    msgs += list(replay(path, datetime(2026, 1, 1, tzinfo=UTC), patients=2, as_bundle=False))
    assert len(msgs) > 100
    for m in msgs:
        validate(m.value)
