"""The event-level evaluation run by ``vitalwatch train`` and ``vitalwatch models alert-policy``:
held-out patients' silver rows through the real engine (``score_batch``, the policy in force),
then every alert profile and the baselines through the same policy, and the threshold sweep.

The Spark side only selects a split's silver rows; everything after is pandas
(:mod:`vitalwatch.alerts.evaluation`)."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from vitalwatch.alerts import evaluation as ev
from vitalwatch.config import (
    AlertPolicyConfig,
    AlertsConfig,
    ClinicalConfig,
    EventEvaluationConfig,
    ModelsConfig,
    Settings,
)
from vitalwatch.models import datasets
from vitalwatch.scoring.engine import ModelRef, score_batch

BASELINE_SCORES = {"current systolic": "systolic", "NEWS2": "news2_partial"}
Progress = Callable[[str], None]


def split_rows(rows: DataFrame, m: ModelsConfig, split: str) -> pd.DataFrame:
    """The silver rows of one split's patients (the training split rule), as pandas."""
    return datasets.assign_split(rows, m.split, m.seed).where(f"split = '{split}'").drop("split").toPandas()


def profile_names(alerts: AlertsConfig, e: EventEvaluationConfig) -> list[str]:
    """The profile in force first, then the others the evaluation compares."""
    chosen = e.profiles or list(alerts.profiles)
    return [alerts.profile, *(p for p in chosen if p != alerts.profile)]


def baseline_risks(scored: pd.DataFrame, reference: pd.DataFrame, clinical: ClinicalConfig) -> dict[str, np.ndarray]:
    """Each baseline on the model's risk scale, mapped on ``reference`` (validation) readings."""
    risk = f"risk_{clinical.alert_horizon_hours}h"
    return {name: ev.on_model_scale(scored[col].to_numpy(float), reference[col].to_numpy(float),
                                    reference[risk].to_numpy(float))
            for name, col in BASELINE_SCORES.items()}


