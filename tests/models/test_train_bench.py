"""The training benchmark's two halves: vectors exported by the one feature builder, and a
timed fit whose result (validation AUPRC) is computed correctly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from vitalwatch.bench import train as train_bench
from vitalwatch.features.build import build_examples
from vitalwatch.models import datasets
from vitalwatch.models.train_risk import load_source


def test_auprc_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.1).astype(np.int8)
    p = np.clip(y * 0.3 + rng.random(2000), 0, 1)
    assert train_bench._auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_export_then_time_on_cpu(spark, model_settings, tmp_path) -> None:
    out = tmp_path / "train.npz"
    counts = train_bench.export_matrices(spark, model_settings, out, patients=120)
    z = np.load(out)
    meta = json.loads(str(z["meta"]))
    assert meta["params"]["n_estimators"] == model_settings.models.xgboost["n_estimators"]
    assert z["x_train"].shape == (counts["train_rows"], 120) and z["x_val"].shape == (counts["val_rows"], 120)
    # the same vectors and labels as the feature builder gives for the train split
    src = load_source(spark, model_settings, "icu", patients=120)
    ex = datasets.assign_split(build_examples(src.rows, model_settings.clinical), model_settings.models.split,
                               model_settings.models.seed).where("split = 'train'")
    assert ex.count() == counts["train_rows"]
    assert int(ex.where("label_6h = 1").count()) == int(z["y_train_6"].sum())

    results, env = train_bench.time_training(out, ["cpu"], rounds=10, horizons=[6], progress=lambda _: None)
    (r,) = results
    assert (r.device, r.horizon_h, r.rows, r.rounds) == ("cpu", 6, counts["train_rows"], 10)
    assert r.fit_s > 0 and 0.0 <= r.val_auprc <= 1.0
    assert env["xgboost"] and env["cpu_count"] >= 1
    table = train_bench.report(results, env, tmp_path / "r.json")
    assert "| cpu | 6 h |" in table
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["rows"] == counts["train_rows"]


def test_speedups_sum_fit_times() -> None:
    mk = lambda d, h, s: train_bench.FitResult(d, h, 10, 120, 5, s, 10 / s, 0.5)  # noqa: E731
    rs = [mk("cpu", 1, 3.0), mk("cpu", 6, 5.0), mk("cuda", 1, 1.0), mk("cuda", 6, 1.0)]
    assert train_bench.speedups(rs) == {"cuda": 4.0}
