"""The Streamlit side of the dashboard: shared resources, the login gate and role checks that
every page of ``dashboards/`` goes through. Rules live in :mod:`.auth` and :mod:`.rules`."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from vitalwatch.config import Settings
from vitalwatch.dashboard import auth
from vitalwatch.dashboard.data import Gold, TableCache, mongo_db
from vitalwatch.security import audit

SESSION = "vw_session"
NOTICE = "vw_notice"


def settings() -> Settings:
    """Read per run (cheap): the environment decides the lake, the servers and the roles."""
    return Settings()


@st.cache_resource(show_spinner=False)
def _cache(_key: str, seconds: float) -> TableCache:
    return TableCache(seconds)


@st.cache_resource(show_spinner=False)
def _db(key: str, _s: Settings):
    return mongo_db(_s)


def _key(s: Settings) -> str:
    return "|".join((s.lake.root, s.mongo.database, s.mongo.uri or "", s.infra.work_dir, s.dashboard.mongo_user))


def gold(s: Settings) -> Gold:
    """The lake reader; one table cache for every session of this app."""
    return Gold(s, _cache(_key(s), s.dashboard.cache_seconds))


def db(s: Settings):
    return _db(_key(s), s)


def session() -> auth.Session | None:
    return st.session_state.get(SESSION)


def source() -> str | None:
    """The client's address as the server sees it (throttling and the audit trail)."""
    try:
        ip = st.context.ip_address
    except Exception:  # no browser session
        return None
    return ip if isinstance(ip, str) else None  # AppTest hands back a stand-in object


def logout(reason: str | None = None, s: Settings | None = None, what: str = audit.SIGN_OUT) -> None:
    sess = st.session_state.pop(SESSION, None)
    st.session_state.pop("login_password", None)
    if sess is not None and s is not None:
        audit.record(db(s), user=sess.user.username, role=sess.user.role, what=what, source=source(),
                     detail={"reason": reason} if reason else None)
    if reason:
        st.session_state[NOTICE] = reason


def gate(s: Settings, *, touch: bool = True) -> auth.Session | None:
    """The valid session, or None (the app then shows only :func:`login_page`). The user's
    record is read again on every run: deactivation signs them out, a role change applies. A
    full run (a click) counts as activity; an auto-refresh (``touch=False``) does not."""
    sess = session()
    if sess is not None and (why := sess.expired(s.dashboard)):
        logout(why, s, audit.SESSION_ENDED)
        sess = None
    if sess is not None:
        user = auth.refresh(db(s), s, sess.user)
        if user is None:
            logout("your account is no longer active; ask an administrator", s, audit.SESSION_ENDED)
            return None
        if user != sess.user:
            sess.user = user
    if sess is not None and touch:
        sess.touch()
    return sess


def still_valid(s: Settings) -> auth.Session:
    """For auto-refreshing fragments: an expired or deactivated session sends the whole app
    back to login."""
    if gate(s, touch=False) is None:
        st.rerun(scope="app")
    return session()  # type: ignore[return-value]


def login_page(s: Settings) -> None:
    st.title("vitalwatch")
    st.caption("Patient monitoring — sign in to continue")
    if notice := st.session_state.pop(NOTICE, None):
        st.info(notice)
    with st.form("login", clear_on_submit=False):
        username = st.text_input("Username", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        user, out = auth.sign_in(db(s), s, username, password, source())
        if out.reason == "throttled":
            st.error(f"Too many failed sign-ins; try again in {max(1, round(out.retry_after_s))} s.")
            return
        if user is None:
            st.error("Invalid username or password.")
            return
        st.session_state[SESSION] = auth.start_session(user)
        st.session_state.pop("login_password", None)
        st.rerun()


def require(s: Settings, what: str) -> auth.Session:
    """Stop the page unless the logged-in role may ``what`` (a page or an action)."""
    sess = session()
    if sess is None:
        st.stop()
    if not auth.allowed(s, sess.user.role, what):
        st.error(f"Your role ({sess.user.role}) does not give access to this.")
        st.stop()
    return sess  # type: ignore[return-value]


def audit_view(s: Settings, sess: auth.Session, page: str, patients, **detail) -> None:
    """Record that the signed-in user was shown these patients' data on ``page``; once per
    distinct view of a session (an auto-refresh of the same view is not a new record)."""
    ids = sorted({str(p) for p in patients if p is not None})
    key = (page, tuple(ids[:audit.MAX_PATIENTS]), len(ids), tuple(sorted(detail.items())))
    seen = st.session_state.setdefault("vw_audited", set())
    if key in seen:
        return
    if audit.record(db(s), user=sess.user.username, role=sess.user.role, what=audit.VIEW, page=page,
                    patients=ids, source=source(), detail=detail or None):
        seen.add(key)
    else:
        st.warning("This view could not be recorded in the audit trail; an administrator has been told (log).")


def ago(t) -> str:
    if t is None:
        return "never"
    secs = (datetime.now(UTC) - t).total_seconds()
    return f"{secs:.0f} s ago" if secs < 120 else f"{secs / 60:.0f} min ago"
