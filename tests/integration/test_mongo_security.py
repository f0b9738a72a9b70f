"""MongoDB roles and users from conf/ on the real ``mongod --auth``: each role can do what it
should and is refused the rest; a wrong password is refused; the docker/ script is current.
TLS (``--tlsMode requireTLS``): clients verified against the local CA work, a plain-text client
and a TLS client that does not trust our CA are refused."""

from __future__ import annotations

import socket
import ssl
import uuid
from pathlib import Path

import bson
import pymongo
import pytest
from cryptography import x509
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from tests.helpers import ROOT
from vitalwatch.config import Settings
from vitalwatch.infra.endpoints import Endpoints
from vitalwatch.sinks import mongo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sec(base_settings: Settings, endpoints: Endpoints):
    s = base_settings.with_updates(mongo={"database": f"vw_sec_{uuid.uuid4().hex[:8]}"})
    done = mongo.init(s, endpoints.mongo_uri or "")
    assert set(done["users"]) == set(s.mongo.security.users)
    mongo.init(s, endpoints.mongo_uri or "")  # idempotent: a second run updates in place
    admin = pymongo.MongoClient(endpoints.mongo_uri)[s.mongo.database]
    admin.patients.insert_one({"_id": "p1", "name": "Ada Example", "mrn": "MRN1", "birth_date": "1950-01-01",
                               "ward": "ward-A", "care_team": {"nurse": "rn-1"}})
    admin.risk_scores.insert_one({"_id": "o1", "patient_id": "p1", "risk_6h": 0.7})
    admin.alerts.insert_one({"_id": "a1", "patient_id": "p1", "level": "CRITICAL"})

    def as_user(user: str, password: str | None = None):
        uri = mongo.user_uri(endpoints.mongo_uri or "", user, password or mongo.user_password(s, user),
                             s.mongo.database)
        return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[s.mongo.database]

    return s, as_user


def refused(fn) -> bool:
    try:
        fn()
    except OperationFailure as e:
        return e.code == 13  # Unauthorized
    return False


def test_pipeline_writer_reads_and_writes_the_operational_collections_only(sec) -> None:
    _s, as_user = sec
    db = as_user("vitalwatch_pipeline")
    db.risk_scores.update_one({"_id": "o2"}, {"$set": {"patient_id": "p1"}}, upsert=True)
    db.alerts.update_one({"_id": "a2"}, {"$set": {"level": "HIGH"}}, upsert=True)
    db.patients.update_one({"_id": "p1"}, {"$set": {"status": {"level": "HIGH"}}})
    assert db.patients.find_one({"_id": "p1"})["status"]["level"] == "HIGH"
    assert refused(lambda: db.alert_acks.insert_one({"_id": "a1", "user": "pipeline"}))
    db.risk_scores.delete_one({"_id": "o2"})  # it trims the operational copy of the scores ...
    assert refused(lambda: db.alerts.delete_one({"_id": "a2"}))  # ... never the alert trail
    assert refused(lambda: db.patients.delete_many({}))  # ... or the registry
    assert refused(lambda: db.audit.insert_one({"user": "x", "what": "view"}))
    assert refused(lambda: db.command("dropDatabase"))
    assert refused(lambda: db.command("createUser", "x", pwd="y", roles=[]))


def test_clinician_account_reads_and_cannot_write_an_acknowledgement(sec) -> None:
    """Acknowledgements carry a signed-in identity: a database account cannot write one under
    whatever name it likes (the dashboard, the API and `alerts ack` sign the user in first)."""
    _s, as_user = sec
    db = as_user("vitalwatch_clinician")
    assert db.patients.find_one({"_id": "p1"})["name"] == "Ada Example"
    assert db.alerts.find_one({"_id": "a1"})["level"] == "CRITICAL"
    assert refused(lambda: mongo.acknowledge(db, "a1", "someone-else", "forged"))
    assert refused(lambda: db.alerts.update_one({"_id": "a1"}, {"$set": {"level": "LOW"}}))
    assert refused(lambda: db.alert_acks.update_one({"_id": "a1"}, {"$set": {"note": "edited"}}))
    assert refused(lambda: db.risk_scores.delete_one({"_id": "o1"}))
    assert refused(lambda: db.patients.insert_one({"_id": "p9"}))
    assert refused(lambda: db.audit.find_one({}))


