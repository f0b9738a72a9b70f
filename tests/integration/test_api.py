"""The REST and FHIR API served by uvicorn on localhost (HTTPS, the local CA) over real gold
and silver Delta tables and the real MongoDB: authentication, roles, pseudonyms, pages,
conditional requests, acknowledgements, the audit trail, FHIR validity (fhir.resources), and
schemathesis against the OpenAPI schema."""

from __future__ import annotations

import json
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pymongo
import pytest

from vitalwatch.api import server, tokens
from vitalwatch.bench.ward import build
from vitalwatch.config import Settings
from vitalwatch.dashboard import auth
from vitalwatch.sinks import mongo

pytestmark = pytest.mark.integration
PATIENTS = 300
USERS = {"cli-ada": ("clinician", "ada-secret-123"), "rn-bo": ("nurse", "bo-secret-1234"),
         "an-cy": ("analyst", "cy-secret-1234"), "ad-di": ("admin", "di-secret-1234"),
         "cli-gone": ("clinician", "gone-secret-123"), "cli-locked": ("clinician", "locked-secret-12")}
IDENTIFYING = ("name", "mrn", "birth_date", "device_id")
PATIENT_READS = ["/api/v1/patients", "/api/v1/patients/{p}", "/api/v1/patients/{p}/status",
                 "/api/v1/patients/{p}/observations", "/api/v1/patients/{p}/risk-scores",
                 "/api/v1/alerts", "/fhir/RiskAssessment?subject=Patient/{p}", "/fhir/Flag?patient={p}"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def api(spark, trained: Settings, endpoints, tmp_path_factory):
    """A ward in a lake and database of this module's own, and the API serving it."""
    d = tmp_path_factory.mktemp("api")
    s = trained.with_updates(lake={"root": str(d / "lake"), "checkpoint_root": str(d / "chk")},
                     mongo={"database": f"vw_api_{uuid.uuid4().hex[:8]}"}, dashboard={"bcrypt_rounds": 4},
                     api={"port": _free_port()})
    mongo.init(s, endpoints.mongo_uri)
    admin = pymongo.MongoClient(endpoints.mongo_uri, tz_aware=True)[s.mongo.database]
    ward = build(spark, s, admin, PATIENTS)
    for user, (role, pw) in USERS.items():
        assert auth.create_user(admin, s, user, pw, role, user.upper())
    env = {"VITALWATCH__LAKE__ROOT": s.lake.root, "VITALWATCH__LAKE__CHECKPOINT_ROOT": s.lake.checkpoint_root,
           "VITALWATCH__MONGO__DATABASE": s.mongo.database, "VITALWATCH__INFRA__WORK_DIR": s.infra.work_dir,
           "VITALWATCH__MODELS__MLFLOW_DIR": s.models.mlflow_dir, "VITALWATCH__DASHBOARD__BCRYPT_ROUNDS": "4",
           "VITALWATCH__API__PORT": str(s.api.port)}
    log = d / "uvicorn.log"
    proc = server.start(s, env=env, log=log)
    try:
        yield s, ward, admin
    finally:
        server.stop(proc)
        admin.client.drop_database(s.mongo.database)


def _client(s: Settings) -> httpx.Client:
    return httpx.Client(base_url=server.url(s), verify=str(server.ca_file(s)), timeout=30)


def _sign_in(s: Settings, user: str, password: str | None = None) -> httpx.Response:
    with _client(s) as c:
        return c.post("/api/v1/token", data={"username": user, "password": password or USERS[user][1]})


def _as(s: Settings, user: str) -> httpx.Client:
    r = _sign_in(s, user)
    assert r.status_code == 200, r.text
    c = _client(s)
    c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return c


def _problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# -- authentication ---------------------------------------------------------------------------
def test_openapi_and_docs_are_served_over_tls(api) -> None:
    s, _, _ = api
    with _client(s) as c:
        spec = c.get("/api/v1/openapi.json").json()
        assert c.get("/api/v1/docs").status_code == 200
    assert {"/api/v1/patients", "/api/v1/alerts/{alert_id}/acknowledge", "/fhir/RiskAssessment",
            "/fhir/Flag", "/api/v1/model", "/api/v1/health"} <= set(spec["paths"])
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port is not served
        httpx.get(server.url(s).replace("https", "http") + "/api/v1/openapi.json", timeout=5).raise_for_status()


@pytest.mark.parametrize("path", [*PATIENT_READS, "/api/v1/model", "/api/v1/health", "/api/v1/alerts/x"])
def test_no_token_is_refused(api, path: str) -> None:
    s, ward, _ = api
    with _client(s) as c:
        r = c.get(path.format(p=ward.top))
    if path.startswith("/fhir"):
        assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"
    else:
        _problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_sign_in_issues_a_short_lived_token_for_the_users_role(api) -> None:
    s, _, _ = api
    _problem(_sign_in(s, "cli-ada", "not-the-password"), 401)
    _problem(_sign_in(s, "nobody-here", "whatever-password"), 401)
    r = _sign_in(s, "rn-bo")
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "bearer" and body["role"] == "nurse"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "rn-bo" and claims["role"] == "nurse"
    assert claims["exp"] - claims["iat"] == body["expires_in"] == int(s.api.token_minutes * 60)


def test_expired_tampered_and_foreign_tokens_are_refused(api) -> None:
    s, _, _ = api
    key = tokens.signing_key(s)
    good, _ = tokens.issue(key, s.api, "cli-ada", "clinician")
    expired, _ = tokens.issue(key, s.api, "cli-ada", "clinician", now=datetime.now(UTC) - timedelta(hours=2))
    head, payload, sig = good.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    forged_payload = jwt.utils.base64url_encode(json.dumps({**claims, "role": "admin"}).encode()).decode()
    tampered = f"{head}.{forged_payload}.{sig}"
    foreign = jwt.encode({**claims}, "another-key-of-at-least-32-bytes-long!!", algorithm="HS256")
    unsigned = jwt.encode({**claims}, None, algorithm="none")
    with _client(s) as c:
        assert c.get("/api/v1/patients", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        for bad, why in ((expired, "expired"), (tampered, "not valid"), (foreign, "not valid"),
                         (unsigned, "not valid"), ("garbage", "not valid")):
            r = c.get("/api/v1/patients", headers={"Authorization": f"Bearer {bad}"})
            assert why in _problem(r, 401)["detail"]
            assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_a_deactivated_user_is_refused_at_the_next_request(api) -> None:
    s, _, admin = api
    c = _as(s, "cli-gone")
    assert c.get("/api/v1/patients").status_code == 200
    assert auth.set_active(admin, "cli-gone", False)
    _problem(c.get("/api/v1/patients"), 401)
    _problem(_sign_in(s, "cli-gone"), 401)
    time.sleep(1.1)
    assert auth.set_active(admin, "cli-gone", True)   # reactivated: a token from before stays refused
    assert "sign in again" in _problem(c.get("/api/v1/patients"), 401)["detail"]
    assert _sign_in(s, "cli-gone").status_code == 200


def test_sign_in_is_throttled_after_repeated_failures(api) -> None:
    s, _, _ = api
    codes = [_sign_in(s, "cli-locked", "wrong-password-x").status_code for _ in range(s.dashboard.sign_in.free_failures_per_user + 1)]
    assert codes[:-1] == [401] * s.dashboard.sign_in.free_failures_per_user
    r = _sign_in(s, "cli-locked")  # even the right password, while locked
    _problem(r, 429)
    assert int(r.headers["retry-after"]) >= 1


# -- roles ------------------------------------------------------------------------------------
def test_roles_are_enforced_server_side(api) -> None:
    s, _, _ = api
    with _as(s, "rn-bo") as nurse:
        assert nurse.get("/api/v1/alerts").status_code == 200
        _problem(nurse.get("/api/v1/model"), 403)          # nurses have no model page
    with _as(s, "an-cy") as analyst:
        alert = analyst.get("/api/v1/alerts").json()["items"][0]["alert_id"]
        _problem(analyst.post(f"/api/v1/alerts/{alert}/acknowledge", json={}), 403)
    with _as(s, "cli-ada") as clinician:
        assert clinician.get("/api/v1/model").status_code == 200


def test_the_analyst_never_sees_an_identifier(api) -> None:
    s, ward, admin = api
    reg = list(admin.patients.find({}))
    secrets = {str(d[k]) for d in reg for k in IDENTIFYING if d.get(k)} | {d["_id"] for d in reg}
    secrets |= {d["_id"] for d in admin.alerts.find({}, {"_id": 1})}
    with _as(s, "an-cy") as a:
        first = a.get("/api/v1/patients", params={"limit": 1000}).json()
        assert first["total"] == PATIENTS
        pseudo = {it["patient_id"] for it in first["items"]}
        assert all(p.startswith("anon-") for p in pseudo) and len(pseudo) == PATIENTS
        featured = next(it["patient_id"] for it in first["items"]
                        if a.get(f"/api/v1/patients/{it['patient_id']}/observations").json()["total"] > 0)
        bodies = [json.dumps(first)]
        for path in PATIENT_READS[1:]:
            r = a.get(path.format(p=featured))
            assert r.status_code == 200, (path, r.text)
            bodies.append(r.text)
        alert = a.get("/api/v1/alerts").json()["items"][0]["alert_id"]
        assert alert.startswith("anon-")
        bodies.append(a.get(f"/api/v1/alerts/{alert}").text)
        _problem(a.get(f"/api/v1/patients/{ward.top}"), 404)   # a real id does not open a record
        assert a.get("/fhir/Flag", params={"patient": ward.top}).json()["total"] == 0  # a real id: nobody
        h = a.get("/api/v1/health").json()
        assert all(st["health"] in ("ok", "degraded") for st in h["stages"])  # no error text
    text = "\n".join(bodies)
    leaked = sorted(x for x in secrets if x in text)
    assert not leaked, f"the analyst saw identifiers: {leaked[:5]}"
    for body in bodies:
        for key in (*IDENTIFYING, "observation_id", "acknowledged_by", "acknowledgement_note"):
            assert f'"{key}"' not in body


# -- reads ------------------------------------------------------------------------------------
def test_patients_highest_risk_first_filtered_and_paged(api) -> None:
    s, ward, _ = api
    with _as(s, "cli-ada") as c:
        r = c.get("/api/v1/patients", params={"limit": 40})
        body = r.json()
        assert body["total"] == PATIENTS and body["items"][0]["patient_id"] == ward.top
        assert body["items"][0]["name"] and body["items"][0]["mrn"]
        assert 'rel="next"' in r.headers["link"]
        seen, cursor = [], None
        while True:
            page = c.get("/api/v1/patients", params={"limit": 40, **({"cursor": cursor} if cursor else {})}).json()
            seen += [it["patient_id"] for it in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert len(seen) == len(set(seen)) == PATIENTS
        _problem(c.get("/api/v1/patients", params={"cursor": "not-a-cursor"}), 400)
        # a cursor replayed with other filters is refused, not silently applied
        cur = c.get("/api/v1/patients", params={"limit": 5}).json()["next_cursor"]
        _problem(c.get("/api/v1/patients", params={"limit": 5, "cursor": cur, "level": "HIGH"}), 400)
        ward_name = ward.wards[0]
        in_ward = c.get("/api/v1/patients", params={"ward": ward_name, "limit": 1000}).json()
        assert in_ward["items"] and {it["ward"] for it in in_ward["items"]} == {ward_name}
        crit = c.get("/api/v1/patients", params={"level": "CRITICAL", "limit": 1000}).json()
        assert crit["items"] and {it["level"] for it in crit["items"]} == {"CRITICAL"}
        _problem(c.get("/api/v1/patients", params={"level": "SEVERE"}), 422)
        _problem(c.get("/api/v1/patients", params={"limit": s.api.max_page_size + 1}), 400)


def test_etag_and_last_modified_follow_the_table_versions(api) -> None:
    s, _, _ = api
    with _as(s, "cli-ada") as c:
        r = c.get("/api/v1/patients")
        etag = r.headers["etag"]
        assert etag.startswith('W/"v') and r.headers["last-modified"].endswith("GMT")
        again = c.get("/api/v1/patients", headers={"If-None-Match": etag})
        assert again.status_code == 304 and not again.content
        other = c.get("/api/v1/patients", params={"limit": 3})
        assert other.headers["etag"] != etag
        assert c.get("/api/v1/patients", params={"limit": 3}, headers={"If-None-Match": etag}).status_code == 200


def test_one_patient_their_observations_scores_and_status(api) -> None:
    s, ward, _ = api
    pid = ward.featured[0]
    with _as(s, "cli-ada") as c:
        p = c.get(f"/api/v1/patients/{pid}").json()
        assert p["patient_id"] == pid and p["name"] and p["device_id"] and p["open_alerts"] >= 1
        obs = c.get(f"/api/v1/patients/{pid}/observations", params={"limit": 1000}).json()
        times = [o["effective_time"] for o in obs["items"]]
        assert obs["total"] > 10 and times == sorted(times)
        assert {o["vital"] for o in obs["items"]} >= {"systolic_bp", "diastolic_bp"}
        # paged with the default window (which ends "now"): the first page's window holds for the rest
        paged, cursor = [], None
        while True:
            pg = c.get(f"/api/v1/patients/{pid}/observations",
                       params={"limit": 25, **({"cursor": cursor} if cursor else {})})
            assert pg.status_code == 200, pg.text
            paged += [(o["effective_time"], o["vital"], o["observation_id"]) for o in pg.json()["items"]]
            if not (cursor := pg.json()["next_cursor"]):
                break
            time.sleep(0.01)
        assert len(paged) == len(set(paged)) == obs["total"]
        sbp = c.get(f"/api/v1/patients/{pid}/observations", params={"vital": "systolic_bp", "limit": 1000}).json()
        assert sbp["total"] > 0 and {o["vital"] for o in sbp["items"]} == {"systolic_bp"}
        since = times[len(times) // 2]
        later = c.get(f"/api/v1/patients/{pid}/observations", params={"since": since, "limit": 1000}).json()
        assert 0 < later["total"] < obs["total"] and min(o["effective_time"] for o in later["items"]) >= since
        scores = c.get(f"/api/v1/patients/{pid}/risk-scores", params={"limit": 1000}).json()
        assert scores["total"] > 10 and all(0 <= it["risk_6h"] <= 1 for it in scores["items"])
        st = c.get(f"/api/v1/patients/{pid}/status").json()
        assert st["patient_id"] == pid and st["level"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL")
        _problem(c.get("/api/v1/patients/no-such-patient"), 404)
        _problem(c.get(f"/api/v1/patients/{pid}/observations",
                       params={"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}), 400)


def test_acknowledge_is_bound_to_the_tokens_user_and_idempotent(api) -> None:
    s, ward, admin = api
    alert = ward.alert_ids[0]
    with _as(s, "cli-ada") as ada, _as(s, "rn-bo") as bo:
        first = ada.post(f"/api/v1/alerts/{alert}/acknowledge", json={"note": "seen at bedside"}).json()
        assert first["first"] is True and first["acknowledged_by"] == "cli-ada"
        # the body cannot name another user
        _problem(bo.post(f"/api/v1/alerts/{alert}/acknowledge", json={"user": "cli-ada"}), 422)
        again = bo.post(f"/api/v1/alerts/{alert}/acknowledge").json()
        assert again["first"] is False and again["acknowledged_by"] == "cli-ada"
        _problem(ada.post("/api/v1/alerts/no-such-alert/acknowledge"), 404)
        one = ada.get(f"/api/v1/alerts/{alert}").json()
        assert one["state"] == "acknowledged" and one["acknowledged_by"] == "cli-ada"
        assert one["acknowledgement_note"] == "seen at bedside"
        everything = ada.get("/api/v1/alerts", params={"state": "all", "limit": 1000}).json()
        paged, cursor = [], None
        while True:
            pg = ada.get("/api/v1/alerts", params={"state": "all", "limit": 2, **({"cursor": cursor} if cursor else {})})
            paged += [it["alert_id"] for it in pg.json()["items"]]
            if not (cursor := pg.json()["next_cursor"]):
                break
        assert paged == [it["alert_id"] for it in everything["items"]] and len(paged) == everything["total"] >= 3
        open_ids = {it["alert_id"] for it in ada.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]}
        acked = {it["alert_id"] for it in ada.get("/api/v1/alerts", params={"state": "acknowledged"}).json()["items"]}
        assert alert not in open_ids and alert in acked
    assert admin.alert_acks.find_one({"_id": alert})["user"] == "cli-ada"
    recs = list(admin.audit.find({"what": "acknowledge", "detail.alert_id": alert}))
    assert sorted((r["user"], r["detail"]["first"]) for r in recs) == [("cli-ada", True), ("rn-bo", False)]


def test_every_patient_level_read_is_audited(api) -> None:
    s, ward, admin = api
    pid = ward.featured[1]
    before = admin.audit.count_documents({"user": "ad-di"})
    with _as(s, "ad-di") as c:
        c.headers["X-Forwarded-For"] = "10.9.9.9"  # any local process could send it: never trusted
        for path in PATIENT_READS:
            assert c.get(path.format(p=pid)).status_code == 200, path
    recs = list(admin.audit.find({"user": "ad-di", "what": "view"}).sort("time", 1))
    assert len(recs) >= before + len(PATIENT_READS) - 1
    pages = {r["page"] for r in recs}
    assert {"api:patients", "api:patient", "api:status", "api:observations", "api:risk-scores", "api:alerts",
            "api:fhir:RiskAssessment", "api:fhir:Flag"} <= pages
    assert all(pid in r["patients"] for r in recs if r["page"] not in ("api:patients", "api:alerts"))
    assert all(r["source"] == "127.0.0.1" and r["role"] == "admin" for r in recs)


# -- FHIR -------------------------------------------------------------------------------------
def test_risk_assessments_and_flags_are_valid_fhir(api) -> None:
    from fhir.resources.bundle import Bundle
    from fhir.resources.flag import Flag
    from fhir.resources.riskassessment import RiskAssessment

    s, ward, _ = api
    pid = ward.featured[0]
    with _as(s, "cli-ada") as c:
        r = c.get("/fhir/RiskAssessment", params={"subject": f"Patient/{pid}", "_count": 5})
        assert r.headers["content-type"].startswith("application/fhir+json")
        b = Bundle.model_validate(r.json())
        assert b.type == "searchset" and b.total > 5 and len(b.entry) == 5
        assert any(link.relation == "next" for link in b.link)
        ra = RiskAssessment.model_validate(r.json()["entry"][0]["resource"])
        assert ra.subject.reference == f"Patient/{pid}" and ra.basis[0].reference.startswith("Observation/")
        assert [p.whenRange.high.value for p in ra.prediction] == [float(h) for h in s.clinical.horizons_hours]
        assert all(0 <= p.probabilityDecimal <= 1 for p in ra.prediction)
        assert ra.method.coding[0].code == s.models.risk_model_name and ra.method.coding[0].version == "7"
        one = c.get(f"/fhir/RiskAssessment/{ra.id}")
        assert one.status_code == 200 and one.json() == r.json()["entry"][0]["resource"]
        assert c.get("/fhir/RiskAssessment/20200101-0000000000000000-0000000000000000").status_code == 404
        empty = c.get("/fhir/RiskAssessment", params={"subject": "Patient/no-such-patient"}).json()
        assert Bundle.model_validate(empty).total == 0 and not empty.get("entry")
        nope = c.get("/fhir/RiskAssessment/not-an-id")
        assert nope.status_code == 422 and nope.json()["resourceType"] == "OperationOutcome"
        open_alerts = c.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
        who = open_alerts[0]["patient_id"]
        flags = c.get("/fhir/Flag", params={"patient": who}).json()
        fb = Bundle.model_validate(flags)
        assert fb.total == sum(a["patient_id"] == who for a in open_alerts) >= 1
        assert {e["resource"]["id"] for e in flags["entry"]} == {a["alert_id"] for a in open_alerts
                                                                  if a["patient_id"] == who}
        for e in flags["entry"]:
            f = Flag.model_validate(e["resource"])
            assert f.status == "active" and f.subject.reference == f"Patient/{who}"


# -- model and health -------------------------------------------------------------------------
def test_model_and_pipeline_health(api) -> None:
    s, _, admin = api
    from vitalwatch.dashboard.data import champion

    now = datetime.now(UTC)
    admin.pipeline_progress.insert_many([
        {"query": "gold_risk_scores", "timestamp": now, "batch_id": 4, "input_rows_per_s": 12.5,
         "processed_rows_per_s": 40.0, "batch_duration_ms": 300, "num_input_rows": 6, "kafka_lag": 0},
        {"query": "es_alerts", "kind": "health", "timestamp": now,
         "line": "degraded: es_alerts failing since 10:00: ConnectionError"}])
    with _as(s, "cli-ada") as c:
        m = c.get("/api/v1/model").json()
        assert m["version"] == champion(s).version and m["metrics"]
        h = c.get("/api/v1/health").json()
    stages = {st["query"]: st for st in h["stages"]}
    assert h["status"] == "degraded"
    assert stages["es_alerts"]["degraded"] is True and stages["gold_risk_scores"]["degraded"] is False
    assert stages["gold_risk_scores"]["input_rows_per_s"] == 12.5


# -- the schema -------------------------------------------------------------------------------
def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(api) -> None:
    """Every operation but sign-in (its throttling would lock the source for the rest of the
    module; it has its own tests) with generated inputs, as an admin (every operation allowed)."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
    )

    s, _, _ = api
    base, ca = server.url(s), str(server.ca_file(s))
    session = requests.Session()
    session.verify = ca
    session.headers["Authorization"] = f"Bearer {_sign_in(s, 'ad-di').json()['access_token']}"
    # verify per request too: requests lets $REQUESTS_CA_BUNDLE override a session's verify
    schema = schemathesis.openapi.from_dict(session.get(f"{base}/api/v1/openapi.json", verify=ca).json())
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    checks = [schemathesis.checks.not_a_server_error, response_schema_conformance, content_type_conformance]
    ops = [op.ok() for op in schema.get_all_operations() if op.ok().path != "/api/v1/token"]
    assert len(ops) >= 12
    def check(op) -> None:
        where = f"{op.method.upper()} {op.path}"

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            response = case.call(base_url=base, session=session, verify=ca)
            answered.setdefault(where, set()).add(response.status_code)
            try:
                case.validate_response(response, checks=checks)
            except AssertionError as e:
                failures.append(f"{where}: {str(e)[:400]}")

        run()

    for op in ops:
        check(op)
    assert not failures, "\n".join(failures[:10])
    # not vacuous: signed in, the list endpoints answered with data
    ok = {w for w, codes in answered.items() if any(200 <= c < 300 for c in codes)}
    assert {"GET /api/v1/patients", "GET /api/v1/alerts", "GET /api/v1/health", "GET /api/v1/model"} <= ok, answered
