"""MongoDB ``deliveries``: one record per (alert, webhook channel), the notifier's memory.

Why a record per delivery, claimed before the first send: the Kafka offset of an alert event is
committed only once every delivery it needs is *final* here (``delivered`` or ``failed``), so
a notifier that stops or crashes re-reads the event, finds the record and

- skips a delivery already ``delivered`` or ``failed`` (a restart, a rebuilt consumer group, a
  replayed topic: no second page);
- resumes a ``pending`` one with its attempt count and back-off (nothing is lost).

The residual window, stated honestly: a POST that succeeded just before a crash, whose
``delivered`` was not yet written, is sent again after the restart (at-least-once for that
one request). Every request carries ``Idempotency-Key: <alert_id>`` so the receiver can drop
it. An attempt takes a *lease* (``owner``, ``lease_until``) on its record, so two notifiers
never send the same delivery at the same time.

``_id`` is ``"<alert_id>/<channel>"`` (channel names cannot contain ``/``). The notifier's
own account (``alerts.notifier.mongo_user``) may read and write this collection only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from vitalwatch.config import Settings

COLLECTION = "deliveries"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
FINAL = frozenset({DELIVERED, FAILED})
STATUSES = (PENDING, DELIVERED, FAILED)


def delivery_id(alert_id: str, channel: str) -> str:
    return f"{alert_id}/{channel}"


def now_utc() -> datetime:
    """MongoDB keeps milliseconds: times are truncated so a value read back compares equal."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def aware(t: datetime | None) -> datetime | None:
    """pymongo returns naive UTC datetimes unless the client is tz-aware."""
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


class DeliveryStore:
    """The state transitions of a delivery record (module doc)."""

    def __init__(self, db: Database) -> None:
        self.c: Collection = db[COLLECTION]

    def claim(self, alert_id: str, channel: str, *, level: str, patient_id: str | None,
              published: datetime) -> dict[str, Any]:
        """The record of this delivery, created ``pending`` if new (an existing one is untouched)."""
        key, now = delivery_id(alert_id, channel), now_utc()
        new = {"alert_id": alert_id, "channel": channel, "level": level, "patient_id": patient_id,
               "status": PENDING, "attempts": 0, "created_time": now, "published_time": published,
               "updated_time": now}
        for _ in range(2):  # two notifiers inserting at once: the loser reads the winner's record
            try:
                return self.c.find_one_and_update({"_id": key}, {"$setOnInsert": new}, upsert=True,
                                                  return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue
        return self.c.find_one({"_id": key}) or {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.c.find_one({"_id": key})

    def begin_attempt(self, key: str, owner: str, lease_s: float) -> dict[str, Any] | None:
        """Count an attempt and take the lease, if the delivery is still pending and nobody else
        holds a live lease; the updated record, else None."""
        now = now_utc()
        return self.c.find_one_and_update(
            {"_id": key, "status": PENDING,
             "$or": [{"owner": owner}, {"lease_until": {"$exists": False}}, {"lease_until": {"$lt": now}}]},
            {"$inc": {"attempts": 1}, "$min": {"first_attempt_time": now},
             "$set": {"owner": owner, "lease_until": now + timedelta(seconds=lease_s),
                      "last_attempt_time": now, "updated_time": now}},
            return_document=ReturnDocument.AFTER)

    def record_delivered(self, key: str, http_status: int | None) -> None:
        now = now_utc()
        self.c.update_one({"_id": key, "status": PENDING},
                          {"$set": {"status": DELIVERED, "delivered_time": now, "http_status": http_status,
                                    "updated_time": now}, "$unset": {"lease_until": "", "next_attempt_time": ""}})

    def record_retry(self, key: str, http_status: int | None, error: str, next_attempt: datetime) -> None:
        self.c.update_one({"_id": key, "status": PENDING},
                          {"$set": {"http_status": http_status, "last_error": error, "next_attempt_time": next_attempt,
                                    "updated_time": now_utc()}, "$unset": {"lease_until": ""}})

    def record_failed(self, key: str, http_status: int | None, error: str) -> None:
        now = now_utc()
        self.c.update_one({"_id": key, "status": PENDING},
                          {"$set": {"status": FAILED, "failed_time": now, "http_status": http_status,
                                    "last_error": error, "updated_time": now},
                           "$unset": {"lease_until": "", "next_attempt_time": ""}})


def delivery_counts(db: Database) -> dict[str, dict[str, int]]:
    """Deliveries by channel and status, e.g. ``{"pager": {"delivered": 12, "pending": 1,
    "failed": 0}}`` (for ``vitalwatch show`` and the dashboard's health page)."""
    out: dict[str, dict[str, int]] = {}
    for row in db[COLLECTION].aggregate([{"$group": {"_id": {"channel": "$channel", "status": "$status"},
                                                      "n": {"$sum": 1}}}]):
        key = row["_id"]
        per = out.setdefault(str(key.get("channel")), dict.fromkeys(STATUSES, 0))
        per[str(key.get("status"))] = int(row["n"])
    return out


def failed_deliveries(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The latest deliveries that failed for good (never silently dropped: shown to people)."""
    fields = {"alert_id": 1, "channel": 1, "level": 1, "attempts": 1, "last_error": 1, "failed_time": 1}
    return list(db[COLLECTION].find({"status": FAILED}, fields).sort("updated_time", -1).limit(limit))


def notifier_uri(settings: Settings, server_uri: str) -> str:
    """The notifier's own account on the server of ``server_uri`` (its password from
    ``password_env``, else the local secret file ``vitalwatch mongo init`` wrote)."""
    from vitalwatch.sinks.mongo import user_password, user_uri

    user = settings.alerts.notifier.mongo_user
    uri = user_uri(server_uri, user, user_password(settings, user), settings.mongo.database)
    return f"{uri}&serverSelectionTimeoutMS={settings.mongo.server_selection_timeout_ms}"


def notifier_db(settings: Settings, server_uri: str) -> Database:
    """The ``vitalwatch`` database as the notifier's account (a new client: close it with
    ``db.client.close()``)."""
    import pymongo

    return pymongo.MongoClient(notifier_uri(settings, server_uri), tz_aware=True)[settings.mongo.database]
