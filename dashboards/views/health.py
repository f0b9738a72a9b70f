"""Pipeline health: system alerts when the model drifts or loses calibration (gold/model_monitoring),
and each streaming query's input and processing rate, batch duration, rows in state and Kafka lag,
from the progress events the running jobs record (pipeline.monitor)."""

import altair as alt
import streamlit as st

from vitalwatch.dashboard import data, rules, ui

s = ui.settings()
ui.require(s, "health")
st.title("Pipeline health")
st.radio("Window", [0.25, 1.0, 6.0], key="health_hours", horizontal=True, format_func=lambda h: f"{h:g} h")


@st.fragment(run_every=s.dashboard.refresh_seconds)
def health() -> None:
    ui.still_valid(s)
    try:
        breaches = rules.system_alerts(data.model_monitoring(s, s.models.monitoring.system_alert_days))
    except Exception as e:  # the model's monitoring unreadable: say so, keep the page
        st.warning(f"model monitoring unavailable: {type(e).__name__}")
        breaches = []
    for b in breaches:
        st.error(f"System alert (the model, not a patient) — {b}")
    prog = data.progress(ui.db(s), hours=float(st.session_state.get("health_hours", 1.0)))
    latest = rules.pipeline_health(prog)
    if latest.empty:
        st.info("No progress recorded in this window: is the pipeline running (`vitalwatch run`)?")
        return
    st.dataframe(latest, hide_index=True, placeholder=rules.MISSING, column_config={
        "input_rows_per_s": st.column_config.NumberColumn("input rows/s", format="%.1f"),
        "processed_rows_per_s": st.column_config.NumberColumn("processed rows/s", format="%.1f"),
        "batch_duration_ms": st.column_config.NumberColumn("batch ms", format="%d"),
        "kafka_lag": st.column_config.NumberColumn("Kafka lag (offsets)", format="%d"),
        "seconds_since": st.column_config.NumberColumn("last report (s ago)", format="%d")})
    try:
        by_reason, by_type = data.input_outcomes(s)
    except Exception as e:  # a lake without the silver tables yet: say so, keep the page
        st.warning(f"silver input outcomes unavailable: {type(e).__name__}")
    else:
        left, right = st.columns(2)
        left.caption("silver/quarantine: rows by reason")
        left.dataframe(by_reason, hide_index=True, placeholder=rules.MISSING)
        right.caption("Bundle resources that are not vital signs (counted, not quarantined)")
        right.dataframe(by_type, hide_index=True, placeholder=rules.MISSING)
    for metric, title in (("processed_rows_per_s", "processed rows/s"), ("batch_duration_ms", "batch duration (ms)"),
                          ("kafka_lag", "Kafka lag (offsets)"), ("state_rows", "rows in state")):
        d = prog[["timestamp", "query", metric]].dropna() if metric in prog else None
        if d is not None and len(d):
            st.altair_chart(alt.Chart(d).mark_line().encode(x=alt.X("timestamp:T", title="time"),
                                                            y=alt.Y(f"{metric}:Q", title=title), color="query:N"),
                            width="stretch")


health()
