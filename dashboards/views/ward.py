"""Ward overview: every active patient, highest risk first, refreshed live."""

import pandas as pd
import streamlit as st

from vitalwatch.dashboard import auth, data, rules, ui

s = ui.settings()
sess = ui.require(s, "ward")
ids = auth.shows_identifiers(s, sess.user.role)
st.title("Ward overview")

registry = data.registry(ui.db(s), ids)
wards = sorted(registry["ward"].dropna().unique())
c1, c2, c3 = st.columns([2, 2, 1])
c1.multiselect("Ward", wards, key="ward_filter", placeholder="all wards")
c2.multiselect("Level", list(rules.LEVELS), key="level_filter", placeholder="all levels")
c3.toggle("Show discharged", key="ward_discharged")


def _colour(level: str) -> str:
    c = rules.LEVEL_COLOURS.get(level)
    return f"background-color: {c}; color: white; font-weight: 600" if c else ""


def _mark_colour(mark: str) -> str:
    level = next((lv for lv, m in rules.LEVEL_MARKS.items() if m == mark), None)
    return f"color: {rules.LEVEL_COLOURS[level]}" if level else ""


@st.fragment(run_every=s.dashboard.refresh_seconds)
def overview() -> None:
    ui.still_valid(s)
    status = ui.gold(s).status()
    df = rules.ward_overview(status, registry, wards=st.session_state.get("ward_filter") or None,
                             levels=st.session_state.get("level_filter") or None,
                             include_discharged=st.session_state.get("ward_discharged", False))
    ui.audit_view(s, sess, "ward", df.get("patient_id", ()), wards=tuple(st.session_state.get("ward_filter") or ()),
                  levels=tuple(st.session_state.get("level_filter") or ()))
    if not ids:
        df = rules.deidentify(df)
    counts = rules.level_counts(df)
    cols = st.columns(len(counts) + 1)
    cols[0].metric("Patients", len(df))
    for col, (lv, n) in zip(cols[1:], counts.items(), strict=True):
        col.metric(lv.title(), n)
    risks = [c for c in df.columns if c.startswith("risk_")]
    df = df.assign(mark=df["level"].map(rules.LEVEL_MARKS).fillna(""))
    show = ["mark", "patient_id", *(["name"] if ids else []), "ward", "level", *risks, "systolic", "diastolic",
            "heart_rate", "respiratory_rate", "spo2", "temperature", "news2", "minutes_since", "model_version"]
    show = [c for c in show if c in df.columns]
    cfg = {c: st.column_config.ProgressColumn(c.replace("risk_", "risk "), min_value=0.0, max_value=1.0, format="%.2f")
           for c in risks}
    cfg["minutes_since"] = st.column_config.NumberColumn("min since reading", format="%.0f")
    cfg["mark"] = st.column_config.TextColumn("", width="small", help="severity: ●●● critical … ○○○ low")
    cfg["news2"] = st.column_config.NumberColumn("NEWS2", format="%.0f")
    view = df[show].reset_index(drop=True)
    # cell styling is per cell in Python: for big wards the coloured mark column carries the level
    styled = (view.style.map(_colour, subset=["level"]).map(_mark_colour, subset=["mark"])
              if len(view) <= 2000 else view)
    event = st.dataframe(styled, hide_index=True, column_config=cfg, key="ward_table", on_select="rerun",
                         selection_mode="single-row", placeholder=rules.MISSING, height=min(38 + 35 * max(len(view), 1), 700))
    rows = event.selection.rows if event is not None else []
    if rows:
        st.session_state["patient"] = view.iloc[rows[0]]["patient_id"]
        if st.button(f"Open patient {st.session_state['patient']}", key="open_patient"):
            st.switch_page("views/patient.py")
    newest = status["updated_time"].max() if len(status) else None
    st.caption(f"{len(status)} patients in gold/patient_status · updated {ui.ago(None if pd.isna(newest) else newest)}"
               f" · refreshes every {s.dashboard.refresh_seconds:g} s")


overview()
