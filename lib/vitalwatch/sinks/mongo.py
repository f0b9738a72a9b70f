"""MongoDB: the operational views (``patients``, ``risk_scores``, ``alerts``, ``alert_acks``),
their roles and users, and the writes the pipeline makes through mongo-spark-connector.

**Security** is one definition in ``conf/base.yaml`` (``mongo.security``) applied by
``vitalwatch mongo init`` (idempotent: roles and users are created or updated) and rendered
as a mongosh script for ``docker/`` by :func:`render_script`:
- ``vitalwatch_writer`` — the pipeline: read/write the three operational collections;
- ``vitalwatch_clinician`` — read everything; acknowledge an alert = insert into
  ``alert_acks`` (``_id`` = alert id: one acknowledgement per alert); cannot change alerts,
  scores or the registry;
- ``vitalwatch_analyst`` — read-only, and only their views (:mod:`vitalwatch.sinks.analyst_views`):
  allow-listed fields, patients under a keyed pseudonym; never a collection itself;
- ``vitalwatch_dashboard`` — the Streamlit app's account: reads what the pages show and the
  dashboard's own users (bcrypt hashes), acknowledges alerts for its logged-in users;
- ``vitalwatch_notifier`` — the webhook notifier (``vitalwatch notify``): read and write its
  ``deliveries`` records (one per alert × webhook), nothing else;
- ``vitalwatch_admin`` — ``dbOwner`` of the database (``vitalwatch users create`` uses it).

``pipeline_progress`` is a capped collection: the running queries' progress events (the
dashboard's pipeline-health page), written by the pipeline user.
Passwords come from the environment variable each user names; on the local profile a
missing one is generated once into a 0600 file under the infra work dir, never into git."""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

from vitalwatch.config import MongoSecurityConfig, Settings
from vitalwatch.sinks import analyst_views

COLLECTIONS = ("patients", "risk_scores", "alerts", "alert_acks", "dashboard_users", "pipeline_progress",
               "deliveries", "audit", "sign_in_throttle")
ACK_NOTE_MAX = 1000
# Collection validators (``validationLevel: strict``, ``validationAction: error``): no account
# holds bypassDocumentValidation, so every writer is held to these shapes.
VALIDATORS: dict[str, dict[str, Any]] = {
    "alert_acks": {"$jsonSchema": {
        "bsonType": "object", "additionalProperties": False,
        "required": ["_id", "user", "role", "note", "acknowledged_time"],
        "properties": {"_id": {"bsonType": "string", "minLength": 1, "maxLength": 1024},
                       "user": {"bsonType": "string", "pattern": "^[a-z0-9][a-z0-9._-]{1,63}$"},
                       "role": {"bsonType": "string", "maxLength": 64},
                       "note": {"bsonType": "string", "maxLength": ACK_NOTE_MAX},
                       "acknowledged_time": {"bsonType": "date"}}}},
    "audit": {"$jsonSchema": {
        "bsonType": "object", "required": ["time", "user", "what"],
        "properties": {"time": {"bsonType": "date"}, "user": {"bsonType": "string", "maxLength": 128},
                       "what": {"bsonType": "string", "maxLength": 64},
                       "patients": {"bsonType": "array", "items": {"bsonType": "string"}}}}},
}
CAPPED = ("pipeline_progress",)
LEGACY_VIEWS = ("patients_deidentified",)  # replaced by the analysts' views: dropped by init
INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    "patients": [[("ward", 1)]],
    "risk_scores": [[("patient_id", 1), ("effective_time", -1)]],
    "alerts": [[("patient_id", 1), ("effective_time", -1)], [("ward", 1), ("level", 1), ("effective_time", -1)]],
    "alert_acks": [[("acknowledged_time", -1)]],
    "pipeline_progress": [[("query", 1), ("timestamp", -1)]],
    # the notifier's records: counts and lists by status (pending, failed), an alert's deliveries
    "deliveries": [[("status", 1), ("channel", 1), ("updated_time", -1)], [("alert_id", 1)]],
    "audit": [[("time", -1)], [("patients", 1), ("time", -1)], [("user", 1), ("time", -1)]],
}


def security(settings: Settings) -> MongoSecurityConfig:
    if settings.mongo.security is None:
        raise ValueError("mongo.security is not configured (conf/base.yaml)")
    return settings.mongo.security


def _secret_file(settings: Settings, user: str) -> Path:
    return settings.path(settings.infra.work_dir) / "mongo" / "users" / f"{user}.secret"


def user_password(settings: Settings, user: str, *, create: bool = False) -> str:
    """The user's password: its environment variable, else (local) the generated secret file."""
    spec = security(settings).users[user]
    if (env := spec.get("password_env")) and os.environ.get(env):
        return os.environ[env]
    f = _secret_file(settings, user)
    if f.exists():
        return f.read_text().strip()
    if not create:
        raise KeyError(f"no password for MongoDB user {user!r}: set ${spec.get('password_env')} "
                       f"or run `vitalwatch mongo init`")
    f.parent.mkdir(parents=True, exist_ok=True)
    pw = secrets.token_urlsafe(24)
    f.touch(mode=0o600)
    f.write_text(pw)
    return pw


