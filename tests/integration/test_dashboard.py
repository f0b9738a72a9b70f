"""The clinicians' dashboard over real gold Delta tables and the real MongoDB: each page's
logic through Streamlit's AppTest, then the served app in headless Debian Chromium driven by
Playwright (screenshots in test-artifacts/dashboard/)."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pymongo
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import ARTIFACTS, ROOT
from vitalwatch.bench.ward import build as build_ward
from vitalwatch.config import Settings
from vitalwatch.dashboard import auth, rules
from vitalwatch.sinks import mongo

pytestmark = pytest.mark.integration
APP = str(ROOT / "dashboards" / "app.py")
PATIENTS = 10_000
SHOTS = ARTIFACTS / "dashboard"
RAW_MISSING = re.compile(r"\b(None|nan|NaN|NaT|<NA>)\b")  # what a page must never print for a missing value
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]")  # needs an emoji font to render
PASSWORDS = {"cli-ada": ("clinician", "ada-secret-123"), "rn-bo": ("nurse", "bo-secret-1234"),
             "an-cy": ("analyst", "cy-secret-1234"), "ad-di": ("admin", "di-secret-1234")}


@pytest.fixture(scope="module")
def ward(spark, trained: Settings, endpoints, tmp_path_factory):
    """A ward of PATIENTS patients in a lake and a MongoDB database of this module's own."""
    d = tmp_path_factory.mktemp("dash")
    s = trained.with_updates(lake={"root": str(d / "lake"), "checkpoint_root": str(d / "chk")},
                     mongo={"database": f"vw_dash_{uuid.uuid4().hex[:8]}"},
                     dashboard={"bcrypt_rounds": 4, "refresh_seconds": 3600})
    mongo.init(s, endpoints.mongo_uri)
    admin = pymongo.MongoClient(endpoints.mongo_uri)[s.mongo.database]
    w = build_ward(spark, s, admin, PATIENTS)
    for user, (role, pw) in PASSWORDS.items():
        assert auth.create_user(admin, s, user, pw, role, user.upper())
    env = {"VITALWATCH__LAKE__ROOT": s.lake.root, "VITALWATCH__LAKE__CHECKPOINT_ROOT": s.lake.checkpoint_root,
           "VITALWATCH__MONGO__DATABASE": s.mongo.database, "VITALWATCH__INFRA__WORK_DIR": s.infra.work_dir,
           "VITALWATCH__MODELS__MLFLOW_DIR": s.models.mlflow_dir, "VITALWATCH__DASHBOARD__BCRYPT_ROUNDS": "4",
           "VITALWATCH__DASHBOARD__REFRESH_SECONDS": "3600"}
    return s, w, admin, env


@pytest.fixture(scope="module")
def monitored(spark, ward):
    """Three days of ``gold/model_monitoring`` as the model_outcomes stage writes them: five days
    ago a heart-rate drift (too old for the health page); yesterday quiet; today a drift of the
    interval between readings; and every day a shadow that under-predicts."""
    from vitalwatch.models import monitoring
    from vitalwatch.pipeline.model_outcomes import ensure_monitoring, merge_monitoring

    s = ward[0]
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 300)
    d = pd.DataFrame({"horizon_h": 6, "model_version": "1", "risk": p, "outcome": (rng.uniform(0, 1, 300) < p).astype(int),
                      "shadow_model_version": "2", "shadow_risk": p * 0.3})
    today = datetime.now(UTC).date()
    rows = []
    for ago, psi in ((5, {"hr_latest": 0.9}), (1, {"sbp_latest": 0.05, "dt_latest": 0.02}),
                     (0, {"sbp_latest": 0.05, "dt_latest": 0.6})):
        rows += [{"day": today - timedelta(days=ago), **r} for r in monitoring.day_rows(
            d, {"burden_ph_medium": 0.1, "warned_medium": 0.6}, psi, 300, "1", s.models.monitoring, 10)]
    ensure_monitoring(spark, s)
    merge_monitoring(spark, s, rows)
    return rows


