"""NEWS2 (Royal College of Physicians, 2017), vectorised over readings.

Bands (docs/requirements.md §4, SpO2 scale 1): RR ≤8:3, 9–11:1, 12–20:0, 21–24:2, ≥25:3; SpO2 ≤91:3,
92–93:2, 94–95:1, ≥96:0; supplemental O2 +2; SBP ≤90:3, 91–100:2, 101–110:1, 111–219:0,
≥220:3; pulse ≤40:3, 41–50:1, 51–90:0, 91–110:1, 111–130:2, ≥131:3; temperature ≤35.0:3,
35.1–36.0:1, 36.1–38.0:0, 38.1–39.0:1, ≥39.1:2; consciousness other than Alert: 3.

**Rounding rule.** The chart is printed at whole numbers (RR, SpO2, SBP, pulse) and at 0.1 °C
(temperature), so each value is first rounded *half up* to that precision — 90.5 mmHg is
91 (score 2), 90.4 is 90 (score 3); 35.05 °C is 35.1 (score 1) — and then banded. This
leaves no value between two bands (the printed chart has gaps such as 35.0–35.1).

**Inputs.** The monitors send no consciousness level or oxygen-delivery data: unless given,
consciousness is taken as Alert and the patient as breathing air (both score 0) — stated on
every score as an assumption. The aggregate is *complete* only when RR, SpO2, SBP, pulse and
temperature are all present; ``partial`` sums whatever is present.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARAMETERS = ("respiratory_rate", "spo2", "systolic", "heart_rate", "temperature")


def round_half_up(x: np.ndarray, decimals: int = 0) -> np.ndarray:
    """Half-up rounding that is exact for values written with ``decimals + 1`` decimals."""
    f = 10.0**decimals
    # The small epsilon absorbs binary representation error (35.05 * 10 = 350.49999...).
    return np.floor(np.asarray(x, dtype=float) * f + 0.5 + 1e-9) / f


def _band(x: np.ndarray, upper_bounds: list[float], scores: list[int]) -> np.ndarray:
    """Score of the first band whose inclusive upper bound holds x; NaN stays NaN."""
    idx = np.searchsorted(np.asarray(upper_bounds, dtype=float), x, side="left")
    out = np.asarray(scores, dtype=float)[np.minimum(idx, len(scores) - 1)]
    return np.where(np.isnan(x), np.nan, out)


def score_respiratory_rate(rr: np.ndarray) -> np.ndarray:
    return _band(round_half_up(rr), [8, 11, 20, 24], [3, 1, 0, 2, 3])


def score_spo2(spo2: np.ndarray) -> np.ndarray:
    return _band(round_half_up(spo2), [91, 93, 95], [3, 2, 1, 0])


def score_systolic(sbp: np.ndarray) -> np.ndarray:
    return _band(round_half_up(sbp), [90, 100, 110, 219], [3, 2, 1, 0, 3])


def score_pulse(hr: np.ndarray) -> np.ndarray:
    return _band(round_half_up(hr), [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3])


def score_temperature(temp: np.ndarray) -> np.ndarray:
    return _band(round_half_up(temp, 1), [35.0, 36.0, 38.0, 39.0], [3, 1, 0, 1, 2])


@dataclass(frozen=True)
class News2:
    """Per-reading NEWS2: component scores, the aggregate and the alert flags."""

    components: dict[str, np.ndarray]
    total: np.ndarray  # NaN unless complete
    partial: np.ndarray  # sum of the components present
    complete: np.ndarray
    max_single: np.ndarray  # highest component present (NaN if none)

    @property
    def red_flag(self) -> np.ndarray:
        """An alert reason of its own: aggregate ≥ 7 or any single parameter scoring 3."""
        with np.errstate(invalid="ignore"):
            return (np.nan_to_num(self.total, nan=-1) >= 7) | (np.nan_to_num(self.max_single, nan=-1) >= 3)


def news2(respiratory_rate, spo2, systolic, heart_rate, temperature,
          on_oxygen=None, consciousness_alert=None) -> News2:
    """NEWS2 for arrays of vitals (NaN = not measured). ``on_oxygen`` and
    ``consciousness_alert`` default to air and Alert (see the module docstring)."""
    arrs = [np.atleast_1d(np.asarray(a, dtype=float)) for a in
            (respiratory_rate, spo2, systolic, heart_rate, temperature)]
    n = max(len(a) for a in arrs)
    arrs = [np.broadcast_to(a, (n,)) for a in arrs]
    comp = {
        "respiratory_rate": score_respiratory_rate(arrs[0]),
        "spo2": score_spo2(arrs[1]),
        "systolic": score_systolic(arrs[2]),
        "heart_rate": score_pulse(arrs[3]),
        "temperature": score_temperature(arrs[4]),
    }
    o2 = np.zeros(n) if on_oxygen is None else np.where(np.broadcast_to(on_oxygen, (n,)), 2.0, 0.0)
    alert = np.ones(n, bool) if consciousness_alert is None else np.broadcast_to(consciousness_alert, (n,))
    comp["supplemental_oxygen"] = o2
    comp["consciousness"] = np.where(alert, 0.0, 3.0)
    stack = np.vstack([comp[k] for k in (*PARAMETERS, "supplemental_oxygen", "consciousness")])
    complete = ~np.isnan(stack[: len(PARAMETERS)]).any(axis=0)
    partial = np.nansum(stack, axis=0)
    with np.errstate(all="ignore"):
        max_single = np.where(np.isnan(stack).all(axis=0), np.nan, np.nanmax(np.nan_to_num(stack, nan=-1), axis=0))
    return News2(comp, np.where(complete, partial, np.nan), partial, complete, max_single)
