"""The champion crisis-risk model: version, held-out metrics and calibration, from MLflow; and
the model live on delayed outcomes (gold/model_monitoring), champion beside any shadow."""

import altair as alt
import streamlit as st

from vitalwatch.dashboard import data, rules, ui

s = ui.settings()
ui.require(s, "model")
st.title("Model")


@st.cache_data(ttl=60, show_spinner="reading the MLflow registry")
def _champion(_s, key: str) -> data.ChampionInfo:
    return data.champion(_s)


info = _champion(s, f"{s.models.mlflow_dir}|{s.models.risk_model_name}|{s.models.champion_alias}")
if info.version is None:
    st.warning(f"No champion version of {info.name} (alias {s.models.champion_alias!r}) in the registry yet.")
    st.stop()
# metric values stay short so they are never cut off ("vitalwatch-crisis-r…"): the model's name,
# the registration time and the run go in the caption under them
c1, c2, c3 = st.columns(3)
c1.metric("Champion", rules.shown(info.version, "v{}"))
c2.metric("Registered", rules.shown(info.created, "{:%Y-%m-%d}"))
c3.metric("Alias", s.models.champion_alias)
st.caption(f"Model {info.name} · registered {rules.shown(info.created, '{:%Y-%m-%d %H:%M} UTC')} · "
           f"MLflow run {rules.shown(info.run_id)}")
if info.tags:
    st.caption("Tags of this version")
    st.dataframe(rules.key_values(info.tags), hide_index=True, placeholder=rules.MISSING)
st.subheader("Held-out metrics")
if info.metrics is None:
    st.info("This version has no evaluation table.")
else:
    st.dataframe(info.metrics, hide_index=True, placeholder=rules.MISSING)
st.subheader("Calibration")
if info.reliability_png is None:
    st.info("This version has no calibration plot.")
else:
    st.image(info.reliability_png, caption="Reliability: mean predicted risk vs observed rate, per horizon")

st.subheader("Live, on delayed outcomes")
mon_cfg = s.models.monitoring
mon = data.model_monitoring(s, mon_cfg.days_shown)
if mon.empty:
    st.info("No day has known outcomes yet: the lake application's model_outcomes stage writes them "
            "once readings' horizons have passed (gold/model_monitoring).")
else:
    horizon = st.radio("Horizon", list(s.clinical.horizons_hours), index=list(s.clinical.horizons_hours).index(
        s.clinical.alert_horizon_hours), horizontal=True, format_func=lambda h: f"{h} h", key="monitoring_horizon")
    series = rules.monitoring_series(mon, horizon)
    if series.empty:
        st.info(f"No known {horizon} h outcome in these days yet.")
    for metric in series["metric"].unique():
        d = series[series["metric"] == metric]
        st.altair_chart(alt.Chart(d, title=metric).mark_line(point=True).encode(
            x=alt.X("day:T", title="day"), y=alt.Y("value:Q", title=None), color=alt.Color("model:N", title="model")),
            width="stretch")
    st.caption(f"Drift: PSI per slot group against the champion's training reference (bound {mon_cfg.psi_bound:g}); "
               f"calibration bound {mon_cfg.ece_bound:g}; days with fewer than {mon_cfg.min_readings} known outcomes "
               "are shown, never judged.")
    st.dataframe(rules.latest_deciles(mon, horizon), hide_index=True, placeholder=rules.MISSING, column_config={
        "predicted": st.column_config.NumberColumn("mean predicted", format="%.3f"),
        "observed": st.column_config.NumberColumn("observed rate", format="%.3f")})
