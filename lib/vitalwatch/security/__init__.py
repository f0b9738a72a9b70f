"""Who may see patient data and what they did: password rules, sign-in with throttling and
authentication events, the audit trail. Shared by the dashboard and (later) the REST API."""
