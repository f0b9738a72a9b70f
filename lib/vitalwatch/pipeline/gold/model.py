"""The model the alert path scores with: the champion, an optional shadow beside it, or — when
no champion can be loaded — the rules alone, reported as degraded (never waiting on the registry)."""

from __future__ import annotations

import logging
import pickle

import numpy as np

from vitalwatch.config import Settings
from vitalwatch.features.vector import feature_names
from vitalwatch.scoring.model_ref import ModelRef

log = logging.getLogger(__name__)

NO_MODEL_VERSION = "none"  # model_version of readings scored without a model


def load_model(settings: Settings) -> ModelRef:
    """The champion (``gold.model_alias``) with, when ``gold.shadow_alias`` names one, the
    shadow model scored beside it; a shadow that cannot be loaded is logged and left out."""
    from vitalwatch.models.registry import load_risk_model

    m = load_risk_model(settings, settings.gold.model_alias)
    return ModelRef(m.name, m.version, m.scorer, load_shadow(settings, m.version))


def load_shadow(settings: Settings, champion_version: str) -> ModelRef | None:
    from vitalwatch.models.registry import load_risk_model
    from vitalwatch.pipeline.supervisor import first_line

    alias = settings.gold.shadow_alias
    if not alias:
        return None
    try:
        m = load_risk_model(settings, alias)
    except Exception as e:  # no such alias yet, a checksum refused: scoring goes on without it
        log.warning("no shadow model %s@%s: %s", settings.models.risk_model_name, alias, first_line(e))
        return None
    if m.version == champion_version:
        log.info("shadow alias %s is the champion (version %s): no shadow scoring", alias, m.version)
        return None
    ref = ModelRef(m.name, m.version, m.scorer)
    try:  # it travels with every task and scores every batch: refuse here what would fail there
        pickle.loads(pickle.dumps(ref)).scorer.predict(np.full((1, len(feature_names(settings.clinical.history_readings))), np.nan))
    except Exception as e:
        log.warning("shadow model %s version %s cannot score here (%s): left out", m.name, m.version, first_line(e))
        return None
    return ref


def load_model_or_rules(settings: Settings) -> tuple[ModelRef, str | None]:
    """The champion, or — when it cannot be loaded or is refused — scoring by the rules alone
    (:class:`~vitalwatch.models.scorer.NoModel`, ``model_version`` ``none``) and why: the alert
    path must never wait for the registry."""
    from vitalwatch.models.scorer import NoModel
    from vitalwatch.pipeline.supervisor import first_line

    try:
        return load_model(settings), None
    except Exception as e:  # the registry down, no champion, a checksum refused
        reason = f"scoring without a model (crisis and NEWS2 rules only): {first_line(e)}"
        log.error("%s", reason)
        return ModelRef(settings.models.risk_model_name, NO_MODEL_VERSION,
                        NoModel(list(settings.clinical.horizons_hours))), reason


def champion_loadable(settings: Settings) -> bool:
    try:
        load_model(settings)
    except Exception as e:
        log.info("champion still not loadable: %s", e)
        return False
    return True