def user_uri(server_uri: str, user: str, password: str, database: str) -> str:
    """A connection string for ``user`` (defined in ``database``) on the server of ``server_uri``,
    with the server URI's TLS options (``tls``/``ssl``, ``tlsCAFile``, …) kept: a client never
    falls back to plain text, and verifies the server against the same CA."""
    parts = urlsplit(server_uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    tls = [kv for kv in parts.query.split("&") if kv.split("=", 1)[0].lower().startswith(("tls", "ssl"))]
    return (f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{netloc}/"
            f"?authSource={database}&directConnection=true" + "".join(f"&{kv}" for kv in tls))


def pipeline_uri(settings: Settings, server_uri: str) -> str:
    """What the pipeline connects as: ``mongo.uri`` when configured (a cluster passes the
    writer's own URI), else the local server as the pipeline user; with
    ``mongo.server_selection_timeout_ms`` unless the URI sets its own."""
    if settings.mongo.uri:
        uri = settings.mongo.uri
    else:
        user = security(settings).pipeline_user
        uri = user_uri(server_uri, user, user_password(settings, user), settings.mongo.database)
    if "serverselectiontimeoutms=" in uri.lower():
        return uri
    parts = urlsplit(uri)
    sep = "&" if parts.query else ("?" if parts.path else "/?")
    return f"{uri}{sep}serverSelectionTimeoutMS={settings.mongo.server_selection_timeout_ms}"


def role_documents(settings: Settings) -> dict[str, dict[str, Any]]:
    """Role name → {privileges, roles} as MongoDB's createRole takes them."""
    db = settings.mongo.database
    out = {}
    for name, spec in security(settings).roles.items():
        privileges = [{"resource": {"db": db, "collection": c}, "actions": sorted(p["actions"])}
                      for p in spec.get("privileges", []) for c in p["collections"]]
        roles = [{"role": r, "db": db} for r in spec.get("builtin", [])]
        out[name] = {"privileges": privileges, "roles": roles}
    return out


def init(settings: Settings, admin_uri: str) -> dict[str, list[str]]:
    """Create or update collections, indexes, the analysts' views, roles and users."""
    import pymongo
    from pymongo.errors import OperationFailure

    client = pymongo.MongoClient(admin_uri, serverSelectionTimeoutMS=5000)
    db = client[settings.mongo.database]
    done: dict[str, list[str]] = {"collections": [], "roles": [], "users": []}
    existing = set(db.list_collection_names())
    for c in COLLECTIONS:
        if c not in existing:
            db.create_collection(c, **_create_options(settings, c))
        if c in VALIDATORS:
            db.command("collMod", c, validator=VALIDATORS[c], validationLevel="strict", validationAction="error")
        for keys in INDEXES.get(c, []):
            db[c].create_index(keys)
        done["collections"].append(c)
    _throttle_ttl(db, settings)
    for legacy in set(LEGACY_VIEWS) & existing:
        db.drop_collection(legacy)
    done["collections"] += analyst_views.ensure(db, settings)
    for name, doc in role_documents(settings).items():
        try:
            db.command("createRole", name, **doc)
        except OperationFailure as e:
            if e.code != 51002:  # role already exists
                raise
            db.command("updateRole", name, **doc)
        done["roles"].append(name)
    for user, spec in security(settings).users.items():
        pw = user_password(settings, user, create=True)
        roles = [{"role": spec["role"], "db": settings.mongo.database}]
        try:
            db.command("createUser", user, pwd=pw, roles=roles)
        except OperationFailure as e:
            if e.code != 51003:  # user already exists
                raise
            db.command("updateUser", user, pwd=pw, roles=roles)
        done["users"].append(user)
    client.close()
    return done


def _throttle_ttl(db, settings: Settings) -> None:
    """Sign-in failure counts expire ``window_minutes`` after their last failure."""
    from pymongo.errors import OperationFailure

    ttl = int(settings.dashboard.sign_in.window_minutes * 60)
    try:
        db.sign_in_throttle.create_index("updated_time", expireAfterSeconds=ttl, name="expire")
    except OperationFailure:  # the window changed: same index, new TTL
        db.command("collMod", "sign_in_throttle", index={"name": "expire", "expireAfterSeconds": ttl})


def _create_options(settings: Settings, collection: str) -> dict[str, Any]:
    if collection in CAPPED:
        return {"capped": True, "size": settings.dashboard.progress_collection_mb * 1024 * 1024}
    return {}


def render_script(settings: Settings) -> str:
    """The same definition as a mongosh script (``docker/mongo/init-security.js``); passwords
    are read from the users' environment variables inside the container."""
    dbname = settings.mongo.database
    lines = [
        "// Generated by `vitalwatch mongo script` from conf/base.yaml (mongo.security). Do not edit.",
        f"const vw = db.getSiblingDB({json.dumps(dbname)});",
        f"const options = {json.dumps({c: _create_options(settings, c) for c in COLLECTIONS})};",
        f"for (const c of {json.dumps(list(COLLECTIONS))}) {{",
        "  if (!vw.getCollectionNames().includes(c)) { vw.createCollection(c, options[c]); }",
        "}",
    ]
    for c, v in VALIDATORS.items():
        lines.append(f"vw.runCommand({{collMod: {json.dumps(c)}, validator: {json.dumps(v)}, "
                     "validationLevel: \"strict\", validationAction: \"error\"});")
    ttl = int(settings.dashboard.sign_in.window_minutes * 60)
    lines.append(f"vw.sign_in_throttle.createIndex({{updated_time: 1}}, {{name: \"expire\", expireAfterSeconds: {ttl}}});")
    for c, idx in INDEXES.items():
        for keys in idx:
            lines.append(f"vw.getCollection({json.dumps(c)}).createIndex({json.dumps(dict(keys))});")
    lines += analyst_views.script_lines(settings)
    for name, doc in role_documents(settings).items():
        lines += [
            f"if (vw.getRole({json.dumps(name)}) === null) {{",
            f"  vw.createRole({{role: {json.dumps(name)}, privileges: {json.dumps(doc['privileges'])}, roles: {json.dumps(doc['roles'])}}});",
            "} else {",
            f"  vw.updateRole({json.dumps(name)}, {{privileges: {json.dumps(doc['privileges'])}, roles: {json.dumps(doc['roles'])}}});",
            "}",
        ]
    for user, spec in security(settings).users.items():
        env = spec["password_env"]
        roles = json.dumps([{"role": spec["role"], "db": dbname}])
        lines += [
            f"if (!process.env.{env}) {{ throw new Error('set {env}'); }}",
            f"if (vw.getUser({json.dumps(user)}) === null) {{",
            f"  vw.createUser({{user: {json.dumps(user)}, pwd: process.env.{env}, roles: {roles}}});",
            "} else {",
            f"  vw.updateUser({json.dumps(user)}, {{pwd: process.env.{env}, roles: {roles}}});",
            "}",
        ]
    return "\n".join(lines) + "\n"


# -- registry and acknowledgements (pymongo; small, interactive operations) ------------------
def register_patients(db, patients: list[dict[str, Any]]) -> int:
    """Upsert registry entries (``_id`` = patient id); pipeline-written ``status`` is kept."""
    from pymongo import UpdateOne

    ops = [UpdateOne({"_id": p["_id"]}, {"$set": {k: v for k, v in p.items() if k != "_id"}}, upsert=True)
           for p in patients]
    return db.patients.bulk_write(ops).upserted_count if ops else 0


def care_teams(db, patient_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Ward and care team of each registered patient among ``patient_ids``."""
    cur = db.patients.find({"_id": {"$in": list(patient_ids)}}, {"ward": 1, "care_team": 1})
    return {d["_id"]: {"ward": d.get("ward"), "care_team": d.get("care_team") or {}} for d in cur}


def acknowledge(db, alert_id: str, user: str, note: str = "", *, role: str | None = None,
                source: str | None = None) -> bool:
    """Record that the signed-in ``user`` acknowledged the alert; False if it already was (first
    one wins); KeyError if there is no such alert. Called only with an identity the caller has
    checked (the dashboard's session, the CLI's sign-in): the application accounts are the only
    ones that may insert, and the collection's validator enforces the document's shape. Every
    call, first or not, is an audit record."""
    from pymongo.errors import DuplicateKeyError

    from vitalwatch.security import audit

    alert = db.alerts.find_one({"_id": alert_id}, {"patient_id": 1})
    if alert is None:
        raise KeyError(f"no alert {alert_id}")
    try:
        db.alert_acks.insert_one({"_id": alert_id, "user": user, "role": role or "", "note": note[:ACK_NOTE_MAX],
                                  "acknowledged_time": datetime.now(UTC)})
        first = True
    except DuplicateKeyError:
        first = False
    audit.record(db, user=user, role=role, what=audit.ACKNOWLEDGE, page="alerts",
                 patients=[alert.get("patient_id")], source=source, detail={"alert_id": alert_id, "first": first})
    return first


def trim_scores(db, patient_ids: list[str], keep: int) -> int:
    """Keep only the latest ``keep`` risk scores of each patient (the lake keeps them all)."""
    if not patient_ids:
        return 0
    stale = db.risk_scores.aggregate([
        {"$match": {"patient_id": {"$in": list(patient_ids)}}},
        {"$setWindowFields": {"partitionBy": "$patient_id", "sortBy": {"effective_time": -1},
                              "output": {"rank": {"$documentNumber": {}}}}},
        {"$match": {"rank": {"$gt": keep}}}, {"$project": {"_id": 1}},
    ])
    ids = [d["_id"] for d in stale]
    return db.risk_scores.delete_many({"_id": {"$in": ids}}).deleted_count if ids else 0


def connector_options(uri: str, database: str, collection: str) -> dict[str, str]:
    """mongo-spark-connector upserts by ``_id`` with ``$set`` (fields not written are kept)."""
    return {"connection.uri": uri, "database": database, "collection": collection,
            "operationType": "update", "idFieldList": "_id", "upsertDocument": "true"}