def test_analyst_reads_pseudonymised_allow_listed_views_only(sec) -> None:
    """Analysts see patients only as a keyed pseudonym, the same in every view, and only the
    allow-listed fields; the collections themselves, the key and the view definitions are
    refused; they write nothing."""
    from vitalwatch.sinks import analyst_views

    s, as_user = sec
    db = as_user("vitalwatch_analyst")
    pat = db.analyst_patients.find_one({"ward": "ward-A"})
    score = db.analyst_risk_scores.find_one({"risk_6h": 0.7})
    alert = db.analyst_alerts.find_one({"level": "CRITICAL"})
    assert pat["patient"] == score["patient"] == alert["patient"] and pat["patient"].startswith("anon-")
    assert "p1" not in pat["patient"]
    for doc, view in ((pat, "analyst_patients"), (score, "analyst_risk_scores"), (alert, "analyst_alerts")):
        assert set(doc) <= {"patient", *s.mongo.security.analyst_views[view].fields}, doc
    assert set(pat) == {"patient", "ward"}  # name, MRN, birth date and care team are not on the list
    for c in ("patients", "risk_scores", "alerts", "alert_acks", analyst_views.KEY_COLLECTION):
        assert refused(lambda c=c: db[c].find_one({})), c
    assert refused(lambda: db.command("listCollections"))  # the view definitions
    plan = str(db.command("explain", {"find": "analyst_patients"}))
    admin_key = sec_admin_key(sec)
    assert admin_key not in plan and analyst_views.KEY_COLLECTION in plan  # joined, never written in the view
    assert refused(lambda: db.risk_scores.insert_one({"_id": "o9"}))
    assert refused(lambda: db.alert_acks.insert_one({"_id": "a9"}))


def sec_admin_key(sec) -> str:
    """The pseudonym key, as the database admin reads it."""
    from vitalwatch.sinks import analyst_views

    _s, as_user = sec
    return as_user("vitalwatch_dbadmin")[analyst_views.KEY_COLLECTION].find_one({"_id": analyst_views.KEY_ID})["key"]


def test_no_application_account_reads_the_pseudonym_key(sec) -> None:
    from vitalwatch.sinks import analyst_views

    _s, as_user = sec
    for user in ("vitalwatch_pipeline", "vitalwatch_clinician", "vitalwatch_analyst", "vitalwatch_dashboard",
                 "vitalwatch_notifier"):
        db = as_user(user)
        assert refused(lambda db=db: db[analyst_views.KEY_COLLECTION].find_one({})), user


def test_pseudonyms_depend_on_the_key(sec) -> None:
    """Without the key nobody can map a known id to its pseudonym: another key, another one."""
    from vitalwatch.sinks import analyst_views

    _s, as_user = sec
    admin = as_user("vitalwatch_dbadmin")
    key = sec_admin_key(sec)
    before = as_user("vitalwatch_analyst").analyst_patients.find_one({"ward": "ward-A"})["patient"]
    try:
        admin[analyst_views.KEY_COLLECTION].update_one({"_id": analyst_views.KEY_ID}, {"$set": {"key": "0" * 64}})
        after = as_user("vitalwatch_analyst").analyst_patients.find_one({"ward": "ward-A"})["patient"]
    finally:
        admin[analyst_views.KEY_COLLECTION].update_one({"_id": analyst_views.KEY_ID}, {"$set": {"key": key}})
    assert after != before
    assert as_user("vitalwatch_analyst").analyst_patients.find_one({"ward": "ward-A"})["patient"] == before


def test_dashboard_reads_its_pages_and_users_and_acknowledges_only(sec) -> None:
    _s, as_user = sec
    db = as_user("vitalwatch_dashboard")
    assert db.patients.find_one({"_id": "p1"})["ward"] == "ward-A"
    assert db.alerts.find_one({"_id": "a1"})["level"] == "CRITICAL"
    db.dashboard_users.find_one({})  # reads the app's users (hashes) to sign them in
    db.pipeline_progress.find_one({})
    assert mongo.acknowledge(db, "a1", "rn-app-user", "from the dashboard", role="nurse") is True
    assert mongo.acknowledge(db, "a1", "rn-app-user", "again", role="nurse") is False  # first one wins
    ack = db.alert_acks.find_one({"_id": "a1"})
    assert (ack["user"], ack["role"], ack["note"]) == ("rn-app-user", "nurse", "from the dashboard")
    trail = list(db.audit.find({"what": "acknowledge", "detail.alert_id": "a1"}).sort("time", 1))
    assert [(t["user"], t["patients"], t["detail"]["first"]) for t in trail] == [
        ("rn-app-user", ["p1"], True), ("rn-app-user", ["p1"], False)]
    with pytest.raises(KeyError):  # an alert id that does not exist (yet) is refused
        mongo.acknowledge(db, "a-future", "rn-app-user", "", role="nurse")
    assert db.alert_acks.count_documents({"_id": "a-future"}) == 0
    assert refused(lambda: db.dashboard_users.insert_one({"_id": "intruder", "role": "admin"}))
    assert refused(lambda: db.alerts.update_one({"_id": "a1"}, {"$set": {"level": "LOW"}}))
    assert refused(lambda: db.alert_acks.delete_many({}))
    assert refused(lambda: db.alert_acks.update_one({"_id": "a1"}, {"$set": {"user": "someone-else"}}))
    assert refused(lambda: db.pipeline_progress.insert_one({"query": "x"}))
    # the audit trail: appended and read (the admin page), never changed or removed
    assert refused(lambda: db.audit.update_many({}, {"$set": {"user": "nobody"}}))
    assert refused(lambda: db.audit.delete_many({}))
    assert refused(lambda: db.audit.drop())


