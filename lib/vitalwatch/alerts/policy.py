"""The alert policy (docs/requirements.md §4), one pure implementation for streaming, batch and tests.

The parameters are the profile in force, ``alerts.profiles[alerts.profile]``
(:class:`~vitalwatch.config.AlertPolicyConfig`); the model card compares the profiles.

Per reading, the **level** is the highest of:
- the model: risk at the alert horizon ≥ the CRITICAL/HIGH/MEDIUM ``thresholds``, counted only
  once ``persistence.k`` of the patient's last ``persistence.n`` readings reached that level, and
  *held* (hysteresis) while the risk stays ≥ threshold × ``exit_ratio`` after it was reached;
  a risk ≥ the MEDIUM threshold that rose by ``trend.min_rise`` over the last
  ``trend.readings`` readings is at least ``trend.to_level``;
- **crisis now**: the reading itself is a hypertensive crisis → CRITICAL, whatever the model says;
- **NEWS2**: aggregate ≥ ``alerts.news2_aggregate_threshold`` → at least
  ``news2_aggregate_level``; any single parameter scoring 3 (red flag) → at least
  ``news2_red_flag_level``.

Per patient, over readings in time order, an **alert event** is raised when the level
- reaches MEDIUM or above from LOW (``raised``) or rises (``escalated``), unless an alert at
  that same level was raised within ``suppression_minutes`` before (then it is suppressed);
- stays at or above MEDIUM and no alert at that level or higher was raised within the level's
  ``reminder_minutes`` (``repeated``: a reminder; none when null);
- a **crisis reading** alerts unless a CRITICAL alert was raised within
  ``alerts.crisis_repeat_minutes`` (at most the suppression window), whatever the profile's
  suppression and reminder windows: the safety rule is not a tuning parameter;
- falls back to LOW from MEDIUM or above (``resolved``, level LOW).
A fall between alert levels (e.g. CRITICAL → HIGH) changes the patient's level without an event.

**Late readings** (older than the patient's newest evaluated reading, or marked
``out_of_order`` by the engine: too late for the history, or a time that cannot be trusted)
never move the patient's level or its recent risks; a late reading that is itself a crisis
still raises a CRITICAL alert marked ``late`` unless a CRITICAL alert was raised within
``crisis_repeat_minutes`` around it. A late alert's time is kept apart from the in-order
ones: it may lie ahead of them (an untimely reading is placed at its arrival) and must not
silence the in-order crisis readings that follow.

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

import numpy as np

from vitalwatch.config import AlertPolicyConfig, AlertsConfig, ClinicalConfig

LEVELS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
RANK = {lvl: i for i, lvl in enumerate(LEVELS)}
NO_TIME = -1
_NS = uuid.UUID("6f1c8f0e-5a43-4d8e-9a59-3c1b2f7e0a11")


def alert_id(patient_id: str, observation_id: str, level: str) -> str:
    """Deterministic id of the alert a reading raises at ``level`` (server or gateway)."""
    return str(uuid.uuid5(_NS, f"{patient_id}|{observation_id}|{level}"))


def risk_level(risk: float, thresholds: dict[str, float], ratio: float = 1.0) -> str:
    """LOW/MEDIUM/HIGH/CRITICAL from the calibrated risk at the alert horizon (each threshold
    scaled by ``ratio``: the hysteresis exit levels)."""
    if risk is None or (isinstance(risk, float) and math.isnan(risk)):
        return "LOW"
    for lvl in ("CRITICAL", "HIGH", "MEDIUM"):
        if risk >= thresholds[lvl] * ratio:
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


def _entered_or_held(a: Assessment, state: AlertState, pol: AlertPolicyConfig) -> tuple[int, list[str]]:
    """The model's rank after persistence and hysteresis (before the trend), with its reason."""
    thr = pol.thresholds
    recent = [*state.recent_risks[-(pol.persistence.n - 1):], a.risk] if pol.persistence.n > 1 else [a.risk]
    ranks = sorted((RANK[risk_level(r, thr)] for r in recent), reverse=True)
    entered = ranks[pol.persistence.k - 1] if len(ranks) >= pol.persistence.k else 0
    held = min(RANK[risk_level(a.risk, thr, pol.exit_ratio)], state.model_rank) if pol.exit_ratio < 1 else 0
    rank = max(entered, held)
    if not rank:
        return 0, []
    lvl = LEVELS[rank]
    return rank, [f"risk>={thr[lvl]:.2f}" if rank == entered else f"risk>={thr[lvl] * pol.exit_ratio:.2f}(held)"]


def model_level(a: Assessment, state: AlertState, cfg: AlertsConfig) -> tuple[str, list[str]]:
    """The model's level for an in-order reading, after persistence, hysteresis and trend, with
    its reasons; ``state`` holds the patient's previous risks and model level (read only)."""
    pol = cfg.policy
    rank, reasons = _entered_or_held(a, state, pol)
    t = pol.trend
    before = [r for r in state.recent_risks[-t.readings:] if not math.isnan(r)] if t.readings else []
    if (before and not math.isnan(a.risk) and a.risk >= pol.thresholds["MEDIUM"]
            and a.risk - min(before) >= t.min_rise):
        reasons.append(f"risk_rising>={t.min_rise:.2f}")
        rank = max(rank, RANK[t.to_level])
    return LEVELS[rank], reasons


