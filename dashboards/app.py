"""vitalwatch clinician dashboard (Streamlit): login, then the pages the user's role may open.

    vitalwatch dashboard            # or: streamlit run dashboards/app.py

Settings come from conf/ and VITALWATCH__… variables like every other vitalwatch process."""


import streamlit as st

from vitalwatch.dashboard import auth, ui

PAGES = {  # name (as in conf dashboard.roles) -> page
    "ward": st.Page("views/ward.py", title="Ward overview", icon=":material/groups:", url_path="ward"),
    "patient": st.Page("views/patient.py", title="Patient", icon=":material/monitor_heart:",
                       url_path="patient"),
    "alerts": st.Page("views/alerts.py", title="Alert inbox", icon=":material/notifications:",
                      url_path="alerts"),
    "model": st.Page("views/model.py", title="Model", icon=":material/model_training:", url_path="model"),
    "health": st.Page("views/health.py", title="Pipeline health", icon=":material/monitoring:",
                      url_path="health"),
    "users": st.Page("views/users.py", title="Users", icon=":material/manage_accounts:", url_path="users"),
    "audit": st.Page("views/audit.py", title="Audit trail", icon=":material/policy:", url_path="audit"),
}

st.set_page_config(page_title="vitalwatch", page_icon=":material/ecg_heart:", layout="wide")
s = ui.settings()
sess = ui.gate(s)


def _sign_in_at(url_path: str) -> st.Page:
    """The sign-in form under a page's own address: a link to /alerts shows it, and after
    signing in the same address opens the alert inbox."""
    def sign_in() -> None:
        ui.login_page(s)

    return st.Page(sign_in, title="Sign in", url_path=url_path)


if sess is None:  # nothing but the sign-in form, whatever the address asked for
    st.navigation([_sign_in_at(name) for name in PAGES], position="hidden").run()
    st.stop()
allowed = [p for name, p in PAGES.items() if auth.allowed(s, sess.user.role, name)]
with st.sidebar:
    st.markdown(f"**{sess.user.display_name}** · {sess.user.role}")
    if st.button("Log out", key="logout"):
        ui.logout("You have logged out.", s)
        st.rerun()
st.navigation(allowed).run()
