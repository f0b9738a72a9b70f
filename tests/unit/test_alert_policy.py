"""The alert policy (PRODUCT §4), one pure implementation: levels, crisis-now override, NEWS2,
escalation, suppression, repeats, resolution, late readings, ids and routing."""

from __future__ import annotations

import math

import pytest

from vitalwatch.alerts.policy import (
    NO_TIME,
    AlertState,
    Assessment,
    alert_id,
    level_of,
    recipients,
    risk_level,
    run_policy,
)
from vitalwatch.config import Settings

S = Settings()
CLIN, CFG = S.clinical, S.alerts
MIN = 60_000


def a(t_min: float, risk: float, *, crisis: bool = False, news2: float = math.nan, red: bool = False,
      obs: str | None = None) -> Assessment:
    return Assessment("p1", obs or f"o{t_min:g}", int(t_min * MIN), risk, crisis, news2, red)


@pytest.mark.parametrize(("risk", "level"), [(0.0, "LOW"), (0.1999, "LOW"), (0.2, "MEDIUM"), (0.3999, "MEDIUM"),
                                             (0.4, "HIGH"), (0.5999, "HIGH"), (0.6, "CRITICAL"), (1.0, "CRITICAL"),
                                             (math.nan, "LOW")])
def test_levels_from_risk_6h_thresholds_inclusive(risk: float, level: str) -> None:
    assert risk_level(risk, CLIN) == level


def test_crisis_now_is_critical_whatever_the_model_says() -> None:
    level, reasons = level_of(a(0, 0.01, crisis=True), CLIN, CFG)
    assert level == "CRITICAL" and reasons == ["crisis_now"]


def test_news2_is_an_alert_reason_of_its_own() -> None:
    assert level_of(a(0, 0.01, news2=7), CLIN, CFG) == ("HIGH", ["news2>=7"])
    assert level_of(a(0, 0.01, news2=6), CLIN, CFG) == ("LOW", [])
    assert level_of(a(0, 0.01, red=True), CLIN, CFG) == ("MEDIUM", ["news2_red_flag"])
    # the highest reason wins; every reason is kept
    level, reasons = level_of(a(0, 0.65, news2=8, red=True), CLIN, CFG)
    assert level == "CRITICAL" and reasons == ["risk_6h>=0.60", "news2>=7", "news2_red_flag"]


def kinds(decisions) -> list[tuple[str, str] | None]:
    return [(d.event.kind, d.event.level) if d.event else None for d in decisions]


def test_raise_escalate_suppress_repeat_resolve() -> None:
    st = AlertState()
    seq = [a(0, 0.05), a(15, 0.25), a(30, 0.45), a(45, 0.45), a(60, 0.7), a(75, 0.45),
           a(90, 0.65), a(150, 0.65), a(165, 0.62), a(180, 0.1), a(195, 0.1)]
    got = kinds(run_policy(st, seq, CLIN, CFG))
    assert got == [
        None,                          # LOW
        ("raised", "MEDIUM"),          # LOW → MEDIUM
        ("escalated", "HIGH"),         # MEDIUM → HIGH
        None,                          # still HIGH, alerted 15 min ago
        ("escalated", "CRITICAL"),     # HIGH → CRITICAL
        None,                          # falls back to HIGH: no event
        None,                          # CRITICAL again 30 min after the last CRITICAL: suppressed
        ("repeated", "CRITICAL"),      # still CRITICAL 90 min after the last CRITICAL alert: reminder
        None,                          # reminder 15 min ago
        ("resolved", "LOW"),           # back to LOW
        None,
    ]
    assert st.level == "LOW" and st.eval_ms == 195 * MIN


def test_suppression_window_is_configurable() -> None:
    cfg = CFG.model_copy(update={"suppression_minutes": 10})
    got = kinds(run_policy(AlertState(), [a(0, 0.7), a(5, 0.7), a(10, 0.7), a(20, 0.7)], CLIN, cfg))
    assert got == [("raised", "CRITICAL"), None, ("repeated", "CRITICAL"), ("repeated", "CRITICAL")]


def test_crisis_now_after_a_recent_critical_is_not_repeated() -> None:
    got = kinds(run_policy(AlertState(), [a(0, 0.1, crisis=True), a(10, 0.1, crisis=True), a(20, 0.1)], CLIN, CFG))
    assert got == [("raised", "CRITICAL"), None, ("resolved", "LOW")]


def test_late_reading_never_moves_the_level_but_a_late_crisis_still_alerts() -> None:
    st = AlertState()
    d = run_policy(st, [a(100, 0.3), a(50, 0.9), a(60, 0.1, crisis=True), a(70, 0.1, crisis=True)], CLIN, CFG)
    assert kinds(d) == [("raised", "MEDIUM"), None, ("raised", "CRITICAL"), None]
    assert [x.late for x in d] == [False, True, True, True]
    assert d[2].event.late and d[2].event.previous_level == "MEDIUM"
    assert st.level == "MEDIUM" and st.eval_ms == 100 * MIN


def test_alert_ids_are_deterministic_and_shared_with_the_gateway() -> None:
    d1 = run_policy(AlertState(), [a(0, 0.1, crisis=True, obs="bp-1")], CLIN, CFG)[0].event
    d2 = run_policy(AlertState(), [a(0, 0.1, crisis=True, obs="bp-1")], CLIN, CFG)[0].event
    assert d1.alert_id == d2.alert_id == alert_id("p1", "bp-1", "CRITICAL")
    assert alert_id("p1", "bp-1", "HIGH") != d1.alert_id and alert_id("p2", "bp-1", "CRITICAL") != d1.alert_id


def test_state_round_trips_through_the_state_store_tuple() -> None:
    st = AlertState()
    run_policy(st, [a(0, 0.5), a(30, 0.7)], CLIN, CFG)
    back = AlertState.from_tuple(st.as_tuple())
    assert back == st and back.last_alert_ms[3] == 30 * MIN and back.last_alert_ms[0] == NO_TIME
    assert AlertState.from_tuple(None) == AlertState()


def test_routing_by_level_to_the_care_team_with_fallback() -> None:
    team = {"physician_on_call": "dr-a", "nurse": "rn-b", "dashboard": "ward-a"}
    assert recipients("CRITICAL", team, CFG) == [{"role": "physician_on_call", "id": "dr-a"},
                                                 {"role": "nurse", "id": "rn-b"}]
    assert recipients("HIGH", team, CFG) == [{"role": "nurse", "id": "rn-b"}]
    assert recipients("MEDIUM", team, CFG) == [{"role": "dashboard", "id": "ward-a"}]
    assert recipients("CRITICAL", None, CFG) == [{"role": "physician_on_call", "id": "on-call-physician"},
                                                 {"role": "nurse", "id": "charge-nurse"}]
