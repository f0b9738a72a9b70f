"""Evaluation figures logged with every training run (ROC, PR, reliability, importance)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from vitalwatch.models.metrics import finite_scores, reliability


def curves(y_by_h: dict[int, np.ndarray], scores: dict[str, dict[int, np.ndarray]], out: Path) -> list[Path]:
    """One ROC and one PR figure per horizon, every model/baseline as a line."""
    paths = []
    for kind in ("roc", "pr"):
        fig, axes = plt.subplots(1, len(y_by_h), figsize=(5 * len(y_by_h), 4.5), squeeze=False)
        for ax, (h, y) in zip(axes[0], y_by_h.items(), strict=True):
            for name, by_h in scores.items():
                s = finite_scores(by_h[h])
                if kind == "roc":
                    fpr, tpr, _ = roc_curve(y, s)
                    ax.plot(fpr, tpr, label=name)
                else:
                    prec, rec, _ = precision_recall_curve(y, s)
                    ax.plot(rec, prec, label=name)
            if kind == "roc":
                ax.plot([0, 1], [0, 1], "k:", lw=0.8)
                ax.set(xlabel="false positive rate", ylabel="true positive rate")
            else:
                ax.axhline(y.mean(), color="k", ls=":", lw=0.8)
                ax.set(xlabel="recall", ylabel="precision")
            ax.set_title(f"{kind.upper()} — {h} h (test patients)")
            ax.legend(fontsize=7)
        p = out / f"{kind}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths


def reliability_plot(y_by_h: dict[int, np.ndarray], p_by_h: dict[int, np.ndarray], bins: int, out: Path) -> Path:
    fig, axes = plt.subplots(1, len(y_by_h), figsize=(5 * len(y_by_h), 4.5), squeeze=False)
    for ax, (h, y) in zip(axes[0], y_by_h.items(), strict=True):
        r = reliability(y, p_by_h[h], bins)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.plot(r["predicted"], r["observed"], "o-")
        for _, row in r.iterrows():
            ax.annotate(str(int(row["n"])), (row["predicted"], row["observed"]), fontsize=6)
        ax.set(xlabel="mean predicted risk", ylabel="observed rate", title=f"reliability — {h} h")
    p = out / "reliability.png"
    fig.tight_layout()
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def importance_plot(booster, feature_names: list[str], horizon: int, out: Path, top: int = 25) -> Path:
    gain = booster.get_score(importance_type="total_gain")
    named = {feature_names[int(k[1:])] if k.startswith("f") and k[1:].isdigit() else k: v for k, v in gain.items()}
    items = sorted(named.items(), key=lambda kv: kv[1])[-top:]
    fig, ax = plt.subplots(figsize=(6, 7))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(title=f"feature importance (total gain) — {horizon} h", xlabel="total gain")
    p = out / f"importance_{horizon}h.png"
    fig.tight_layout()
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p
