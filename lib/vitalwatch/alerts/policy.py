"""The alert policy (PRODUCT §4), one pure implementation for streaming, batch and tests.

Per reading, the **level** is the highest of:
- the model: risk_6h ≥ CRITICAL/HIGH/MEDIUM thresholds (``clinical.alert_thresholds``), else LOW;
- **crisis now**: the reading itself is a hypertensive crisis → CRITICAL, whatever the model says;
- **NEWS2**: aggregate ≥ ``alerts.news2_aggregate_threshold`` → at least
  ``news2_aggregate_level``; any single parameter scoring 3 (red flag) → at least
  ``news2_red_flag_level``.

Per patient, over readings in time order, an **alert event** is raised when the level
- reaches MEDIUM or above from LOW (``raised``) or rises (``escalated``), unless an alert at
  that same level was raised within ``suppression_minutes`` before (then it is suppressed);
- stays at or above MEDIUM and no alert at that level or higher has been raised within the
  suppression window (``repeated``: a reminder, at most one per window);
- falls back to LOW from MEDIUM or above (``resolved``, level LOW).
A fall between alert levels (e.g. CRITICAL → HIGH) changes the patient's level without an event.

**Late readings** (older than the patient's newest evaluated reading, or marked
``out_of_order`` by the engine: too late for the history, or a time that cannot be trusted)
never move the patient's level; a late reading that is itself a crisis still raises a CRITICAL
alert marked ``late`` unless a CRITICAL alert was raised within the suppression window around it.

Times are the readings' effective times, so a replay gives the same events, and
``alert_id`` is a UUID-5 of (patient, observation, level): deterministic, so replays and
restarts dedupe. Being predictable, it must come only from the pipeline: the Kafka ACLs let no
other principal write the alert topic.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from vitalwatch.config import AlertsConfig, ClinicalConfig

LEVELS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
RANK = {lvl: i for i, lvl in enumerate(LEVELS)}
NO_TIME = -1
_NS = uuid.UUID("6f1c8f0e-5a43-4d8e-9a59-3c1b2f7e0a11")


def alert_id(patient_id: str, observation_id: str, level: str) -> str:
    """Deterministic id of the alert a reading raises at ``level`` (server or gateway)."""
    return str(uuid.uuid5(_NS, f"{patient_id}|{observation_id}|{level}"))


def risk_level(risk: float, cfg: ClinicalConfig) -> str:
    """LOW/MEDIUM/HIGH/CRITICAL from the calibrated risk at the alert horizon."""
    if risk is None or (isinstance(risk, float) and math.isnan(risk)):
        return "LOW"
    for lvl in ("CRITICAL", "HIGH", "MEDIUM"):
        if risk >= cfg.alert_thresholds[lvl]:
            return lvl
    return "LOW"


@dataclass(frozen=True)
class Assessment:
    """What the policy needs to know about one scored reading."""

    patient_id: str
    observation_id: str
    time_ms: int                     # effective time, epoch milliseconds
    risk: float                      # calibrated risk at the alert horizon (NaN if unscored)
    crisis_now: bool = False
    news2: float = math.nan          # aggregate; NaN when not computable
    news2_red_flag: bool = False
    out_of_order: bool = False       # too late for the history, or its time untrusted: handled as late


def level_of(a: Assessment, clinical: ClinicalConfig, cfg: AlertsConfig) -> tuple[str, list[str]]:
    """The reading's level and the reasons behind it (highest first)."""
    level = risk_level(a.risk, clinical)
    reasons = [f"risk_{clinical.alert_horizon_hours}h>={clinical.alert_thresholds[level]:.2f}"] if level != "LOW" else []

    def lift(to: str, why: str) -> None:
        nonlocal level
        reasons.append(why)
        if RANK[to] > RANK[level]:
            level = to

    if a.crisis_now:
        lift("CRITICAL", "crisis_now")
    if not math.isnan(a.news2) and a.news2 >= cfg.news2_aggregate_threshold:
        lift(cfg.news2_aggregate_level, f"news2>={cfg.news2_aggregate_threshold:g}")
    if a.news2_red_flag:
        lift(cfg.news2_red_flag_level, "news2_red_flag")
    return level, reasons


