"""Scoring cost (docs/requirements.md §7: the streaming scorer within 2× of native ``inplace_predict``).

Two measurements on the same vectors (the one feature implementation applied to simulated
patients), each against three native ``Booster.inplace_predict`` calls (one per horizon, the
boosters' own thread setting):
- the scorer the streaming job calls (:class:`~vitalwatch.models.scorer.RiskScorer`: the three
  boosters plus each horizon's calibration map), on a matrix of ``n`` vectors;
- the streaming engine as the state function runs it: one ``advance`` per state bucket, one new
  reading per patient (vector, model, NEWS2, alert policy, next state), against native predict
  on the vectors those readings got."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitalwatch.config import ClinicalConfig, Settings, SyntheticConfig


@dataclass
class ScoreRun:
    what: str
    vectors: int
    seconds: float                # best of repeat
    native_seconds: float         # inplace_predict on the same vectors, best of repeat

    @property
    def ratio(self) -> float:
        return self.seconds / self.native_seconds

    def as_dict(self) -> dict:
        return {"what": self.what, "vectors": self.vectors, "seconds": self.seconds,
                "native_seconds": self.native_seconds, "ratio": self.ratio,
                "vectors_per_s": self.vectors / self.seconds, "native_vectors_per_s": self.vectors / self.native_seconds}


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def native_seconds(scorer, x: np.ndarray, repeat: int) -> float:
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    return _best(lambda: [b.inplace_predict(x32, missing=np.nan) for b in scorer.boosters.values()], repeat)


def simulated_rows(synthetic: SyntheticConfig, patients: int, seed: int = 11) -> pd.DataFrame:
    """``patients`` synthetic training sequences (``models.synthetic``, another seed)."""
    from vitalwatch.models.datasets import synthetic_pandas

    cfg = synthetic.model_copy(update={"seed": seed})
    return synthetic_pandas(cfg, sequences=patients)


def scorer_vs_native(clinical: ClinicalConfig, synthetic: SyntheticConfig, scorer, n_vectors: int,
                     repeat: int) -> ScoreRun:
    """``RiskScorer.predict`` on ``n_vectors`` vectors vs native predict on the same matrix."""
    from vitalwatch.features.vector import feature_matrix, readings

    rows = simulated_rows(synthetic, max(1, min(2000, n_vectors // 20)))
    x = feature_matrix(readings(rows, clinical), clinical.history_readings)
    x = np.resize(x, (n_vectors, x.shape[1]))  # repeat the matrix up to n vectors
    return ScoreRun("RiskScorer.predict (3 boosters + calibration)", n_vectors,
                    _best(lambda: scorer.predict(x), repeat), native_seconds(scorer, x, repeat))


def engine_vs_native(settings: Settings, model, patients: int, repeat: int) -> ScoreRun:
    """The state function's work for one micro-batch with one new reading per patient, split
    into ``gold.state_buckets`` buckets, vs native predict on the vectors it produced."""
    from vitalwatch.scoring.engine import advance, empty_rows

    clinical, alerts_cfg, gold = settings.clinical, settings.alerts, settings.gold
    rows = simulated_rows(settings.models.synthetic, patients, seed=23)
    for c in ("kafka_timestamp", "silver_time"):
        rows[c] = pd.NaT
    bp = rows[rows["vital"] == "systolic_bp"]
    last_t = bp.groupby("patient_id")["effective_time"].max()
    is_new = (rows["effective_time"] >= rows["patient_id"].map(last_t)).to_numpy()
    pids = sorted(rows["patient_id"].unique())
    bucket_of = {p: i % gold.state_buckets for i, p in enumerate(pids)}
    buckets = []
    for b in sorted(set(bucket_of.values())):
        mine = rows["patient_id"].map(bucket_of).to_numpy() == b
        state = advance(empty_rows(), {}, rows[mine & ~is_new], model, clinical, alerts_cfg,
                        gold.late_tolerance_minutes)
        buckets.append((state, rows[mine & is_new]))

    def run() -> list[pd.DataFrame]:
        return [advance(st.rows, dict(st.alerts), new, model, clinical, alerts_cfg,
                        gold.late_tolerance_minutes).out for st, new in buckets]

    outs = run()
    x = np.vstack([np.stack(o["features"].to_list()) for o in outs if len(o)])
    return ScoreRun(f"streaming engine: advance per bucket ({len(buckets)} buckets, 1 new reading a patient)",
                    len(x), _best(run, repeat), native_seconds(model.scorer, x, repeat))
