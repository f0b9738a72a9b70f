"""The champion crisis-risk model: version, held-out metrics and calibration, from MLflow."""

import streamlit as st

from vitalwatch.dashboard import data, ui

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
c1, c2, c3 = st.columns(3)
c1.metric("Champion", f"{info.name} v{info.version}")
c2.metric("Registered", f"{info.created:%Y-%m-%d %H:%M} UTC" if info.created else "—")
c3.metric("Alias", s.models.champion_alias)
st.caption(f"MLflow run {info.run_id}")
if info.tags:
    st.json(info.tags, expanded=False)
st.subheader("Held-out metrics")
if info.metrics is None:
    st.info("This version has no evaluation table.")
else:
    st.dataframe(info.metrics, hide_index=True)
st.subheader("Calibration")
if info.reliability_png is None:
    st.info("This version has no calibration plot.")
else:
    st.image(info.reliability_png, caption="Reliability: mean predicted risk vs observed rate, per horizon")
