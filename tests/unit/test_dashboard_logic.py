"""The dashboard's rules without a browser or a server: ward ordering and filters, the alert
inbox's states, trends, pipeline health from real progress events, passwords, sessions, roles."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from vitalwatch.config import Settings
from vitalwatch.dashboard import auth, rules
from vitalwatch.pipeline.monitor import ProgressRecorder, progress_record

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _status(rows):
    df = pd.DataFrame(rows, columns=["patient_id", "level", "risk_1h", "risk_6h", "minutes_ago", "state"])
    df["effective_time"] = [NOW - timedelta(minutes=m) for m in df.pop("minutes_ago")]
    return df


REGISTRY = pd.DataFrame({"patient_id": ["a", "b", "c", "d", "e"], "ward": ["w1", "w1", "w2", "w2", "w1"],
                         "name": list("ABCDE")})


def test_ward_overview_orders_by_level_then_risk_and_filters() -> None:
    st = _status([("a", "MEDIUM", 0.1, 0.25, 5, "active"), ("b", "CRITICAL", 0.2, 0.30, 1, "active"),
                  ("c", "HIGH", 0.3, 0.45, 10, "active"), ("d", "CRITICAL", 0.5, 0.90, 3, "active"),
                  ("e", "LOW", 0.0, 0.01, 2, "discharged"), ("x", "HIGH", 0.3, 0.41, 20, "active")])
    out = rules.ward_overview(st, REGISTRY, now=NOW)
    # crisis-now CRITICAL (b) has a low model risk but stays among the CRITICAL ones; discharged e hidden
    assert out["patient_id"].tolist() == ["d", "b", "c", "x", "a"]
    assert out.loc[out["patient_id"] == "x", "ward"].item() == "unassigned"  # not in the registry
    assert out.loc[out["patient_id"] == "c", "minutes_since"].item() == 10.0
    assert rules.ward_overview(st, REGISTRY, now=NOW, wards=["w2"])["patient_id"].tolist() == ["d", "c"]
    assert rules.ward_overview(st, REGISTRY, now=NOW, levels=["CRITICAL"])["patient_id"].tolist() == ["d", "b"]
    assert "e" in set(rules.ward_overview(st, REGISTRY, now=NOW, include_discharged=True)["patient_id"])
    assert rules.level_counts(out) == {"CRITICAL": 2, "HIGH": 2, "MEDIUM": 1, "LOW": 0}
    ahead = _status([("f", "LOW", 0.0, 0.0, -5, "active")])  # a device clock ahead of ours
    assert rules.ward_overview(ahead, REGISTRY, now=NOW)["minutes_since"].item() == 0
    assert list(rules.deidentify(out).columns) == [c for c in out.columns if c != "name"]


def test_alert_inbox_states_filters_and_resolutions() -> None:
    t = [NOW - timedelta(minutes=m) for m in (30, 20, 10, 5)]
    alerts = pd.DataFrame({"alert_id": ["a1", "a2", "a3", "a4"], "kind": ["raised", "escalated", "resolved", "raised"],
                           "level": ["MEDIUM", "CRITICAL", "LOW", "HIGH"], "ward": ["w1", "w1", "w1", "w2"],
                           "raised_time": t})
    acks = pd.DataFrame({"alert_id": ["a2"], "ack_user": ["rn"], "ack_note": ["ok"], "ack_time": [NOW]})
    assert rules.alert_inbox(alerts, acks, state="open")["alert_id"].tolist() == ["a4", "a1"]  # newest first
    done = rules.alert_inbox(alerts, acks, state="acknowledged")
    assert done["alert_id"].tolist() == ["a2"] and done["ack_user"].item() == "rn"
    assert rules.alert_inbox(alerts, acks, state="all", kinds_resolved=True)["alert_id"].tolist() == ["a4", "a3", "a2", "a1"]
    assert rules.alert_inbox(alerts, acks, state="all", wards=["w2"])["alert_id"].tolist() == ["a4"]
    assert rules.alert_inbox(alerts, acks, state="all", levels=["CRITICAL"])["alert_id"].tolist() == ["a2"]
    with pytest.raises(ValueError):
        rules.alert_inbox(alerts, acks, state="closed")


def test_vital_trends_use_the_feature_names_and_risk_history_keeps_versions() -> None:
    t0, t1 = NOW, NOW + timedelta(minutes=15)
    vit = pd.DataFrame({"effective_time": [t0, t0, t0, t1, t1], "vital": ["systolic_bp", "diastolic_bp", "body_temperature",
                                                                          "systolic_bp", "diastolic_bp"],
                        "value": [182.0, 121.0, 37.2, 150.0, 95.0]})
    wide = rules.vital_trends(vit)
    expected = pd.DataFrame({"effective_time": [t0, t1], "systolic": [182.0, 150.0], "diastolic": [121.0, 95.0],
                             "temperature": [37.2, None]})
    assert_frame_equal(wide.rename_axis(columns=None), expected, check_dtype=False)
    scores = pd.DataFrame({"effective_time": [t0, t1], "model_name": ["m", "m"], "model_version": ["3", "4"],
                           "level": ["LOW", "HIGH"], "risk_1h": [0.1, 0.3], "risk_6h": [0.2, 0.5]})
    hist = rules.risk_history(scores, [1, 6, 24])
    assert hist[["horizon", "risk", "model_version"]].values.tolist() == [["1h", 0.1, "3"], ["6h", 0.2, "3"],
                                                                          ["1h", 0.3, "4"], ["6h", 0.5, "4"]]
    mv = rules.model_versions(scores)
    assert mv["model_version"].tolist() == ["3", "4"] and mv["readings"].tolist() == [1, 1]


def test_observation_counts_per_patient() -> None:
    vals = pd.DataFrame({"patient_id": ["p1", "p1", "p1", "p2"], "observation_id": ["o1", "o1", "o2", "o3"],
                         "vital": ["systolic_bp", "diastolic_bp", "heart_rate", "spo2"],
                         "effective_time": [NOW, NOW, NOW + timedelta(minutes=5), NOW]})
    out = rules.count_observations(vals)
    assert out["patient_id"].tolist() == ["p1", "p2"] and out["observations"].tolist() == [2, 1]
    assert out.loc[0, "n_systolic_bp"] == 1 and out.loc[0, "n_spo2"] == 0 and out.loc[1, "n_spo2"] == 1
    assert out.loc[0, "last"] == NOW + timedelta(minutes=5)


def test_progress_record_from_a_real_query_and_the_recorder_never_blocks(spark) -> None:
    q = (spark.readStream.format("rate").option("rowsPerSecond", 50).load()
         .groupBy().count().writeStream.format("noop").outputMode("complete").queryName("rate_probe")
         .trigger(processingTime="500 milliseconds").start())
    try:
        import time

        deadline = time.monotonic() + 60
        while not [p for p in q.recentProgress if p.get("numInputRows")] and time.monotonic() < deadline:
            time.sleep(0.5)
        p = next(p for p in reversed(q.recentProgress) if p.get("numInputRows"))
    finally:
        q.stop()
    rec = progress_record(json.loads(json.dumps(p)))
    assert rec["query"] == "rate_probe" and rec["batch_id"] == p["batchId"] and rec["num_input_rows"] > 0
    assert rec["state_rows"] == 1 and rec["kafka_lag"] is None and rec["timestamp"].tzinfo is not None
    kafka = {**p, "sources": [{"description": "KafkaV2[Subscribe[t]]", "metrics": {"maxOffsetsBehindLatest": "12"}},
                              {"description": "KafkaV2[Subscribe[u]]", "metrics": {"maxOffsetsBehindLatest": "3"}}]}
    assert progress_record(kafka)["kafka_lag"] == 12

    def down(_docs):
        raise ConnectionError("mongod unreachable")

    r = ProgressRecorder(down, flush_s=3600)

    class Event:
        class progress:
            json = json.dumps(p)

    r.onQueryProgress(Event())
    r.flush()
    assert r.dropped == 1 and r.written == 0  # lost to monitoring, never raised into the query
    got: list = []
    r.write = got.extend
    r.onQueryProgress(Event())
    r.close()
    assert r.written == 1 and got[0]["query"] == "rate_probe"


def test_passwords_sessions_and_roles() -> None:
    s = Settings()
    h = auth.hash_password("correct horse 1", 4)
    assert h.startswith("$2") and "correct" not in h
    assert auth.check_password("correct horse 1", h) and not auth.check_password("correct horse 2", h)
    assert not auth.check_password("x", "not-a-hash")
    for user, pw, role, why in (("Bad Name", "long-enough-pw", "nurse", "username"),
                                ("ok", "short", "nurse", "at least"),
                                ("ok", "long-enough-pw", "surgeon", "unknown role"),
                                ("longusername", "longusername", "nurse", "must not contain the username"),
                                ("ok", "x" * 80, "nurse", "72 bytes")):
        with pytest.raises(auth.AuthError, match=why):
            auth.validate_new(s, user, pw, role)
    cfg = s.dashboard
    sess = auth.start_session(auth.User("u", "nurse", "U"), now=NOW)
    assert sess.expired(cfg, NOW + timedelta(minutes=cfg.idle_timeout_minutes - 1)) is None
    assert "inactivity" in sess.expired(cfg, NOW + timedelta(minutes=cfg.idle_timeout_minutes))
    sess.touch(NOW + timedelta(minutes=cfg.session_ttl_minutes - 1))
    assert "expired" in sess.expired(cfg, NOW + timedelta(minutes=cfg.session_ttl_minutes))
    assert auth.allowed(s, "nurse", "acknowledge") and not auth.allowed(s, "analyst", "acknowledge")
    assert not auth.allowed(s, "nurse", "model") and auth.allowed(s, "clinician", "model")
    assert auth.allowed(s, "admin", "users") and not auth.allowed(s, "clinician", "users")
    assert not auth.allowed(s, "nobody", "ward")
    assert auth.shows_identifiers(s, "clinician") and not auth.shows_identifiers(s, "analyst")


def test_pipeline_health_puts_degraded_stages_first() -> None:
    """Health records (the supervisor's) beside progress events: a stage failing since a time
    shows that line, on top; a stage with no health record is ok."""
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    from vitalwatch.dashboard.rules import pipeline_health

    now = datetime.now(UTC)
    prog = pd.DataFrame([
        {"query": "gold", "batch_id": 7, "timestamp": now - timedelta(seconds=2), "num_input_rows": 3},
        {"query": "serve_alerts", "batch_id": 4, "timestamp": now - timedelta(minutes=5), "num_input_rows": 1},
        {"kind": "health", "query": "serve_alerts", "timestamp": now - timedelta(minutes=4), "state": "ok",
         "line": "ok: serve_alerts"},
        {"kind": "health", "query": "serve_alerts", "timestamp": now - timedelta(minutes=1), "state": "degraded",
         "line": "degraded: serve_alerts failing since 2026-12-01 10:00:00 UTC: MongoTimeoutError: down"},
    ])
    got = pipeline_health(prog)
    assert got["query"].tolist() == ["serve_alerts", "gold"]
    assert got.loc[0, "health"].startswith("degraded: serve_alerts failing since") and got.loc[0, "batch_id"] == 4
    assert got.loc[1, "health"] == "ok" and got.loc[1, "batch_id"] == 7


def _monitoring_frame() -> pd.DataFrame:
    base = {"readings": 300, "positives": 30, "auprc": 0.4, "ece": 0.03, "psi_max": 0.1,
            "burden_ph_medium": 0.09, "decile_predicted": [0.1, 0.5], "decile_observed": [0.08, 0.55],
            "decile_count": [150, 150]}
    rows = [
        {**base, "day": "2026-12-01", "role": "champion", "model_version": "3", "horizon_h": 6, "auroc": 0.8,
         "breaches": []},
        {**base, "day": "2026-12-02", "role": "champion", "model_version": "3", "horizon_h": 6, "auroc": 0.7,
         "breaches": ["drift: dt_latest PSI 0.60 > 0.25 over 300 readings"]},
        {**base, "day": "2026-12-02", "role": "champion", "model_version": "3", "horizon_h": 24, "auroc": 0.75,
         "breaches": ["drift: dt_latest PSI 0.60 > 0.25 over 300 readings"]},
        {**base, "day": "2026-12-02", "role": "shadow", "model_version": "4", "horizon_h": 6, "auroc": 0.72,
         "burden_ph_medium": float("nan"), "decile_count": [100, 200],
         "breaches": ["calibration: shadow v4 6 h ECE 0.200 > 0.1 over 300 readings"]},
    ]
    return pd.DataFrame(rows).assign(day=lambda d: pd.to_datetime(d["day"]).dt.date)


def test_model_monitoring_views_series_deciles_and_system_alerts() -> None:
    mon = _monitoring_frame()
    series = rules.monitoring_series(mon, 6)
    auroc = series[series["metric"] == "AUROC"]
    assert list(zip(auroc["model"], auroc["value"], strict=True)) == [("champion v3", 0.8), ("champion v3", 0.7),
                                                                      ("shadow v4", 0.72)]
    burden = series[series["metric"].str.contains("patient-hour")]
    assert set(burden["model"]) == {"champion v3"}  # the shadow never alerts: no burden drawn for it
    assert rules.monitoring_series(mon, 1).empty
    dec = rules.latest_deciles(mon, 6)
    assert set(dec["model"]) == {"champion v3", "shadow v4"}
    assert dec[dec["model"] == "shadow v4"]["readings"].tolist() == [100, 200]
    assert (pd.to_datetime(dec["day"]) == pd.Timestamp("2026-12-02")).all()  # the newest day of each model
    assert rules.system_alerts(mon) == ["2026-12-02: drift: dt_latest PSI 0.60 > 0.25 over 300 readings",
                                        "2026-12-02: calibration: shadow v4 6 h ECE 0.200 > 0.1 over 300 readings"]
    assert rules.system_alerts(mon.iloc[:1]) == [] and rules.system_alerts(mon.iloc[0:0]) == []


def test_missing_values_are_shown_as_a_dash_never_none_nan_or_nat() -> None:
    for missing in (None, float("nan"), np.nan, pd.NaT, pd.NA):
        assert rules.shown(missing) == rules.MISSING == "—"
        assert rules.shown(missing, "{:.2f}") == "—"
    assert rules.shown(0.8712, "{:.2f}") == "0.87" and rules.shown(0) == "0" and rules.shown("") == ""
    assert rules.shown(pd.Timestamp("2026-12-02 10:05", tz="UTC"), "{:%Y-%m-%d %H:%M}") == "2026-12-02 10:05"
    assert rules.shown("7", "v{}") == "v7" and rules.shown(["a"]) == "['a']"
    tags = rules.key_values({"trained_on": "synthetic", "rows": 120, "note": None})
    assert tags.to_dict("records") == [{"key": "note", "value": "—"}, {"key": "rows", "value": "120"},
                                       {"key": "trained_on", "value": "synthetic"}]
    assert list(rules.key_values(None).columns) == ["key", "value"] and rules.key_values({}).empty


EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]")


def test_level_marks_need_no_emoji_font() -> None:
    assert set(rules.LEVEL_MARKS) == set(rules.LEVELS) == set(rules.LEVEL_COLOURS)
    assert len(set(rules.LEVEL_MARKS.values())) == len(rules.LEVELS)  # each level its own mark
    for mark in rules.LEVEL_MARKS.values():
        assert not EMOJI.search(mark) and mark.isprintable(), ascii(mark)
