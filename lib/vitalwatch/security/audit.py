"""The audit trail: every view of a patient's data, every acknowledgement and every sign-in,
appended to MongoDB ``audit`` (user, role, what, patients, when, source, detail).

Application accounts may only insert into it (and the dashboard read it for its admin page);
none may update or delete (``mongo.security.roles``), so the trail survives the apps that
write it. A record that cannot be written is logged and the page still shows: losing an
audit line must not hide a patient's vitals from the clinician treating them, and the log line
says whose view went unrecorded."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

AUDIT = "audit"
MAX_PATIENTS = 500  # a record names at most this many patients (a ward page); the count is kept
log = logging.getLogger("vitalwatch.audit")

# What a record says was done (the admin page filters on these).
SIGN_IN, SIGN_IN_FAILED, SIGN_IN_THROTTLED = "sign_in", "sign_in_failed", "sign_in_throttled"
SIGN_OUT, SESSION_ENDED = "sign_out", "session_ended"
VIEW, ACKNOWLEDGE = "view", "acknowledge"


def record(db, *, user: str, role: str | None, what: str, page: str | None = None,
           patients: list[str] | tuple[str, ...] = (), source: str | None = None,
           detail: dict[str, Any] | None = None, now: datetime | None = None) -> bool:
    """Append one record; False (and a log line) if MongoDB refused or was unreachable."""
    ids = sorted({str(p) for p in patients if p is not None})
    doc = {"time": now or datetime.now(UTC), "user": user, "role": role, "what": what, "page": page,
           "patients": ids[:MAX_PATIENTS], "patient_count": len(ids), "source": source,
           "detail": detail or {}}
    try:
        db[AUDIT].insert_one(doc)
        return True
    except Exception as e:  # the page goes on; the miss is logged
        log.error("audit record not written (user=%s what=%s page=%s patients=%d): %s",
                  user, what, page, len(ids), type(e).__name__)
        return False


def recent(db, *, user: str | None = None, patient: str | None = None, what: str | None = None,
           limit: int = 500) -> list[dict[str, Any]]:
    """The newest records first, filtered by user, patient and kind."""
    q: dict[str, Any] = {}
    if user:
        q["user"] = user
    if patient:
        q["patients"] = patient
    if what:
        q["what"] = what
    return list(db[AUDIT].find(q, {"_id": 0}).sort("time", -1).limit(limit))