@pytest.fixture
def app_env(ward, monkeypatch):
    _s, _w, _admin, env = ward
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return ward


def _app(timeout: float = 60) -> AppTest:
    return AppTest.from_file(APP, default_timeout=timeout)


def _login(at: AppTest, user: str, password: str | None = None) -> AppTest:
    at.run()
    at.text_input(key="login_username").input(user)
    at.text_input(key="login_password").input(password if password is not None else PASSWORDS[user][1])
    at.button[0].click()
    return at.run()


def _frame(d) -> pd.DataFrame:
    v = d.value
    return v.data if hasattr(v, "data") else v


def _shows_no_raw_missing(at: AppTest) -> None:
    """Missing values read "—": every table draws them with that placeholder (not Streamlit's
    "None"), and no metric, caption or text cell spells out None/nan/NaT."""
    for m in at.metric:
        assert not RAW_MISSING.search(str(m.value)), (m.label, m.value)
    for c in at.caption:
        assert not RAW_MISSING.search(str(c.value)), c.value
    for d in at.dataframe:
        assert d.proto.placeholder == rules.MISSING, ("a table without the placeholder", list(_frame(d).columns))
        frame = _frame(d)
        for col in frame.select_dtypes(include="object"):
            texts = frame[col].dropna().map(str)
            assert not texts.str.fullmatch(RAW_MISSING.pattern).any(), (col, texts[texts.str.fullmatch(
                RAW_MISSING.pattern)].head().tolist())


def _texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "info", "error", "title", "subheader", "success")
                    for e in getattr(at, kind))


# -- AppTest: each page's logic -------------------------------------------------------------
def test_nothing_is_readable_before_login_and_a_bad_password_is_refused(app_env) -> None:
    at = _app()
    at.run()
    assert [t.value for t in at.title] == ["vitalwatch"] and not at.dataframe
    at = _login(_app(), "cli-ada", "wrong-password!")
    assert [e.value for e in at.error] == ["Invalid username or password."], (at.exception, _texts(at), at.button)
    assert not at.dataframe and "vw_session" not in at.session_state
    at = _login(_app(), "nobody", "whatever-1234")
    assert [e.value for e in at.error] == ["Invalid username or password."]


def test_ward_overview_lists_the_highest_risk_patient_first(app_env) -> None:
    _s, w, _admin, _env = app_env
    at = _login(_app(), "cli-ada")
    assert not at.exception, at.exception
    assert at.title[0].value == "Ward overview"
    table = at.dataframe[0].value
    frame = table.data if hasattr(table, "data") else table
    assert len(frame) == PATIENTS  # every patient in the table (the UI scrolls it)
    assert frame.iloc[0]["patient_id"] == w.top and frame.iloc[0]["level"] == "CRITICAL"
    assert frame["risk_6h"].iloc[:50].is_monotonic_decreasing or frame.iloc[0]["risk_6h"] >= frame["risk_6h"].max()
    assert "name" in frame.columns  # clinicians see identifiers
    _shows_no_raw_missing(at)
    marks = frame[["mark", "level"]].astype(str)
    assert not marks.apply(lambda c: c.str.contains(EMOJI)).any().any(), "level marks that need an emoji font"
    assert frame.iloc[0]["mark"] == rules.LEVEL_MARKS["CRITICAL"]
    # filters are kept across reruns (auto-refresh reruns the same way)
    at.multiselect(key="level_filter").select("CRITICAL").run()
    f2 = at.dataframe[0].value
    f2 = f2.data if hasattr(f2, "data") else f2
    assert set(f2["level"]) == {"CRITICAL"} and f2.iloc[0]["patient_id"] == w.top
    at.run()
    assert at.multiselect(key="level_filter").value == ["CRITICAL"]