def event_table(scored: pd.DataFrame, reference: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """One row per alert profile (the model) and per baseline (through the profile in force)."""
    e = settings.models.event_evaluation
    rows = []
    for name in profile_names(settings.alerts, e):
        cfg = settings.alerts.with_profile(name)
        m = ev.event_metrics(ev.apply_policy(scored, settings.clinical, cfg), e.window_h, e.lead_target_h)
        label = f"model, {name}" + (" (in force)" if name == settings.alerts.profile else "")
        rows.append(ev.summary_row(label, m, e.lead_target_h))
    for name, risk in baseline_risks(scored, reference, settings.clinical).items():
        m = ev.event_metrics(ev.apply_policy(scored, settings.clinical, settings.alerts, risk), e.window_h,
                             e.lead_target_h)
        rows.append(ev.summary_row(f"{name}, {settings.alerts.profile}", m, e.lead_target_h))
    return pd.DataFrame(rows)


def causes_table(scored: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per alert profile: the burden (≥ MEDIUM) by what raised each event."""
    rows = []
    for name in profile_names(settings.alerts, settings.models.event_evaluation):
        out = ev.apply_policy(scored, settings.clinical, settings.alerts.with_profile(name))
        rows.append({"policy": name, **ev.burden_by_cause(out)})
    return pd.DataFrame(rows)


def sweeps(scored: pd.DataFrame, reference: pd.DataFrame, settings: Settings) -> dict[str, pd.DataFrame]:
    """The trade-off curves: the model and each baseline, thresholds of the policy in force × factors."""
    e = settings.models.event_evaluation
    out = {"model": ev.sweep(scored, settings.clinical, settings.alerts, e.sweep_factors, window_h=e.window_h)}
    for name, risk in baseline_risks(scored, reference, settings.clinical).items():
        out[name] = ev.sweep(scored, settings.clinical, settings.alerts, e.sweep_factors, risk, e.window_h)
    return out


def tradeoff_plot(curves: dict[str, pd.DataFrame], table: pd.DataFrame, e: EventEvaluationConfig, out: Path,
                  title: str) -> Path:
    """Warned onsets vs alert burden (≥ MEDIUM) as the thresholds move; the target shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.axvspan(0, e.target_burden_ph, ymin=e.target_warned, ymax=1, color="tab:green", alpha=0.12, label="target")
    for name, c in curves.items():
        ax.plot(c["burden_ph_medium"], c["warned_medium"], "o-", ms=3, label=name)
    for r in table.itertuples(index=False):
        if r.policy.startswith("model"):
            ax.plot(r.burden_ph_medium, r.warned_medium, "k*", ms=9)
            ax.annotate(r.policy.removeprefix("model, "), (r.burden_ph_medium, r.warned_medium), fontsize=7)
    ax.set(xlabel="alert events (≥ MEDIUM) per patient-hour", ylabel="crisis onsets warned (≥ MEDIUM, 6 h)",
           ylim=(0, 1), title=title)
    ax.legend(fontsize=7)
    p = out / "event_tradeoff.png"
    fig.tight_layout()
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def evaluate_events(rows: DataFrame, model: ModelRef, settings: Settings, out: Path,
                    progress: Progress = print) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Validation and test patients through the alert path: MLflow metrics (``<split>_event_…``),
    ``events.md``/``events.csv`` and the trade-off plots under ``out``; returns the metrics and
    the scored readings per split."""
    t0 = time.perf_counter()
    scored = {}
    for split in ("validation", "test"):
        progress(f"event-level evaluation: scoring the {split} patients through the alert path")
        # every reading scored as the stream scores it (the policy in force decides its alerts)
        scored[split] = score_batch(split_rows(rows, settings.models, split), model, settings.clinical, settings.alerts)
    metrics: dict[str, float] = {}
    tables = {}
    for split, s in scored.items():
        tables[split] = table = event_table(s, scored["validation"], settings)
        for r in table.to_dict("records"):
            slug = re.sub(r"[^a-z0-9]+", "_", r["policy"].lower()).strip("_")  # "model, tuned (in force)" → model_tuned_in_force
            metrics |= {f"{split}_event_{slug}_{k}": float(v) for k, v in r.items()
                        if k != "policy" and isinstance(v, float | int) and not pd.isna(v)}
        curves = sweeps(s, scored["validation"], settings)
        tradeoff_plot(curves, table, settings.models.event_evaluation, out, f"{split} patients").rename(out / f"event_tradeoff_{split}.png")
        pd.concat([c.assign(score=n) for n, c in curves.items()]).to_csv(out / f"event_sweep_{split}.csv", index=False)
    causes = causes_table(scored["test"], settings)
    (out / "events.md").write_text("".join(f"### {k} patients\n\n{ev.markdown(t)}\n" for k, t in tables.items())
                                   + "### alert burden (≥ MEDIUM, per patient-hour) by cause, test patients\n\n"
                                   + ev.markdown(causes))
    pd.concat([t.assign(split=k) for k, t in tables.items()]).to_csv(out / "events.csv", index=False)
    metrics["event_eval_s"] = time.perf_counter() - t0
    return metrics, scored


# The exploration grid (``vitalwatch models alert-policy --explore``), on validation patients.
GRID = {
    "factor": [1.0, 1.5, 2.0, 2.5],
    "persistence": [(1, 1), (2, 3)],
    "exit_ratio": [1.0, 0.7],
    "reminders": [(60, 60, 60), (60, 240, 480), (60, 480, None), (None, None, None)],
    "trend": [0, 3],
    "suppression": [60, 240, 480],
}


def candidate(base: AlertPolicyConfig, factor: float, persistence: tuple[int, int], exit_ratio: float,
              reminders: tuple[float | None, ...], trend: int, suppression: float) -> AlertPolicyConfig:
    p = ev.scaled(base, factor)
    return p.model_copy(update={
        "persistence": p.persistence.model_copy(update={"k": persistence[0], "n": persistence[1]}),
        "exit_ratio": exit_ratio, "trend": p.trend.model_copy(update={"readings": trend}),
        "reminder_minutes": dict(zip(("CRITICAL", "HIGH", "MEDIUM"), reminders, strict=True)),
        "suppression_minutes": suppression, "description": ""})


def explore(scored_val: pd.DataFrame, settings: Settings, base: AlertPolicyConfig,
            progress: Progress = print) -> pd.DataFrame:
    """Every combination of ``GRID`` applied to ``base`` on the validation readings."""
    e = settings.models.event_evaluation
    combos = list(itertools.product(*GRID.values()))
    rows = []
    for i, combo in enumerate(combos, 1):
        params = dict(zip(GRID, combo, strict=True))
        pol = candidate(base, **params)
        cfg = settings.alerts.with_policy(pol)
        m = ev.event_metrics(ev.apply_policy(scored_val, settings.clinical, cfg), e.window_h, e.lead_target_h)
        rows.append({"medium": pol.thresholds["MEDIUM"], "high": pol.thresholds["HIGH"],
                     "critical": pol.thresholds["CRITICAL"], "persistence": "{}/{}".format(*params["persistence"]),
                     "exit_ratio": params["exit_ratio"], "reminders_c_h_m": "/".join(
                         "-" if r is None else f"{r:g}" for r in params["reminders"]),
                     "trend": params["trend"], "suppression": params["suppression"],
                     **ev.summary_row("", m, e.lead_target_h)})
        if i % 20 == 0 or i == len(combos):
            progress(f"explored {i}/{len(combos)} policies")
    return pd.DataFrame(rows).drop(columns=["policy"])


def frontier(grid: pd.DataFrame) -> pd.DataFrame:
    """The candidates no other beats on both burden and onsets warned (≥ MEDIUM), by burden,
    with ``efficiency`` = share of onsets warned per alert event per patient-hour."""
    g = grid.sort_values(["burden_ph_medium", "warned_medium"], ascending=[True, False])
    best, keep = -1.0, []
    for i, w in zip(g.index, g["warned_medium"], strict=True):
        if w > best:
            keep.append(i)
            best = w
    f = g.loc[keep].copy()
    f["efficiency"] = f["warned_medium"] / f["burden_ph_medium"]
    return f


def choose(grid: pd.DataFrame, target_burden: float, target_warned: float) -> pd.Series:
    """The default's rule: a candidate meeting both targets with the most onsets warned, if any;
    otherwise the frontier's most efficient (most onsets warned per unit of alert burden)."""
    ok = grid[(grid["burden_ph_medium"] <= target_burden) & (grid["warned_medium"] >= target_warned)]
    if len(ok):
        return ok.sort_values(["warned_medium", "burden_ph_medium"], ascending=[False, True]).iloc[0]
    f = frontier(grid)
    return f.loc[f["efficiency"].idxmax()]
