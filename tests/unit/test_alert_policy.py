"""The alert policy (docs/requirements.md §4), one pure implementation: levels, crisis-now override, NEWS2,
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
from vitalwatch.config import AlertPolicyConfig, PersistenceConfig, Settings, TrendConfig

S = Settings()
CLIN, CFG = S.clinical, S.alerts.with_profile("source")  # the mechanics below are the source project's profile
MIN = 60_000


def a(t_min: float, risk: float, *, crisis: bool = False, news2: float = math.nan, red: bool = False,
      obs: str | None = None) -> Assessment:
    return Assessment("p1", obs or f"o{t_min:g}", int(t_min * MIN), risk, crisis, news2, red)


@pytest.mark.parametrize(("risk", "level"), [(0.0, "LOW"), (0.1999, "LOW"), (0.2, "MEDIUM"), (0.3999, "MEDIUM"),
                                             (0.4, "HIGH"), (0.5999, "HIGH"), (0.6, "CRITICAL"), (1.0, "CRITICAL"),
                                             (math.nan, "LOW")])
def test_levels_from_risk_6h_thresholds_inclusive(risk: float, level: str) -> None:
    assert risk_level(risk, CFG.policy.thresholds) == level


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
    cfg = CFG.with_policy(CFG.policy.model_copy(update={"suppression_minutes": 10,
                                                       "reminder_minutes": {"CRITICAL": 10}}))
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


def policy(**kw) -> object:
    """The source profile with some parameters changed."""
    return CFG.with_policy(AlertPolicyConfig.model_validate({**CFG.policy.model_dump(), **kw}))


def test_persistence_needs_k_of_the_last_n_readings() -> None:
    cfg = policy(persistence=PersistenceConfig(k=2, n=3).model_dump(), reminder_minutes={})
    seq = [a(0, 0.3), a(30, 0.05), a(60, 0.3), a(90, 0.5), a(120, 0.05), a(150, 0.05), a(180, 0.05)]
    got = kinds(run_policy(AlertState(), seq, CLIN, cfg))
    # one reading at MEDIUM is not enough; the second within 3 raises; HIGH needs two HIGHs,
    # so 0.5 is MEDIUM (2 of 3 ≥ MEDIUM); then MEDIUM while 2 of the last 3 are; LOW once not
    assert got == [None, None, ("raised", "MEDIUM"), None, None, ("resolved", "LOW"), None]


def test_persistence_never_delays_a_crisis_reading() -> None:
    cfg = policy(persistence={"k": 3, "n": 3})
    assert kinds(run_policy(AlertState(), [a(0, 0.01, crisis=True)], CLIN, cfg)) == [("raised", "CRITICAL")]


def test_hysteresis_holds_a_level_until_risk_falls_below_the_exit() -> None:
    cfg = policy(exit_ratio=0.5, reminder_minutes={})
    seq = [a(0, 0.25), a(60, 0.15), a(120, 0.11), a(180, 0.09), a(240, 0.25)]
    d = run_policy(AlertState(), seq, CLIN, cfg)
    # 0.15 and 0.11 stay above 0.20 × 0.5: no resolution, no re-raise; 0.09 resolves
    assert kinds(d) == [("raised", "MEDIUM"), None, None, ("resolved", "LOW"), ("raised", "MEDIUM")]
    assert d[1].level == "MEDIUM" and d[1].reasons == ("risk_6h>=0.10(held)",)
    # without hysteresis the same risks flap
    assert kinds(run_policy(AlertState(), seq, CLIN, policy(reminder_minutes={}))) == [
        ("raised", "MEDIUM"), ("resolved", "LOW"), None, None, ("raised", "MEDIUM")]


def test_hysteresis_holds_no_higher_than_the_level_reached() -> None:
    cfg = policy(exit_ratio=0.5, reminder_minutes={})
    d = run_policy(AlertState(), [a(0, 0.45), a(60, 0.25), a(120, 0.21), a(180, 0.05)], CLIN, cfg)
    assert [x.level for x in d] == ["HIGH", "HIGH", "HIGH", "LOW"]  # 0.21 >= 0.40 × 0.5
    d = run_policy(AlertState(), [a(0, 0.25), a(60, 0.39)], CLIN, cfg)
    assert [x.level for x in d] == ["MEDIUM", "MEDIUM"]


def test_a_rising_risk_escalates() -> None:
    cfg = policy(trend=TrendConfig(readings=3, min_rise=0.15, to_level="HIGH").model_dump(), reminder_minutes={})
    d = run_policy(AlertState(), [a(0, 0.05), a(60, 0.1), a(120, 0.22), a(180, 0.24), a(240, 0.25)], CLIN, cfg)
    # 0.22 is 0.17 above the lowest of the 3 before it: HIGH; 0.25 is only 0.15 above 0.10 … still rising
    assert [x.level for x in d] == ["LOW", "LOW", "HIGH", "HIGH", "HIGH"]
    assert kinds(d)[2] == ("raised", "HIGH") and "risk_6h_rising>=0.15" in d[2].reasons
    # a rise below the MEDIUM threshold is no alert
    assert [x.level for x in run_policy(AlertState(), [a(0, 0.0), a(60, 0.19)], CLIN, cfg)] == ["LOW", "LOW"]


def test_reminders_per_level_and_none() -> None:
    cfg = policy(reminder_minutes={"CRITICAL": 60, "HIGH": 240, "MEDIUM": None})
    med = run_policy(AlertState(), [a(t, 0.3) for t in range(0, 600, 60)], CLIN, cfg)
    assert kinds(med) == [("raised", "MEDIUM")] + [None] * 9
    high = run_policy(AlertState(), [a(t, 0.5) for t in range(0, 600, 60)], CLIN, cfg)
    assert [k for k in kinds(high) if k] == [("raised", "HIGH"), ("repeated", "HIGH"), ("repeated", "HIGH")]
    assert [high[i].event is not None for i in (0, 4, 8)] == [True, True, True]


def test_a_crisis_reading_alerts_after_crisis_repeat_minutes_whatever_the_profile() -> None:
    cfg = policy(reminder_minutes={"CRITICAL": None, "HIGH": None, "MEDIUM": None}, suppression_minutes=480)
    got = kinds(run_policy(AlertState(), [a(0, 0.7), a(60, 0.7), a(60.5, 0.1, crisis=True, obs="c"),
                                          a(100, 0.1, crisis=True), a(200, 0.1, crisis=True)], CLIN, cfg))
    # model CRITICAL is not reminded; a crisis reading is, 60 min (crisis_repeat_minutes) after the last
    assert got == [("raised", "CRITICAL"), None, ("repeated", "CRITICAL"), None, ("repeated", "CRITICAL")]
    # a crisis after a resolution is raised again, however long the profile's suppression window
    got = kinds(run_policy(AlertState(), [a(0, 0.1, crisis=True), a(30, 0.1), a(90, 0.1, crisis=True)], CLIN, cfg))
    assert got == [("raised", "CRITICAL"), ("resolved", "LOW"), ("raised", "CRITICAL")]
    # and a late crisis too
    st = AlertState()
    got = kinds(run_policy(st, [a(0, 0.1, crisis=True), a(300, 0.1), a(100, 0.1, crisis=True)], CLIN, cfg))
    assert got == [("raised", "CRITICAL"), ("resolved", "LOW"), ("raised", "CRITICAL")]


def test_alert_state_round_trips_and_reads_the_older_layout() -> None:
    cfg = policy(exit_ratio=0.5, persistence={"k": 2, "n": 4}, trend={"readings": 5})
    st = AlertState()
    run_policy(st, [a(0, 0.3), a(30, math.nan), a(60, 0.45), a(90, 0.41)], CLIN, cfg)
    back = AlertState.from_tuple(st.as_tuple())
    assert back.as_tuple() == st.as_tuple() and back.model_rank == st.model_rank == 2
    assert back.recent_risks[:1] == [0.3] and math.isnan(back.recent_risks[1]) and len(back.recent_risks) == 4
    old = AlertState.from_tuple(("HIGH", 5, [NO_TIME, 1, 2, NO_TIME]))  # a checkpoint from before
    assert (old.level, old.model_rank, old.recent_risks, old.last_alert_ms, old.late_critical_ms) == (
        "HIGH", 0, [], [NO_TIME, 1, 2, NO_TIME], NO_TIME)


def test_a_late_crisis_ahead_of_the_in_order_readings_never_silences_them() -> None:
    """An untimely crisis is placed at its arrival, hours ahead of a device's buffered readings:
    the in-order crises that follow still alert on their own schedule."""
    st = AlertState()
    seq = [a(0, 0.1, crisis=True), Assessment("p1", "untimely", 180 * MIN, math.nan, True, math.nan, False, True),
           *(a(t, 0.1, crisis=True) for t in (60, 90, 120, 150, 180, 210))]
    got = kinds(run_policy(st, seq, CLIN, CFG))
    assert got == [("raised", "CRITICAL"), ("raised", "CRITICAL"), ("repeated", "CRITICAL"), None,
                   ("repeated", "CRITICAL"), None, ("repeated", "CRITICAL"), None]
    assert st.late_critical_ms == 180 * MIN and st.last_alert_ms[3] == 180 * MIN
    assert AlertState.from_tuple(st.as_tuple()) == st


@pytest.mark.parametrize("bad", [{"thresholds": {"CRITICAL": 0.3, "HIGH": 0.4, "MEDIUM": 0.2}},
                                 {"thresholds": {"HIGH": 0.4, "MEDIUM": 0.2}},
                                 {"persistence": {"k": 3, "n": 2}},
                                 {"reminder_minutes": {"LOW": 5}}])
def test_a_policy_that_makes_no_sense_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        AlertPolicyConfig.model_validate({**CFG.policy.model_dump(), **bad})


def test_the_profile_must_exist() -> None:
    with pytest.raises(ValueError, match=r"alerts\.profile"):
        Settings(alerts={**S.alerts.model_dump(), "profile": "nope"})


@pytest.mark.parametrize(("section", "key"), [("clinical", "alert_thresholds"), ("alerts", "suppression_minutes")])
def test_a_moved_setting_is_refused_not_ignored(section: str, key: str) -> None:
    with pytest.raises(ValueError, match="moved to alerts"):
        Settings(**{section: {**getattr(S, section).model_dump(), key: 10}})


def test_persistence_cannot_look_further_back_than_the_state_keeps() -> None:
    with pytest.raises(ValueError):
        PersistenceConfig(k=2, n=40)