def test_acknowledgements_have_one_shape(sec) -> None:
    """The collection validator: even an account that may insert cannot add fields, drop the
    user or write a malformed one."""
    from datetime import UTC, datetime

    from pymongo.errors import WriteError

    _s, as_user = sec
    db = as_user("vitalwatch_dashboard")
    good = {"_id": "a-shape", "user": "rn-x1", "role": "nurse", "note": "", "acknowledged_time": datetime.now(UTC)}
    for bad in ({k: v for k, v in good.items() if k != "user"}, {**good, "user": "Robert'); DROP"},
                {**good, "acknowledged_time": "yesterday"}, {**good, "extra": "field"},
                {**good, "note": "x" * (mongo.ACK_NOTE_MAX + 1)}):
        with pytest.raises(WriteError) as e:
            db.alert_acks.insert_one(bad)
        assert e.value.code == 121  # DocumentValidationFailure
    db.alert_acks.insert_one(good)


def test_no_application_account_changes_the_audit_trail(sec) -> None:
    _s, as_user = sec
    as_user("vitalwatch_dbadmin").audit.insert_one({"time": __import__("datetime").datetime.now(), "user": "u",
                                                     "what": "view", "patients": ["p1"]})
    for user in ("vitalwatch_pipeline", "vitalwatch_clinician", "vitalwatch_analyst", "vitalwatch_dashboard",
                 "vitalwatch_notifier"):
        db = as_user(user)
        assert refused(lambda db=db: db.audit.update_one({}, {"$set": {"user": "x"}})), user
        assert refused(lambda db=db: db.audit.delete_one({})), user


def test_pipeline_progress_is_capped_and_written_by_the_pipeline(sec) -> None:
    s, as_user = sec
    db = as_user("vitalwatch_pipeline")
    db.pipeline_progress.insert_one({"query": "gold", "batch_id": 1})
    opts = as_user("vitalwatch_dbadmin").pipeline_progress.options()
    assert opts["capped"] and opts["size"] == s.dashboard.progress_collection_mb * 1024 * 1024
    assert refused(lambda: db.dashboard_users.find_one({}))  # the pipeline never sees the app's users


def test_admin_owns_the_database(sec) -> None:
    _s, as_user = sec
    db = as_user("vitalwatch_dbadmin")
    db.create_collection(f"scratch_{uuid.uuid4().hex[:6]}")
    assert db.patients.find_one({"_id": "p1"})["mrn"] == "MRN1"
    assert "vitalwatch_analyst" in {u["user"] for u in db.command("usersInfo")["users"]}


def test_a_wrong_password_is_refused(sec) -> None:
    _s, as_user = sec
    with pytest.raises(OperationFailure) as e:
        as_user("vitalwatch_clinician", "not-the-password").alerts.find_one()
    assert e.value.code == 18  # AuthenticationFailed


# -- TLS: mongod --tlsMode requireTLS with the local CA's `mongo` certificate -------------------
def _reachable(uri: str) -> bool:
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
    try:
        return client.admin.command("ping")["ok"] == 1
    except ServerSelectionTimeoutError:
        return False
    finally:
        client.close()


def _other_ca(tmp: Path) -> Path:
    import datetime as dt

    from vitalwatch.infra.tls import _pem_cert, make_ca

    _key, cert = make_ca(1, dt.datetime.now(dt.UTC))
    (tmp / "other-ca.crt").write_bytes(_pem_cert(cert))
    return tmp / "other-ca.crt"


