"""Feature drift: the population stability index (PSI) of the live feature vectors against the
training reference stored with the model.

The 120 features are 30 slots × (systolic, diastolic, heart rate, minutes since previous).
Slots are pooled into **slot groups** per feature — ``latest`` (the scored reading),
``recent`` (the 9 before it) and ``older`` (the rest) — so a group has enough values for a
stable histogram and still says where a shift is (e.g. ``dt_latest``: devices now send more
often). Each group's reference is its training values' quantile bins plus one bin for missing
(NaN: slots before a patient's first reading, a missing heart rate), because a change in how
many readings patients have is drift too.

PSI = Σ (a − e) · ln(a / e) over the bins (a: live share, e: reference share, both floored at
:data:`FLOOR`). Conventionally < 0.1 is stable, 0.1–0.25 a moderate shift, > 0.25 a major one.
Counts (not shares) are what a distributed job sums, so :func:`counts` and :func:`psi` are
separate. Pure numpy: training writes the reference, the ``model_outcomes`` stage counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vitalwatch.features.vector import SLOT_FEATURES

FLOOR = 1e-4  # a bin empty on one side would make PSI infinite
RECENT_SLOTS = 9
REFERENCE_FILE = "reference.json"  # in the scorer's directory: sealed with the model


def slot_groups(history: int) -> dict[str, np.ndarray]:
    """Group name → the columns of the feature vector it pools (module doc)."""
    width = len(SLOT_FEATURES)
    last = history - 1
    spans = {"latest": range(last, history), "recent": range(max(last - RECENT_SLOTS, 0), last),
             "older": range(0, max(last - RECENT_SLOTS, 0))}
    out = {}
    for i, f in enumerate(SLOT_FEATURES):
        for name, slots in spans.items():
            if len(slots):
                out[f"{f}_{name}"] = np.array([s * width + i for s in slots])
    return out


def reference(x: np.ndarray, history: int, bins: int = 10) -> dict[str, Any]:
    """The training reference of ``x`` (readings × features): per slot group, the inner bin
    edges (quantiles of its finite values) and each bin's share, missing first."""
    groups: dict[str, Any] = {}
    for name, cols in slot_groups(history).items():
        v = x[:, cols].ravel().astype(float)
        finite = v[np.isfinite(v)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.array([])
        c = _bin_counts(v, edges)
        groups[name] = {"edges": [float(e) for e in edges], "share": [float(s) for s in c / max(c.sum(), 1)]}
    return {"history": history, "bins": bins, "readings": len(x), "groups": groups}


def counts(x: np.ndarray, ref: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per slot group of ``ref``, how many of ``x``'s values fall in each of its bins."""
    return {name: _bin_counts(x[:, cols].ravel().astype(float), np.asarray(ref["groups"][name]["edges"]))
            for name, cols in slot_groups(ref["history"]).items() if name in ref["groups"]}


def psi(group_counts: dict[str, np.ndarray], ref: dict[str, Any]) -> dict[str, float]:
    """PSI per slot group (module doc); NaN for a group with no live values."""
    out = {}
    for name, c in group_counts.items():
        c = np.asarray(c, float)
        if c.sum() == 0:
            out[name] = float("nan")
            continue
        a = np.maximum(c / c.sum(), FLOOR)
        e = np.maximum(np.asarray(ref["groups"][name]["share"], float), FLOOR)
        out[name] = float(np.sum((a - e) * np.log(a / e)))
    return out


def _bin_counts(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """[missing, below the first edge, …, at or above the last edge]."""
    finite = np.isfinite(v)
    idx = np.searchsorted(edges, v[finite], side="right")
    return np.concatenate([[np.count_nonzero(~finite)], np.bincount(idx, minlength=len(edges) + 1)]).astype(np.int64)
