"""Users (admin): who may log in, with which role; create, reset, deactivate."""

import streamlit as st

from vitalwatch.dashboard import auth, rules, ui

s = ui.settings()
sess = ui.require(s, "users")
ui.require(s, "manage_users")
st.title("Users")
st.caption("The app's MongoDB account can only read users; changes go through `vitalwatch users` "
           "(the database administrator's account).")
users = auth.list_users(ui.db(s))
st.dataframe([{k: u.get(k) for k in ("_id", "display_name", "role", "active", "created_time", "updated_time")}
              for u in users], hide_index=True, placeholder=rules.MISSING)
st.code("vitalwatch users create USERNAME --role clinician|nurse|analyst|admin\n"
        "vitalwatch users deactivate USERNAME", language="bash")