def test_every_client_speaks_tls_verified_against_the_local_ca(sec, infra: dict, endpoints: Endpoints,
                                                               tmp_path: Path) -> None:
    s, as_user = sec
    port, ca = infra["mongo"]["port"], infra["mongo"]["ca_file"]
    assert infra["mongo"]["tls"] and Path(ca) == Path(s.infra.work_dir) / "tls" / "ca.crt"
    assert "tls=true" in endpoints.mongo_uri and f"tlsCAFile={ca}" in endpoints.mongo_uri
    # every account's URI keeps the server URI's TLS options, and works
    uri = mongo.user_uri(endpoints.mongo_uri or "", "vitalwatch_clinician",
                         mongo.user_password(s, "vitalwatch_clinician"), s.mongo.database)
    assert "tls=true" in uri and f"tlsCAFile={ca}" in uri
    assert as_user("vitalwatch_clinician").alerts.find_one({"_id": "a1"})["level"] == "CRITICAL"
    assert "tls=true" in mongo.pipeline_uri(s, endpoints.mongo_uri or "")
    # the server presents the local CA's `mongo` certificate, for the address clients use
    pem = ssl.get_server_certificate(("127.0.0.1", port), ca_certs=ca)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "mongo"
    ca_cert = x509.load_pem_x509_certificate(Path(ca).read_bytes())
    assert cert.issuer == ca_cert.subject


def test_a_client_without_tls_is_refused(sec, infra: dict) -> None:
    s, _as_user = sec
    port, user = infra["mongo"]["port"], "vitalwatch_clinician"
    plain = (f"mongodb://{user}:{mongo.user_password(s, user)}@127.0.0.1:{port}/"
             f"?authSource={s.mongo.database}&directConnection=true")
    assert not _reachable(plain)                                   # the right password, in clear: refused
    assert not _reachable(f"mongodb://127.0.0.1:{port}/?directConnection=true")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:   # a plain-text hello ...
        hello = bson.encode({"hello": 1, "$db": "admin"})
        body = (0).to_bytes(4, "little") + b"\0" + hello                      # OP_MSG, flags 0, section 0
        sock.sendall((16 + len(body)).to_bytes(4, "little") + (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
                     + (2013).to_bytes(4, "little") + body)
        sock.settimeout(5)
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert answer == b""                                           # ... gets no answer: mongod closed it


def test_a_tls_client_that_does_not_trust_the_local_ca_is_refused(sec, infra: dict, tmp_path: Path) -> None:
    s, _as_user = sec
    port, user = infra["mongo"]["port"], "vitalwatch_clinician"
    base = (f"mongodb://{user}:{mongo.user_password(s, user)}@127.0.0.1:{port}/"
            f"?authSource={s.mongo.database}&directConnection=true&tls=true")
    system_bundle = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    assert Path(system_bundle).is_file()
    assert not _reachable(f"{base}&tlsCAFile={system_bundle}")       # the public CAs do not vouch for it
    assert not _reachable(f"{base}&tlsCAFile={_other_ca(tmp_path)}")  # nor does another CA
    assert _reachable(f"{base}&tlsCAFile={infra['mongo']['ca_file']}")  # ours does


def test_a_data_dir_from_a_plain_text_run_restarts_with_tls(base_settings: Settings, work_dir: Path) -> None:
    """The TLS flags are per start: a mongod whose data dir was written without TLS starts with
    requireTLS on the same accounts; its old plain-text state is not healthy (``infra up``
    restarts it)."""
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.infra.mongo import MongoServer
    from vitalwatch.infra.process import stop_pid

    s = base_settings.with_updates(infra={"work_dir": str(work_dir / f"tls-upgrade-{uuid.uuid4().hex[:6]}")})
    plain_s = s.with_updates(infra={"mongo": {"tls": False}})
    work = s.path(s.infra.work_dir)
    InfraManager(s).ca().ensure()
    pids = []
    try:
        before = MongoServer(plain_s, work).start({})
        pids.append(before["pid"])
        assert not before["tls"] and "tls=" not in before["uri"]
        pymongo.MongoClient(before["uri"]).scratch.docs.insert_one({"_id": "kept"})
        stop_pid(before["pid"], grace_s=30)
        srv = MongoServer(s, work)
        assert not srv.healthy(before)
        after = srv.start(before)
        pids.append(after["pid"])
        assert after["tls"] and after["port"] == before["port"] and srv.healthy(after)
        assert pymongo.MongoClient(after["uri"]).scratch.docs.find_one({"_id": "kept"}) == {"_id": "kept"}
        assert not _reachable(before["uri"])
    finally:
        for pid in pids:
            stop_pid(pid, grace_s=30)


def test_docker_script_is_rendered_from_the_same_definition(base_settings: Settings) -> None:
    committed = (ROOT / "docker" / "mongo" / "init-security.js").read_text()
    assert committed == mongo.render_script(base_settings), "run `vitalwatch mongo script --out docker/mongo/init-security.js`"
    for user, spec in base_settings.mongo.security.users.items():
        assert f"process.env.{spec['password_env']}" in committed and user in committed
    assert "pwd: \"" not in committed  # no password in the file
