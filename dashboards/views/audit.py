"""Audit trail (admin): who signed in, who saw which patient's data on which page, who
acknowledged which alert — newest first, from MongoDB ``audit`` (append-only for every
application account)."""

import streamlit as st

from vitalwatch.dashboard import rules, ui
from vitalwatch.security import audit

s = ui.settings()
ui.require(s, "audit")
st.title("Audit trail")
c1, c2, c3 = st.columns(3)
user = c1.text_input("User", key="audit_user").strip().lower() or None
patient = c2.text_input("Patient", key="audit_patient").strip() or None
kinds = [audit.VIEW, audit.ACKNOWLEDGE, audit.SIGN_IN, audit.SIGN_IN_FAILED, audit.SIGN_IN_THROTTLED,
         audit.SIGN_OUT, audit.SESSION_ENDED]
what = c3.selectbox("What", [None, *kinds], key="audit_what", format_func=lambda k: k or "everything")
rows = audit.recent(ui.db(s), user=user, patient=patient, what=what, limit=1000)
st.caption(f"{len(rows)} records (at most 1,000, newest first)")
st.dataframe([{"time": r["time"], "user": r["user"], "role": r.get("role") or "", "what": r["what"],
               "page": r.get("page") or "", "patients": r.get("patient_count", 0),
               "first patients": ", ".join(r.get("patients", [])[:5]), "source": r.get("source") or "",
               "detail": ", ".join(f"{k}={v}" for k, v in (r.get("detail") or {}).items())}
              for r in rows], hide_index=True, key="audit_table", placeholder=rules.MISSING)
