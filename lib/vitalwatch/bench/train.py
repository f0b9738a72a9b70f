"""Training benchmark: the same crisis-risk training data, timed on CPU and on GPU.

Two halves, so the timed half can run where there is a GPU but no Spark or JVM:

* ``export_matrices`` (Spark): the ICU rows → the one feature builder → the train and
  validation splits as float32 matrices with their labels, plus the XGBoost parameters from
  ``conf/``, in one ``.npz`` file.
* ``time_training`` (numpy + xgboost only; this module imports nothing else of vitalwatch at
  import time): fits one booster per horizon on each device with the same parameters and
  reports fit seconds, rows/s and the validation AUPRC, so a speed-up that changed the model
  would show.

``xgboost.spark`` trains with this same booster code in each Spark task, so the per-device
ratio carries over; the distributed overhead is measured by ``vitalwatch train`` (its
``xgb_train_s`` timing)."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from vitalwatch.config import Settings


@dataclass
class FitResult:
    device: str
    horizon_h: int
    rows: int
    features: int
    rounds: int
    fit_s: float
    rows_per_s: float
    val_auprc: float


def export_matrices(spark: SparkSession, settings: Settings, out: Path, patients: int | None = None) -> dict[str, int]:
    """Write the train/validation vectors and labels of the real ICU data to ``out`` (.npz)."""
    from vitalwatch.features.build import build_examples
    from vitalwatch.models import datasets
    from vitalwatch.models.train_risk import load_source

    m, clin = settings.models, settings.clinical
    horizons = list(clin.horizons_hours)
    src = load_source(spark, settings, "icu", patients=patients)
    ex = datasets.assign_split(build_examples(src.rows, clin), m.split, m.seed)
    cols = ["split", "features", *(f"label_{h}h" for h in horizons)]
    pdf = ex.where("split in ('train', 'validation')").select(*cols).toPandas()
    arrays: dict[str, np.ndarray] = {}
    for split, short in (("train", "train"), ("validation", "val")):
        part = pdf[pdf["split"] == split]
        arrays[f"x_{short}"] = np.array(part["features"].tolist(), dtype=np.float32).reshape(len(part), -1)
        for h in horizons:
            arrays[f"y_{short}_{h}"] = part[f"label_{h}h"].to_numpy(np.int8)
    meta = {"horizons": horizons, "params": dict(m.xgboost), "seed": m.seed,
            "source": src.lineage, "feature_builder": "vitalwatch.features.build.build_examples"}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, meta=np.array(json.dumps(meta)), **arrays)
    return {"train_rows": len(arrays["x_train"]), "val_rows": len(arrays["x_val"])}


def export_with_spark(settings: Settings, out: Path, patients: int | None = None) -> dict[str, int]:
    """``export_matrices`` in a session of its own, with the training driver's memory."""
    from vitalwatch.spark import build_session

    s = settings.with_updates(spark={"driver_memory": settings.models.train_driver_memory})
    spark = build_session(s, app_name="vitalwatch-benchmark-train")
    return export_matrices(spark, s, out, patients)


def _auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (step-wise area under the precision-recall curve), numpy only."""
    order = np.argsort(-p, kind="stable")
    y = y[order].astype(np.float64)
    tp = np.cumsum(y)
    precision = tp / np.arange(1, len(y) + 1)
    return float((precision * y).sum() / max(y.sum(), 1.0))


def time_training(data: Path, devices: list[str], rounds: int | None = None, horizons: list[int] | None = None,
                  threads: int | None = None, progress=print) -> tuple[list[FitResult], dict[str, Any]]:
    """Fit one booster per (device, horizon) on the exported matrices; a warm-up fit of a few
    rounds per device first, so CUDA context creation and data transfer set-up are not timed."""
    import xgboost as xgb

    z = np.load(data)
    meta = json.loads(str(z["meta"]))
    params = {"tree_method": "hist", **meta["params"]}
    if rounds:
        params["n_estimators"] = rounds
    hs = horizons or meta["horizons"]
    x_train, x_val = z["x_train"], z["x_val"]
    results: list[FitResult] = []
    for device in devices:
        extra = {"n_jobs": threads} if threads and device == "cpu" else {}
        warm = xgb.XGBClassifier(**{**params, "n_estimators": 5}, device=device,
                                 missing=np.nan, random_state=meta["seed"], **extra)
        warm.fit(x_train[:20000], z[f"y_train_{hs[0]}"][:20000])
        for h in hs:
            progress(f"{device}: {h} h, {len(x_train)} rows × {x_train.shape[1]} features, "
                     f"{params['n_estimators']} rounds")
            clf = xgb.XGBClassifier(**params, device=device, missing=np.nan,
                                    random_state=meta["seed"], **extra)
            t0 = time.perf_counter()
            clf.fit(x_train, z[f"y_train_{h}"])
            fit_s = time.perf_counter() - t0
            booster = clf.get_booster()
            booster.set_param({"device": "cpu"})  # score validation the same way for every device
            p = booster.inplace_predict(x_val)
            results.append(FitResult(device, h, len(x_train), x_train.shape[1], int(params["n_estimators"]),
                                     round(fit_s, 3), round(len(x_train) / fit_s, 1),
                                     round(_auprc(z[f"y_val_{h}"], p), 4)))
    env = {"xgboost": xgb.__version__, "numpy": np.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "cpu_count": _cpu_count(), "gpu": _gpu_name(),
           "data": str(data), "source": meta["source"]}
    return results, env


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


def _gpu_name() -> str | None:
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                       capture_output=True, text=True, check=False)
    return r.stdout.strip() or None


def speedups(results: list[FitResult], baseline: str = "cpu") -> dict[str, float]:
    """Total fit time of ``baseline`` over each other device's, on the same horizons."""
    total: dict[str, float] = {}
    for r in results:
        total[r.device] = total.get(r.device, 0.0) + r.fit_s
    base = total.get(baseline)
    return {d: round(base / t, 2) for d, t in total.items() if base and d != baseline and t > 0}


def report(results: list[FitResult], env: dict[str, Any], json_out: Path | None = None) -> str:
    """A markdown table (what docs/benchmarks.md shows) and, optionally, the same as JSON."""
    from vitalwatch.bench.report import markdown_table

    table = markdown_table(("device", "horizon", "rows", "rounds", "fit s", "rows/s", "val AUPRC"),
                           ((r.device, f"{r.horizon_h} h", f"{r.rows:,}", r.rounds, f"{r.fit_s:.2f}",
                             f"{r.rows_per_s:,.0f}", f"{r.val_auprc:.4f}") for r in results))
    lines = [table.rstrip("\n")]
    sp = speedups(results)
    if sp:
        lines.append("")
        lines += [f"{d} vs cpu: {x}× faster (sum of fit times)" for d, x in sp.items()]
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"env": env, "results": [asdict(r) for r in results], "speedups": sp},
                                       indent=2))
    return "\n".join(lines) + "\n"