def test_analyst_sees_no_identifiers_and_cannot_acknowledge(app_env) -> None:
    at = _login(_app(), "an-cy")
    frame = at.dataframe[0].value
    frame = frame.data if hasattr(frame, "data") else frame
    assert "name" not in frame.columns and "mrn" not in frame.columns
    at.switch_page("views/alerts.py").run()
    assert not at.exception, at.exception
    assert "can read alerts but not acknowledge" in _texts(at)
    _shows_no_raw_missing(at)
    assert not [b for b in at.button if b.label == "Acknowledge"]


def test_clinician_acknowledges_with_a_note_and_it_is_recorded(app_env) -> None:
    _s, w, admin, _env = app_env
    at = _login(_app(), "cli-ada")
    at.switch_page("views/alerts.py").run()
    assert not at.exception, at.exception
    alert_id = w.alert_ids[-1]
    at.selectbox(key="ack_alert").select(alert_id)
    at.text_input(key="ack_note").input("BP rechecked 182/121, physician informed")
    next(b for b in at.button if b.label == "Acknowledge").click()
    at.run()
    ack = admin.alert_acks.find_one({"_id": alert_id})
    assert ack["user"] == "cli-ada" and ack["note"].startswith("BP rechecked")
    assert abs((datetime.now(UTC) - ack["acknowledged_time"].replace(tzinfo=UTC)).total_seconds()) < 60
    at.radio(key="inbox_state").set_value("acknowledged").run()
    f = at.dataframe[0].value
    f = f.data if hasattr(f, "data") else f
    assert alert_id in set(f["alert_id"]) and set(f["ack_user"]) >= {"cli-ada"}


