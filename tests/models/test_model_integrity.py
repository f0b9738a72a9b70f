"""The registry's models are sealed (issue 19.5): every registered version records the checksum
of its artifacts, a champion whose files changed is refused, alias moves are logged — and a
refused champion never silences the alert path: scoring goes on by the rules alone (a crisis
reading is CRITICAL) and the real model is taken back once it loads. Real MLflow registry
(SQLite + file artifacts) with the suite's trained champion."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from vitalwatch.models.integrity import (
    CHECKSUM_TAG,
    ModelIntegrityError,
    alias_history,
    manifest_digest,
    move_alias,
    unlogged_alias,
    verified_download,
)
from vitalwatch.models.registry import client, load_risk_model


def _artifact_dir(settings, version: str) -> Path:
    """Where the registry really keeps version ``version``'s files (not a downloaded copy)."""
    import mlflow

    mv = client(settings).get_model_version(settings.models.risk_model_name, version)
    loc = mlflow.get_logged_model(mv.source.removeprefix("models:/")).artifact_location
    return Path(urlparse(loc).path)


def test_registered_versions_are_sealed_and_alias_moves_logged(trained, tmp_path) -> None:
    name = trained.models.risk_model_name
    mv = client(trained).get_model_version_by_alias(name, "champion")
    want = mv.tags[CHECKSUM_TAG]
    assert want == manifest_digest(_artifact_dir(trained, str(mv.version)))
    assert verified_download(trained, name, str(mv.version), tmp_path).is_dir()
    moves = alias_history(trained, name)
    champ = [m for m in moves if m["alias"] == "champion"]
    assert champ and champ[-1]["to"] == str(mv.version) and champ[-1]["by"] and champ[-1]["reason"]
    assert not unlogged_alias(trained, name, "champion", str(mv.version))
    assert unlogged_alias(trained, name, "champion", "999")  # a version no logged move put there
    assert move_alias(trained, name, "champion", str(mv.version), "no-op") is None  # already there: no entry
    assert len(alias_history(trained, name)) == len(moves)


def test_digest_changes_with_any_file(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").write_text('{"w": 1}')
    (tmp_path / "b.txt").write_text("b")
    d0 = manifest_digest(tmp_path)
    (tmp_path / "a" / "x.json").write_text('{"w": 2}')
    d1 = manifest_digest(tmp_path)
    (tmp_path / "a" / "x.json").rename(tmp_path / "a" / "y.json")
    d2 = manifest_digest(tmp_path)
    (tmp_path / "c").write_text("")
    d3 = manifest_digest(tmp_path)
    assert len({d0, d1, d2, d3}) == 4
    (tmp_path / "registered_model_meta").write_text("model_name: x\nmodel_version: 1\n")  # the client's, on download
    assert manifest_digest(tmp_path) == d3


def _crisis_rows(patient: str) -> pd.DataFrame:
    """Two normal readings, then a crisis (SBP 205 / DBP 128), a quarter of an hour apart."""
    from tests.unit.test_engine_clocks import reading

    t0 = datetime(2026, 12, 1, 8, 0)
    return pd.concat([reading(f"{patient}-o{i}", t0 + timedelta(minutes=15 * i), bp,
                              t0 + timedelta(minutes=15 * i, seconds=2), pid=patient)
                      for i, bp in enumerate([(124.0, 80.0), (126.0, 82.0), (205.0, 128.0)])], ignore_index=True)


def test_a_champion_whose_files_changed_is_refused_and_scoring_goes_on_by_the_rules(trained) -> None:
    from vitalwatch.pipeline.gold.model import (
        NO_MODEL_VERSION,
        champion_loadable,
        load_model_or_rules,
    )
    from vitalwatch.scoring.engine import advance, empty_rows

    version = str(client(trained).get_model_version_by_alias(trained.models.risk_model_name, "champion").version)
    booster = next(_artifact_dir(trained, version).rglob("xgb_6h.json"))
    original = booster.read_bytes()
    try:
        booster.write_bytes(original + b" ")  # one byte more: the same model to XGBoost, another file
        with pytest.raises(ModelIntegrityError, match="do not match"):
            load_risk_model(trained)
        model, reason = load_model_or_rules(trained)
        assert model.version == NO_MODEL_VERSION and reason and "do not match" in reason
        assert not champion_loadable(trained)
        out = advance(empty_rows(), {}, _crisis_rows("pz1"), model, trained.clinical, trained.alerts,
                      trained.gold.late_tolerance_minutes, trained.fhir.max_clock_skew_ms).out
        assert out["model_version"].eq(NO_MODEL_VERSION).all()
        assert np.isnan(out[[f"risk_{h}h" for h in trained.clinical.horizons_hours]].to_numpy(float)).all()
        crisis = out[out["observation_id"] == "pz1-o2"].iloc[0]
        assert crisis["level"] == "CRITICAL" and crisis["alert_level"] == "CRITICAL" and crisis["alert_id"]
    finally:
        booster.write_bytes(original)
    assert champion_loadable(trained)
    model, reason = load_model_or_rules(trained)
    assert reason is None and model.version == version
