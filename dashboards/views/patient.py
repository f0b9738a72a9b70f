"""One patient: vital-sign trends with the crisis thresholds, risk over time, alerts, and the
model version behind each score."""

from datetime import UTC, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from vitalwatch.dashboard import auth, data, rules, ui

s = ui.settings()
sess = ui.require(s, "patient")
ids = auth.shows_identifiers(s, sess.user.role)
st.title("Patient")

status = ui.gold(s).status()
registry = data.registry(ui.db(s), ids)
ranked = rules.ward_overview(status, registry, include_discharged=True)
choices = ranked["patient_id"].tolist()
if not choices:
    st.info("No patient has been scored yet.")
    st.stop()
if st.session_state.get("patient") not in choices:
    st.session_state["patient"] = choices[0]
labels = dict(zip(ranked["patient_id"], ranked["level"], strict=True))
names = dict(zip(ranked["patient_id"], ranked.get("name", ranked["patient_id"]), strict=True)) if ids else {}
c1, c2 = st.columns([3, 1])
c1.selectbox("Patient (highest risk first)", choices, key="patient",
             format_func=lambda p: f"{p} · {names.get(p) or ''} · {labels.get(p)}" if ids else f"{p} · {labels.get(p)}")
c2.number_input("Hours of history", min_value=1.0, max_value=24.0 * 14, step=1.0,
                value=float(s.dashboard.trend_hours), key="trend_hours")


@st.fragment(run_every=s.dashboard.refresh_seconds)
def patient() -> None:
    ui.still_valid(s)
    pid = st.session_state["patient"]
    ui.audit_view(s, sess, "patient", [pid], hours=float(st.session_state["trend_hours"]))
    since = datetime.now(UTC) - timedelta(hours=float(st.session_state["trend_hours"]))
    g = ui.gold(s)
    row = rules.ward_overview(g.status(), registry, include_discharged=True)
    row = row[row["patient_id"] == pid]
    if len(row):
        r = row.iloc[0]
        horizons = list(s.clinical.horizons_hours)
        cols = st.columns(len(horizons) + 2)  # short values only: longer ones go in the caption
        cols[0].metric("Level", rules.shown(r.get("level")))
        for col, h in zip(cols[1:], horizons, strict=False):
            col.metric(f"Risk {h} h", rules.shown(r.get(f"risk_{h}h"), "{:.2f}"))
        cols[-1].metric("NEWS2", rules.shown(r.get("news2"), "{:.0f}"))
        st.caption(f"Ward {rules.shown(r.get('ward'))} · last reading "
                   f"{rules.shown(r.get('effective_time'), '{:%Y-%m-%d %H:%M} UTC')} "
                   f"({rules.shown(r.get('minutes_since'), '{:.0f} min ago')}) · model "
                   f"{rules.shown(r.get('model_name'))} {rules.shown(r.get('model_version'), 'v{}')} · "
                   f"state {rules.shown(r.get('state'))}")

    vit = rules.vital_trends(g.vitals(pid, since))
    thr = rules.crisis_thresholds(s.clinical)
    st.subheader("Blood pressure")
    if vit.empty or "systolic" not in vit:
        st.info("No blood-pressure reading in this period.")
    else:
        bp = vit.melt(id_vars="effective_time", value_vars=[c for c in ("systolic", "diastolic") if c in vit],
                      var_name="vital", value_name="mmHg").dropna()
        lines = alt.Chart(bp).mark_line(point=True).encode(
            x=alt.X("effective_time:T", title="time (UTC)"), y=alt.Y("mmHg:Q", scale=alt.Scale(zero=False)),
            color="vital:N", tooltip=["effective_time:T", "vital:N", "mmHg:Q"])
        limits = pd.DataFrame([{"vital": k, "mmHg": v, "label": f"crisis {k} ≥ {v:g}"} for k, v in thr.items()])
        rule = alt.Chart(limits).mark_rule(strokeDash=[6, 4], color="#d62728").encode(y="mmHg:Q", tooltip=["label:N"])
        st.altair_chart(lines + rule, width="stretch")
    others = [c for c in ("heart_rate", "respiratory_rate", "spo2", "temperature") if c in vit]
    if others:
        st.subheader("Other vital signs")
        long = vit.melt(id_vars="effective_time", value_vars=others, var_name="vital", value_name="value").dropna()
        st.altair_chart(alt.Chart(long).mark_line(point=True).encode(
            x=alt.X("effective_time:T", title="time (UTC)"), y=alt.Y("value:Q", scale=alt.Scale(zero=False)),
            color="vital:N").facet(row="vital:N").resolve_scale(y="independent"), width="stretch")

    scores = g.scores(pid, since)
    st.subheader("Risk of a hypertensive crisis")
    hist = rules.risk_history(scores, s.clinical.horizons_hours)
    if hist.empty:
        st.info("No scored reading in this period.")
    else:
        st.altair_chart(alt.Chart(hist).mark_line(point=True).encode(
            x=alt.X("effective_time:T", title="time (UTC)"), y=alt.Y("risk:Q", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("horizon:N", title="horizon"),
            tooltip=["effective_time:T", "horizon:N", alt.Tooltip("risk:Q", format=".2f"), "level:N",
                     "model_name:N", "model_version:N"]), width="stretch")
        st.caption("Model versions behind these scores")
        st.dataframe(rules.model_versions(scores), hide_index=True, placeholder=rules.MISSING)

    st.subheader("Alerts")
    al = g.alerts()
    al = al[al["patient_id"] == pid]
    acks = data.acknowledgements(ui.db(s), al["alert_id"].tolist())
    inbox = rules.alert_inbox(al, acks, state="all", kinds_resolved=True)
    if inbox.empty:
        st.info("No alert for this patient.")
    else:
        st.dataframe(inbox[["raised_time", "effective_time", "kind", "level", "previous_level", "reasons",
                            "ack_user", "ack_time", "model_version", "alert_id"]], hide_index=True,
                     placeholder=rules.MISSING)


patient()