def test_patient_page_shows_trends_thresholds_risk_and_model_version(app_env) -> None:
    _s, w, _admin, _env = app_env
    at = _login(_app(), "cli-ada")
    at.session_state["patient"] = w.featured[0]
    at.switch_page("views/patient.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="patient").value == w.featured[0]
    _shows_no_raw_missing(at)
    assert at.metric and all(len(str(m.value)) <= 10 for m in at.metric), [(m.label, m.value) for m in at.metric]
    assert {"Blood pressure", "Risk of a hypertensive crisis", "Alerts"} <= {h.value for h in at.subheader}
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3, ("BP, other vitals and risk charts", _texts(at))
    bp = charts[0].proto.spec + repr(charts[0].proto.datasets) + repr(charts[0].proto.data)
    assert "strokeDash" in bp and "crisis systolic" in bp and "crisis diastolic" in bp  # threshold rules drawn
    versions = next(d.value for d in at.dataframe if "model_version" in getattr(d.value, "columns", []))
    assert list(versions["model_version"]) == ["7"] and versions["readings"].iloc[0] > 10


def test_roles_decide_the_pages_and_the_model_page_reads_mlflow(app_env, monitored) -> None:
    s, _w, _admin, _env = app_env
    at = _login(_app(), "rn-bo")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/model.py")  # not in a nurse's navigation
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/users.py")
    at = _login(_app(), "cli-ada")
    at.switch_page("views/model.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Model"
    # the version in the metric (short, never cut off), the model's name in the caption under it
    champion = next(m.value for m in at.metric if m.label == "Champion")
    assert re.fullmatch(r"v\d+", champion), champion
    assert any(c.value.startswith(f"Model {s.models.risk_model_name} · registered ") for c in at.caption), _texts(at)
    assert all(len(str(m.value)) <= 10 for m in at.metric), [(m.label, m.value) for m in at.metric]
    assert not at.json, "the model page shows tags as a table, not a raw JSON widget"
    _shows_no_raw_missing(at)
    assert at.dataframe and at.image, "metric table and calibration plot"
    # live monitoring over time, the shadow beside the champion
    assert "Live, on delayed outcomes" in {h.value for h in at.subheader}
    charts = [c.proto.spec + repr(c.proto.datasets) for c in at.get("vega_lite_chart")]
    for title in ("AUROC", "calibration error (ECE)", "largest drift (PSI)", "per patient-hour"):
        assert any(title in c for c in charts), title
    assert any("shadow v2" in c and "champion v1" in c for c in charts)
    deciles = next(f.value for f in at.dataframe if "decile" in getattr(f.value, "columns", []))
    assert set(deciles["model"]) == {"champion v1", "shadow v2"} and deciles["readings"].sum() == 600


def test_admin_sees_the_users_page_without_hashes(app_env) -> None:
    at = _login(_app(), "ad-di")
    at.switch_page("views/users.py").run()
    assert not at.exception, at.exception
    users = at.dataframe[0].value
    users = users.data if hasattr(users, "data") else users
    assert set(PASSWORDS) <= set(users["_id"]) and "password_hash" not in users.columns
    _shows_no_raw_missing(at)
    at = _login(_app(), "cli-ada")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/users.py")


def test_patients_observations_prints_counts_per_patient(app_env) -> None:
    import subprocess

    s, w, _admin, env = app_env
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "vitalwatch"), "patients", "observations", "--patient",
                          w.featured[0], "--patient", w.featured[1]], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    from vitalwatch.dashboard.data import observation_counts

    counts, _q = observation_counts(s, w.featured[:2])
    assert set(counts["patient_id"]) == set(w.featured[:2]) and (counts["observations"] > 10).all()
    for r in counts.itertuples():
        assert r.patient_id in out.stdout and str(r.observations) in out.stdout
    assert "2 patients" in out.stdout and "silver/quarantine" in out.stdout + out.stderr
    missing = subprocess.run([str(ROOT / ".venv" / "bin" / "vitalwatch"), "patients", "observations", "--patient",
                              "no-such-patient"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "no observation" in missing.stdout + missing.stderr


def test_pipeline_health_shows_recorded_progress_and_model_system_alerts(app_env, monitored) -> None:
    _s, _w, admin, _env = app_env
    from vitalwatch.pipeline.monitor import progress_record

    now = datetime.now(UTC)
    for i in range(3):
        admin.pipeline_progress.insert_one(progress_record({
            "name": "gold", "runId": "r", "batchId": i, "timestamp": (now - timedelta(seconds=10 - i)).isoformat(),
            "numInputRows": 10 * i, "inputRowsPerSecond": 5.0 * i, "processedRowsPerSecond": 20.0 * i,
            "batchDuration": 400 + i, "stateOperators": [{"numRowsTotal": 8, "memoryUsedBytes": 100}],
            "sources": [{"description": "KafkaV2[Subscribe[vitals.observations]]",
                         "metrics": {"maxOffsetsBehindLatest": str(7 - i)}}]}))
    at = _login(_app(), "rn-bo")
    at.switch_page("views/health.py").run()
    assert not at.exception, at.exception
    f = at.dataframe[0].value
    f = f.data if hasattr(f, "data") else f
    row = f[f["query"] == "gold"].iloc[0]
    assert row["batch_id"] == 2 and row["kafka_lag"] == 5 and row["state_rows"] == 8 and row["batch_duration_ms"] == 402
    _shows_no_raw_missing(at)
    # the model's breaches are system alerts here (today's drift; the shadow's calibration), once each
    alerts = [e.value for e in at.error if e.value.startswith("System alert")]
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert any(f"{today}: drift: dt_latest PSI 0.60" in a for a in alerts), alerts
    assert any("calibration: shadow v2 6 h ECE" in a for a in alerts), alerts
    assert not any("sbp_latest" in a or "hr_latest" in a for a in alerts) and len(alerts) == len(set(alerts)) == 3


def test_a_session_expires(app_env, monkeypatch) -> None:
    at = _login(_app(), "cli-ada")
    sess = at.session_state["vw_session"]
    sess.login_time -= timedelta(days=1)
    at.run()
    assert at.title[0].value == "vitalwatch" and "expired" in _texts(at) and not at.dataframe


def test_every_view_of_patient_data_is_in_the_audit_trail(app_env) -> None:
    _s, w, admin, _env = app_env
    since = datetime.now(UTC)
    at = _login(_app(), "rn-bo")
    at.session_state["patient"] = w.featured[0]
    at.switch_page("views/patient.py").run()
    assert not at.exception, at.exception
    views = list(admin.audit.find({"user": "rn-bo", "what": "view", "time": {"$gte": since}}).sort("time", 1))
    ward = next((v for v in views if v["page"] == "ward"), None)
    assert ward is not None, ([(v["page"], v["patient_count"]) for v in views], list(admin.audit.find({}, {"_id": 0, "patients": 0}).sort("time", -1).limit(8)))
    assert ward["role"] == "nurse" and ward["patient_count"] == PATIENTS and len(ward["patients"]) == 500
    assert any(v["page"] == "patient" and v["patients"] == [w.featured[0]] for v in views)
    assert admin.audit.count_documents({"user": "rn-bo", "what": "sign_in", "time": {"$gte": since}}) == 1
    at.run()  # the same view again (an auto-refresh, a rerun) is not a new record
    assert admin.audit.count_documents({"user": "rn-bo", "what": "view", "time": {"$gte": since}}) == len(views)
    at = _login(_app(), "ad-di")
    at.switch_page("views/audit.py").run()
    assert not at.exception, at.exception
    trail = at.dataframe[0].value
    trail = trail.data if hasattr(trail, "data") else trail
    assert {"rn-bo"} <= set(trail["user"]) and {"view", "sign_in"} <= set(trail["what"])
    _shows_no_raw_missing(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        _login(_app(), "cli-ada").switch_page("views/audit.py")  # admins only


def test_deactivating_a_user_ends_their_session(app_env) -> None:
    _s, _w, admin, _env = app_env
    at = _login(_app(), "an-cy")
    assert at.title[0].value == "Ward overview"
    auth.set_active(admin, "an-cy", False)
    try:
        at.run()
        assert at.title[0].value == "vitalwatch" and "no longer active" in _texts(at) and not at.dataframe
        assert "vw_session" not in at.session_state
    finally:
        auth.set_active(admin, "an-cy", True)


def test_users_command_creates_hashes_and_refuses_weak_passwords(app_env) -> None:
    s, _w, admin, env = app_env
    import subprocess

    cli = [str(ROOT / ".venv" / "bin" / "vitalwatch"), "users", "create"]
    run_env = {**os.environ, **env, "VITALWATCH__INFRA__WORK_DIR": s.infra.work_dir}
    ok = subprocess.run([*cli, "rn-eve", "--role", "nurse", "--password-stdin"], input="eve-secret-12345\n",
                        text=True, capture_output=True, env=run_env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    doc = admin.dashboard_users.find_one({"_id": "rn-eve"})
    assert doc["role"] == "nurse" and doc["password_hash"].startswith("$2") and "eve-secret" not in str(doc)
    assert auth.authenticate(admin, s, "rn-eve", "eve-secret-12345").role == "nurse"
    weak = subprocess.run([*cli, "rn-fay", "--role", "nurse", "--password-stdin"], input="short\n", text=True,
                          capture_output=True, env=run_env, timeout=120)
    assert weak.returncode == 2 and "at least" in weak.stdout + weak.stderr
    assert admin.dashboard_users.count_documents({"_id": "rn-fay"}) == 0


def test_alerts_ack_command_signs_the_user_in_and_records_them(app_env) -> None:
    _s, w, admin, env = app_env
    import subprocess

    cli = [str(ROOT / ".venv" / "bin" / "vitalwatch"), "alerts", "ack"]
    run_env = {**os.environ, **env}
    target = next(a for a in reversed(w.alert_ids) if admin.alert_acks.count_documents({"_id": a}) == 0)
    bad = subprocess.run([*cli, target, "--user", "rn-bo", "--password-stdin"], input="not-her-password\n",
                         text=True, capture_output=True, env=run_env, timeout=120)
    assert bad.returncode == 1 and "invalid username or password" in bad.stdout + bad.stderr
    analyst = subprocess.run([*cli, target, "--user", "an-cy", "--password-stdin"], input=PASSWORDS["an-cy"][1] + "\n",
                             text=True, capture_output=True, env=run_env, timeout=120)
    assert analyst.returncode == 1 and "may not acknowledge" in analyst.stdout + analyst.stderr
    assert admin.alert_acks.count_documents({"_id": target}) == 0
    ok = subprocess.run([*cli, target, "--user", "rn-bo", "--note", "seen at the bedside", "--password-stdin"],
                        input=PASSWORDS["rn-bo"][1] + "\n", text=True, capture_output=True, env=run_env, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ack = admin.alert_acks.find_one({"_id": target})
    assert (ack["user"], ack["role"], ack["note"]) == ("rn-bo", "nurse", "seen at the bedside")
    assert admin.audit.count_documents({"what": "acknowledge", "user": "rn-bo", "detail.alert_id": target,
                                        "source": "cli"}) == 1


# -- the served app in a real browser ------------------------------------------------------
@pytest.fixture(scope="module")
def served(ward):
    from vitalwatch.dashboard.launch import start, stop

    s, _w, _admin, env = ward
    port = _free_port()
    proc = start(s, port=port, env=env, log=ARTIFACTS / "dashboard-server.log", timeout_s=120)
    yield f"http://127.0.0.1:{port}", ward
    stop(proc)


def test_dashboard_is_served_over_tls_from_the_local_ca_when_configured(ward) -> None:
    """dashboard.tls: HTTPS with the local CA's `dashboard` certificate — trusted with the CA,
    refused by a client that does not know it, and no plain HTTP on the port."""
    import requests

    from vitalwatch.dashboard.launch import ca_file, start, stop, url

    s, _w, _admin, env = ward
    st = s.with_updates(dashboard={"tls": True})
    port = _free_port()
    proc = start(st, port=port, env=env, log=ARTIFACTS / "dashboard-tls-server.log", timeout_s=120)
    try:
        base = url(st, port)
        assert base.startswith("https://")
        assert requests.get(f"{base}/_stcore/health", verify=str(ca_file(st)), timeout=10).ok
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}/_stcore/health", timeout=10)  # the system's CAs do not vouch for it
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=10)
    finally:
        stop(proc)


def _free_port() -> int:
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "Debian chromium missing: `make browser-deps` installs it"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _page(browser, url: str):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    return page


def _browser_login(page, user: str, password: str) -> None:
    page.get_by_role("textbox", name="Username").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _open(page, title: str) -> None:
    """Open a page from the sidebar navigation, as a user does."""
    page.get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_browser_refuses_a_bad_password_and_admits_a_good_one(served, browser) -> None:
    url, (_s, _w, _admin, _env) = served
    page = _page(browser, url)
    _browser_login(page, "cli-ada", "not-the-password")
    page.get_by_text("Invalid username or password.").wait_for()
    assert page.get_by_text("Ward overview").count() == 0
    _shot(page, "01-login-refused")
    page.get_by_role("textbox", name="Password").fill(PASSWORDS["cli-ada"][1])
    t0 = time.perf_counter()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Ward overview").wait_for()
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    page.get_by_text(f"{PATIENTS} patients in gold/patient_status").wait_for()
    loaded = time.perf_counter() - t0
    print(f"\nward overview with {PATIENTS} patients: sign-in click → table and counts shown in {loaded:.2f} s")
    _shot(page, "02-ward-overview")
    page.context.close()


def test_browser_lists_the_highest_risk_patient_first(served, browser) -> None:
    url, (_s, w, _admin, _env) = served
    page = _page(browser, url)
    _browser_login(page, "cli-ada", PASSWORDS["cli-ada"][1])
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.wait_for()
    page.get_by_text(f"{PATIENTS} patients in gold/patient_status").wait_for()
    # the grid draws on a canvas; its accessibility table carries the cells (row 1 is the header)
    first = grid.locator("tr[aria-rowindex='2']")
    first.wait_for(state="attached")
    assert w.top in first.text_content(), first.text_content()[:300]
    _shot(page, "03-highest-risk-first")
    page.context.close()


def test_browser_acknowledgement_persists_across_reloads(served, browser) -> None:
    url, (_s, w, admin, _env) = served
    page = _page(browser, url)
    _browser_login(page, "rn-bo", PASSWORDS["rn-bo"][1])
    _open(page, "Alert inbox")
    target = next(a for a in w.alert_ids if admin.alert_acks.count_documents({"_id": a}) == 0)
    page.get_by_label("Open alert").click()
    page.get_by_role("option", name=target[:10], exact=False).first.click()
    page.get_by_label("Note").fill("seen at bedside")
    page.get_by_role("button", name="Acknowledge").click()
    deadline = time.monotonic() + 30
    while admin.alert_acks.count_documents({"_id": target}) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert admin.alert_acks.find_one({"_id": target})["user"] == "rn-bo"
    page.reload()
    _browser_login(page, "rn-bo", PASSWORDS["rn-bo"][1])  # a reload is a new session: sign in again
    _open(page, "Alert inbox")
    page.get_by_text("acknowledged", exact=True).click()
    page.locator("[data-testid='stDataFrame'] td", has_text=target).first.wait_for(state="attached")
    _shot(page, "04-acknowledged-after-reload")
    page.context.close()


def test_browser_analyst_cannot_acknowledge(served, browser) -> None:
    url, _ward = served
    page = _page(browser, url)
    _browser_login(page, "an-cy", PASSWORDS["an-cy"][1])
    _open(page, "Alert inbox")
    page.get_by_text("can read alerts but not acknowledge them").wait_for()
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    _shot(page, "05-analyst-inbox")
    page.context.close()


# every page as the admin (who may open all of them): what is on screen, and a screenshot of each
PAGES = {"ward": ("Ward overview", "text=patients in gold/patient_status"),
         "patient": ("Patient", "role=heading[name='Alerts']"),
         "alerts": ("Alert inbox", "role=heading[name='Acknowledge']"),
         "model": ("Model", "role=heading[name='Live, on delayed outcomes']"),
         "health": ("Pipeline health", "[data-testid='stDataFrame'], [data-testid='stAlert']"),
         "users": ("Users", "[data-testid='stCode']"),
         "audit": ("Audit trail", "[data-testid='stDataFrame']")}
TRUNCATED = """() => [...document.querySelectorAll("[data-testid='stMetricValue'], [data-testid='stMetricValue'] *")]
    .filter(e => getComputedStyle(e).display !== "inline" && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.textContent)"""


def test_browser_every_page_shows_whole_values_no_none_no_emoji(served, browser, monitored) -> None:
    url, _ward = served
    page = _page(browser, url)
    _browser_login(page, "ad-di", PASSWORDS["ad-di"][1])
    page.get_by_role("heading", name="Ward overview", exact=True).wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, (title, ready) in PAGES.items():
        if name != "ward":
            _open(page, title)
        page.locator(ready).first.wait_for()
        page.wait_for_timeout(1500)  # charts and grids draw after the element appears
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
        main = page.locator("[data-testid='stMain']").inner_text()
        cells = page.locator("[data-testid='stDataFrame'] td").all_text_contents()
        assert not page.evaluate(TRUNCATED), (name, "metric values cut off", page.evaluate(TRUNCATED))
        if name in ("ward", "patient", "model"):
            assert page.locator("[data-testid='stMetricValue']").count() >= 3, name
        assert not [c for c in cells if RAW_MISSING.fullmatch(c.strip())], (name, "a cell shows None/nan/NaT")
        assert not RAW_MISSING.search(main), (name, RAW_MISSING.search(main))
        assert not EMOJI.search(main + " ".join(cells)), (name, "text that needs an emoji font",
                                                         EMOJI.findall(main + " ".join(cells)))
        assert page.locator("[data-testid='stJson']").count() == 0, (name, "a raw JSON widget")
        if name == "ward":
            assert any(rules.LEVEL_MARKS["CRITICAL"] in c for c in cells), cells[:20]
    page.context.close()
    for name in PAGES:
        shot = ARTIFACTS / f"dashboard-{name}.png"
        assert shot.is_file() and shot.stat().st_size > 10_000, shot
