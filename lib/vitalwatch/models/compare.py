"""Champion vs shadow on delayed outcomes (``vitalwatch models compare``).

The alert application scores the shadow model (``gold.shadow_alias``) beside the champion on
the same readings and stores both in ``gold/risk_scores``. Here both are judged on the same
readings once their outcomes are known (:mod:`vitalwatch.models.outcomes`): per horizon
AUROC, AUPRC and calibration error; and, through the alert policy in force replayed over the
same readings, alert burden and crisis onsets warned. Reading only: promotion stays the
registry's rule (``vitalwatch train``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitalwatch.alerts import evaluation as ev
from vitalwatch.config import Settings
from vitalwatch.models.metrics import expected_calibration_error, ranking_metrics
from vitalwatch.models.outcomes import outcomes, timed_readings

COLUMNS = ["patient_id", "observation_id", "effective_time", "score_status", "crisis_now", "news2",
           "news2_red_flag", "level_reasons", "model_name", "model_version", "shadow_model_version"]


def score_columns(settings: Settings) -> list[str]:
    hs = settings.clinical.horizons_hours
    return [*COLUMNS, *(f"risk_{h}h" for h in hs), *(f"shadow_risk_{h}h" for h in hs)]


def compare(scores: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """One row per (model, horizon) on the readings both scored with a known outcome, plus the
    event-level columns (the same for every horizon of a model)."""
    hs = list(settings.clinical.horizons_hours)
    r = outcomes(timed_readings(scores), hs)
    both = r[r["shadow_model_version"].notna() & r[f"risk_{hs[0]}h"].notna()
             & r[f"shadow_risk_{hs[0]}h"].notna()].reset_index(drop=True)
    if both.empty:
        return pd.DataFrame()
    rows = []
    alert_h = settings.clinical.alert_horizon_hours
    for who, prefix, version in (("champion", "risk", both["model_version"]),
                                 ("shadow", "shadow_risk", both["shadow_model_version"])):
        replayed = ev.apply_policy(both, settings.clinical, settings.alerts, both[f"{prefix}_{alert_h}h"])
        events = ev.event_metrics(replayed, settings.models.event_evaluation.window_h)
        for h in hs:
            known = both[f"outcome_{h}h"].notna().to_numpy()
            y = both.loc[known, f"outcome_{h}h"].to_numpy(float)
            p = both.loc[known, f"{prefix}_{h}h"].to_numpy(float)
            rank = ranking_metrics(y, p) if len(y) else {"auroc": np.nan, "auprc": np.nan}
            rows.append({"model": who, "version": ",".join(sorted(set(version.astype(str)))), "horizon_h": h,
                         "readings": int(known.sum()), "positives": int(y.sum()), **rank,
                         "ece": expected_calibration_error(y, p, settings.models.ece_bins) if len(y) else np.nan,
                         "burden_ph_medium": events["burden_ph_medium"], "onsets": int(events["onsets"]),
                         "warned_medium": events["warned_medium"], "lead_median_h_medium": events["lead_median_h_medium"]})
    return pd.DataFrame(rows)