@dataclass
class AlertState:
    """A patient's alerting state, carried between micro-batches (in the state store)."""

    level: str = "LOW"
    eval_ms: int = NO_TIME                       # newest reading evaluated in order
    last_alert_ms: list[int] = field(default_factory=lambda: [NO_TIME] * len(LEVELS))

    def as_tuple(self) -> tuple[str, int, list[int]]:
        return self.level, self.eval_ms, list(self.last_alert_ms)

    @classmethod
    def from_tuple(cls, t: tuple[str, int, list[int]] | None) -> AlertState:
        return cls() if t is None or t[0] is None else cls(t[0], int(t[1]), [int(x) for x in t[2]])


@dataclass(frozen=True)
class AlertEvent:
    alert_id: str
    kind: str                # raised | escalated | repeated | resolved
    level: str
    previous_level: str
    patient_id: str
    observation_id: str
    time_ms: int
    reasons: tuple[str, ...]
    late: bool


@dataclass(frozen=True)
class Decision:
    """The policy's verdict on one reading."""

    level: str
    reasons: tuple[str, ...]
    late: bool
    event: AlertEvent | None


def _within(t: int, last: int, window_ms: float) -> bool:
    return last != NO_TIME and abs(t - last) < window_ms


def decide(state: AlertState, a: Assessment, clinical: ClinicalConfig, cfg: AlertsConfig) -> Decision:
    """Apply the policy to one reading; ``state`` is updated in place."""
    level, reasons = level_of(a, clinical, cfg)
    window = cfg.suppression_minutes * 60_000
    t = a.time_ms

    def event(kind: str, lvl: str, prev: str, late: bool = False) -> AlertEvent:
        if lvl != "LOW":
            state.last_alert_ms[RANK[lvl]] = max(state.last_alert_ms[RANK[lvl]], t)
        return AlertEvent(alert_id(a.patient_id, a.observation_id, lvl), kind, lvl, prev, a.patient_id,
                          a.observation_id, t, tuple(reasons), late)

    if a.out_of_order or (state.eval_ms != NO_TIME and t < state.eval_ms):  # late: never moves the level
        ev = None
        if a.crisis_now and not _within(t, state.last_alert_ms[RANK["CRITICAL"]], window):
            ev = event("raised", "CRITICAL", state.level, late=True)
        return Decision(level, tuple(reasons), True, ev)

    prev = state.level
    ev = None
    if RANK[level] >= RANK["MEDIUM"]:
        if RANK[level] > RANK[prev]:
            if not _within(t, state.last_alert_ms[RANK[level]], window):
                ev = event("raised" if prev == "LOW" else "escalated", level, prev)
        else:
            recent = max(state.last_alert_ms[RANK[level]:])
            if recent == NO_TIME or t - recent >= window:
                ev = event("repeated", level, prev)
    elif RANK[prev] >= RANK["MEDIUM"]:
        ev = event("resolved", "LOW", prev)
    state.level = level
    state.eval_ms = t
    return Decision(level, tuple(reasons), False, ev)


def run_policy(state: AlertState, assessments: Iterable[Assessment], clinical: ClinicalConfig,
               cfg: AlertsConfig) -> list[Decision]:
    """Decisions for one patient's readings, in the order given (time order for a batch)."""
    return [decide(state, a, clinical, cfg) for a in assessments]


def recipients(level: str, care_team: dict[str, str] | None, cfg: AlertsConfig) -> list[dict[str, str]]:
    """Who is told about an alert at ``level``: the routing table's roles resolved against the
    patient's care team (the fallback team for unregistered patients or unfilled roles)."""
    team = care_team or {}
    out = []
    for role in cfg.routing.get(level, []):
        who = team.get(role) or cfg.fallback_care_team.get(role)
        if who:
            out.append({"role": role, "id": who})
    return out
