"""The REST and FHIR API: what EHRs and other applications integrate with (``vitalwatch api``).

Reads the gold and silver Delta tables through delta-rs (no JVM), cached per table version,
and MongoDB (registry, acknowledgements, users, progress) through its own account; signs in the
dashboard's users and enforces the dashboard's roles; every patient-level read and every
acknowledgement is an audit record. See docs/api.md."""
