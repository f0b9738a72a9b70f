"""Sign-in against the real mongod (issue 19, point 7): unknown usernames cost what a wrong
password costs, failures are throttled per username and per source with back-off, every
attempt is an authentication event in the audit trail, and new passwords are checked."""

from __future__ import annotations

import statistics
import time
import uuid

import pymongo
import pytest

from vitalwatch.config import Settings, SignInConfig
from vitalwatch.dashboard import auth
from vitalwatch.security import audit
from vitalwatch.security.passwords import breached
from vitalwatch.sinks import mongo

pytestmark = pytest.mark.integration
PW = "plum-violet-kettle-42"


@pytest.fixture
def site(base_settings: Settings, endpoints):
    s = base_settings.with_updates(mongo={"database": f"vw_signin_{uuid.uuid4().hex[:8]}"},
                     dashboard={"bcrypt_rounds": 10, "sign_in": SignInConfig(
                         free_failures_per_user=3, free_failures_per_source=5, backoff_s=1.5, backoff_max_s=60)})
    mongo.init(s, endpoints.mongo_uri)
    admin = pymongo.MongoClient(endpoints.mongo_uri)[s.mongo.database]
    auth.create_user(admin, s, "rn-kim", PW, "nurse")
    app = pymongo.MongoClient(mongo.user_uri(endpoints.mongo_uri, s.dashboard.mongo_user,
                                             mongo.user_password(s, s.dashboard.mongo_user),
                                             s.mongo.database))[s.mongo.database]
    yield s, admin, app
    admin.client.drop_database(s.mongo.database)


def test_an_unknown_username_costs_what_a_wrong_password_costs(site) -> None:
    s, _admin, app = site
    known, unknown = [], []
    for i in range(12):  # interleaved, through the app's own account, as the login form does it
        for name, out in (("rn-kim", known), (f"nobody-{i}", unknown)):
            t0 = time.perf_counter()
            assert auth.authenticate(app, s, name, f"wrong-password-{i}", source=f"10.0.{i}.{len(out)}") is None
            out.append(time.perf_counter() - t0)
            app.sign_in_throttle.delete_many({})  # measure the check, not the throttle
    k, u = statistics.mean(known[2:]), statistics.mean(unknown[2:])
    assert abs(u - k) / k < 0.20, (k, u)


def test_failures_are_throttled_per_username_with_back_off(site) -> None:
    s, _admin, app = site
    for _ in range(3):
        user, out = auth.sign_in(app, s, "rn-kim", "not-my-password", source="10.1.1.1")
        assert user is None and out.reason == "invalid"
    user, out = auth.sign_in(app, s, "rn-kim", PW, source="10.1.1.2")  # right password, but locked
    assert user is None and out.reason == "throttled" and 0 < out.retry_after_s <= 1.5
    time.sleep(out.retry_after_s + 0.1)
    user, out = auth.sign_in(app, s, "rn-kim", "still-not-it", source="10.1.1.1")  # the 4th failure ...
    assert out.reason == "invalid"
    user, out = auth.sign_in(app, s, "rn-kim", PW, source="10.1.1.2")  # ... doubles the lock
    assert out.reason == "throttled" and 1.5 < out.retry_after_s <= 3.0
    time.sleep(out.retry_after_s + 0.1)
    user, out = auth.sign_in(app, s, "rn-kim", PW, source="10.1.1.2")
    assert user is not None and user.role == "nurse" and out.ok
    assert app.sign_in_throttle.count_documents({"_id": "user:rn-kim"}) == 0  # a success clears it
    events = [(e["what"], e["user"], e["source"]) for e in reversed(audit.recent(app, user="rn-kim"))]
    failed, throttled = ("sign_in_failed", "rn-kim", "10.1.1.1"), ("sign_in_throttled", "rn-kim", "10.1.1.2")
    assert events == [failed] * 3 + [throttled, failed, throttled, ("sign_in", "rn-kim", "10.1.1.2")]
    assert all(PW not in str(e) and "not-my-password" not in str(e) for e in audit.recent(app))


def test_one_source_trying_many_usernames_is_throttled(site) -> None:
    s, _admin, app = site
    for i in range(5):
        assert auth.sign_in(app, s, f"guess-{i}", "password-guess-1", source="10.9.9.9")[1].reason == "invalid"
    _u, out = auth.sign_in(app, s, "rn-kim", PW, source="10.9.9.9")
    assert out.reason == "throttled"  # the source is locked, whichever username it tries
    user, _ = auth.sign_in(app, s, "rn-kim", PW, source="10.9.9.10")
    assert user is not None  # the user from elsewhere is not locked out by it


def test_a_deactivated_user_cannot_sign_in_and_their_session_ends(site) -> None:
    s, admin, app = site
    user, _ = auth.sign_in(app, s, "rn-kim", PW)
    assert auth.refresh(app, s, user) == user
    auth.set_active(admin, "rn-kim", False)
    assert auth.refresh(app, s, user) is None  # the next page run signs them out
    assert auth.sign_in(app, s, "rn-kim", PW)[0] is None
    assert audit.recent(app, user="rn-kim", what=audit.SIGN_IN_FAILED)[0]["detail"]["why"] == "inactive"
    auth.set_active(admin, "rn-kim", True)
    admin.dashboard_users.update_one({"_id": "rn-kim"}, {"$set": {"role": "analyst"}})
    assert auth.refresh(app, s, user).role == "analyst"  # a role change applies at the next run


@pytest.mark.parametrize("password,why", [("short-pw-1", "at least 12"), ("password1234", "leaked"),
                                          ("Baseball2024!", "leaked"), ("aaaaaaaaaaaaaaaa", "leaked|different"),
                                          ("my-rn-kim-password", "username")])
def test_weak_new_passwords_are_refused(site, password, why) -> None:
    s, admin, _app = site
    with pytest.raises(auth.AuthError, match=why):
        auth.create_user(admin, s, "rn-kim", password, "nurse", replace=True)


def test_the_breached_list_ships_with_the_package() -> None:
    assert breached("password") and breached("Qwerty123") and breached("iloveyou!")
    assert not breached(PW)
