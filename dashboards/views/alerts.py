"""Alert inbox: filter by level, ward and state; acknowledge with a note (who and when are
recorded in MongoDB ``alert_acks``); refreshed live."""

import streamlit as st

from vitalwatch.dashboard import auth, data, rules, ui
from vitalwatch.sinks import mongo

s = ui.settings()
sess = ui.require(s, "alerts")
can_ack = auth.allowed(s, sess.user.role, "acknowledge")
st.title("Alert inbox")

c1, c2, c3 = st.columns([2, 2, 1])
c1.multiselect("Level", list(rules.LEVELS[:3]), key="inbox_levels", placeholder="all levels")
c3.radio("State", list(rules.ALERT_STATES), key="inbox_state", horizontal=True)


def _inbox():
    al = ui.gold(s).alerts()
    acks = data.acknowledgements(ui.db(s), al["alert_id"].tolist())
    return rules.alert_inbox(al, acks, levels=st.session_state.get("inbox_levels") or None,
                             wards=st.session_state.get("inbox_wards") or None,
                             state=st.session_state.get("inbox_state", "open"))


all_wards = sorted(ui.gold(s).alerts()["ward"].dropna().unique())
c2.multiselect("Ward", all_wards, key="inbox_wards", placeholder="all wards")


@st.fragment(run_every=s.dashboard.refresh_seconds)
def inbox() -> None:
    ui.still_valid(s)
    df = _inbox()
    ui.audit_view(s, sess, "alerts", df.get("patient_id", ()), state=st.session_state.get("inbox_state", "open"))
    st.caption(f"{len(df)} alerts · refreshes every {s.dashboard.refresh_seconds:g} s")
    cols = ["raised_time", "level", "kind", "patient_id", "ward", "reasons", "risk_6h", "systolic", "diastolic",
            "news2", "source", "ack_user", "ack_time", "ack_note", "alert_id"]
    st.dataframe(df[[c for c in cols if c in df.columns]], hide_index=True, key="inbox_table", placeholder=rules.MISSING,
                 column_config={"risk_6h": st.column_config.NumberColumn("risk 6 h", format="%.2f")})


inbox()

st.subheader("Acknowledge")
if not can_ack:
    st.info(f"Your role ({sess.user.role}) can read alerts but not acknowledge them.")
else:
    al = ui.gold(s).alerts()
    open_alerts = rules.alert_inbox(al, data.acknowledgements(ui.db(s), al["alert_id"].tolist()), state="open",
                                    levels=st.session_state.get("inbox_levels") or None,
                                    wards=st.session_state.get("inbox_wards") or None)
    if open_alerts.empty:
        st.success("No open alert.")
    else:
        labels = {r.alert_id: f"{r.level} · {r.patient_id} · {r.raised_time:%H:%M:%S} · {r.alert_id[:10]}"
                  for r in open_alerts.itertuples()}
        with st.form("ack", clear_on_submit=True):
            alert_id = st.selectbox("Open alert", list(labels), format_func=labels.get, key="ack_alert")
            note = st.text_input("Note", key="ack_note", placeholder="e.g. BP rechecked, physician informed")
            if st.form_submit_button("Acknowledge", type="primary"):
                try:
                    first = mongo.acknowledge(ui.db(s), alert_id, sess.user.username, note, role=sess.user.role,
                                              source=ui.source())
                except KeyError:  # in the lake, not yet copied to MongoDB (serve_alerts)
                    st.warning("This alert is still being stored; try again in a few seconds.")
                else:
                    st.toast("Acknowledged." if first else "Already acknowledged by someone else.")
                    st.rerun()