def level_of(a: Assessment, clinical: ClinicalConfig, cfg: AlertsConfig,
             state: AlertState | None = None) -> tuple[str, list[str]]:
    """The reading's level and the reasons behind it (the model's first); ``state``: the
    patient's (None: no history, as for a late reading)."""
    level, reasons = model_level(a, state or AlertState(), cfg)
    reasons = [r.replace("risk", f"risk_{clinical.alert_horizon_hours}h", 1) for r in reasons]

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


MAX_RECENT = 30  # risks kept per patient for persistence and trend (their windows are at most this)


@dataclass
class AlertState:
    """A patient's alerting state, carried between micro-batches (in the state store)."""

    level: str = "LOW"
    eval_ms: int = NO_TIME                       # newest reading evaluated in order
    last_alert_ms: list[int] = field(default_factory=lambda: [NO_TIME] * len(LEVELS))
    model_rank: int = 0                          # the model's level at the last in-order reading (hysteresis)
    recent_risks: list[float] = field(default_factory=list)  # in-order risks, oldest first (NaN: unscored)
    late_critical_ms: int = NO_TIME              # the last late CRITICAL alert (kept apart from last_alert_ms)

    def as_tuple(self) -> tuple[str, int, list[int]]:
        """(level, eval_ms, longs): the longs are the four last in-order alert times, the model
        rank, the last late CRITICAL alert and the recent risks' float64 bits (exact, NaN
        included). One array of longs, so a checkpoint written before these existed (four
        longs) loads unchanged."""
        risks = np.asarray(self.recent_risks, np.float64).view(np.int64).tolist()
        return self.level, self.eval_ms, [*self.last_alert_ms, self.model_rank, self.late_critical_ms, *risks]

    @classmethod
    def from_tuple(cls, t: tuple[str, int, list[int]] | None) -> AlertState:
        if t is None or t[0] is None:
            return cls()
        longs = [int(x) for x in t[2]]
        n = len(LEVELS)
        if len(longs) <= n:  # written before: no model rank (holds nothing), no late slot, no risks
            return cls(t[0], int(t[1]), longs[:n])
        risks = np.asarray(longs[n + 2:], np.int64).view(np.float64).tolist()
        return cls(t[0], int(t[1]), longs[:n], longs[n], risks, longs[n + 1])

    def remember(self, risk: float, model_rank: int, keep: int) -> None:
        self.model_rank = model_rank
        self.recent_risks = [*self.recent_risks, risk][-keep:] if keep else []


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
    pol = cfg.policy
    window = pol.suppression_minutes * 60_000
    if a.crisis_now:  # the safety rule, whatever the profile: a crisis alerts again after this long
        window = min(window, cfg.crisis_repeat_minutes * 60_000)
    t = a.time_ms
    late = a.out_of_order or (state.eval_ms != NO_TIME and t < state.eval_ms)
    level, reasons = level_of(a, clinical, cfg, None if late else state)

    def event(kind: str, lvl: str, prev: str, late: bool = False) -> AlertEvent:
        if late:  # its time may lie ahead of the in-order readings (an untimely one sits at its arrival):
            state.late_critical_ms = t  # kept apart, so it never silences a later in-order crisis
        elif lvl != "LOW":
            state.last_alert_ms[RANK[lvl]] = max(state.last_alert_ms[RANK[lvl]], t)
        return AlertEvent(alert_id(a.patient_id, a.observation_id, lvl), kind, lvl, prev, a.patient_id,
                          a.observation_id, t, tuple(reasons), late)

    if late:  # never moves the level
        ev = None
        if a.crisis_now and not (_within(t, state.last_alert_ms[RANK["CRITICAL"]], window)
                                 or _within(t, state.late_critical_ms, window)):
            ev = event("raised", "CRITICAL", state.level, late=True)
        return Decision(level, tuple(reasons), True, ev)

    prev = state.level
    ev = None
    if RANK[level] >= RANK["MEDIUM"]:
        if RANK[level] > RANK[prev]:
            if not _within(t, state.last_alert_ms[RANK[level]], window):
                ev = event("raised" if prev == "LOW" else "escalated", level, prev)
        else:
            remind = pol.reminder_minutes.get(level)
            remind_ms = math.inf if remind is None else remind * 60_000
            if a.crisis_now:
                remind_ms = min(remind_ms, window)  # at most crisis_repeat_minutes
            recent = max(state.last_alert_ms[RANK[level]:])
            if recent == NO_TIME or t - recent >= remind_ms:
                ev = event("repeated", level, prev)
    elif RANK[prev] >= RANK["MEDIUM"]:
        ev = event("resolved", "LOW", prev)
    state.level = level
    state.eval_ms = t
    model_rank = _entered_or_held(a, state, pol)[0] if pol.exit_ratio < 1 else 0
    state.remember(a.risk, model_rank, min(MAX_RECENT, max(pol.persistence.n - 1, pol.trend.readings)))
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
