"""Analysts' MongoDB views: allow-listed fields, patients under a keyed pseudonym.

Why views and not a copy: the analysts' account (``vitalwatch_analyst``) may ``find`` on these
views only — never on ``patients``, ``risk_scores`` or ``alerts`` — and a view is always
current. Each view (``mongo.security.analyst_views``) keeps only the fields listed for it and
replaces the patient id by ``patient`` = ``anon-<64-bit hash of key ‖ id>``: the same patient
has the same pseudonym in every view (scores and alerts can be joined), and without the key
nobody can go from a known id to its pseudonym.

The key is 32 random bytes in the collection ``pseudonym_key``, which no application account
can read; the views join it with ``$lookup``, so the key is not in any view definition (an
analyst's ``explain`` shows the pipeline, never the key). It is created once, by
``vitalwatch mongo init`` or the compose init script; replacing it re-pseudonymises every
patient."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from vitalwatch.config import AnalystView, Settings

KEY_COLLECTION = "pseudonym_key"
KEY_ID = "current"


def views(settings: Settings) -> dict[str, AnalystView]:
    sec = settings.mongo.security
    return dict(sec.analyst_views) if sec else {}


def pseudonym_expr(id_field: str) -> dict[str, Any]:
    """The aggregation expression of a patient's pseudonym (``$_k`` holds the key document)."""
    keyed = {"$concat": [{"$first": "$_k.key"}, {"$toString": f"${id_field}"}]}
    return {"$concat": ["anon-", {"$toString": {"$toHashedIndexKey": keyed}}]}


def pipeline(view: AnalystView) -> list[dict[str, Any]]:
    """The view's aggregation pipeline: join the key, keep ``patient`` and the allow-list."""
    return [{"$lookup": {"from": KEY_COLLECTION, "pipeline": [{"$match": {"_id": KEY_ID}}, {"$limit": 1}],
                         "as": "_k"}},
            {"$project": {"_id": 0, "patient": pseudonym_expr(view.id_field), **dict.fromkeys(view.fields, 1)}}]


def ensure(db, settings: Settings) -> list[str]:
    """Create the key (once) and create or update every view; the views' names."""
    from pymongo.errors import DuplicateKeyError

    with contextlib.suppress(DuplicateKeyError):  # kept: a new key would give every patient a new pseudonym
        db[KEY_COLLECTION].insert_one({"_id": KEY_ID, "key": secrets.token_hex(32)})
    existing = set(db.list_collection_names())
    for name, v in views(settings).items():
        cmd = "collMod" if name in existing else "create"
        db.command(cmd, name, viewOn=v.source, pipeline=pipeline(v))
    return list(views(settings))


def script_lines(settings: Settings) -> list[str]:
    """The same, as mongosh lines for ``docker/mongo/init-security.js`` (``vw`` is the database)."""
    import json

    lines = [f"if (vw.getCollection({json.dumps(KEY_COLLECTION)}).countDocuments({{_id: {json.dumps(KEY_ID)}}}) === 0) {{",
             f"  vw.getCollection({json.dumps(KEY_COLLECTION)}).insertOne({{_id: {json.dumps(KEY_ID)}, "
             "key: require('crypto').randomBytes(32).toString('hex')});",
             "}"]
    for name, v in views(settings).items():
        p = json.dumps(pipeline(v))
        lines += [f"if (vw.getCollectionNames().includes({json.dumps(name)})) {{",
                  f"  vw.runCommand({{collMod: {json.dumps(name)}, viewOn: {json.dumps(v.source)}, pipeline: {p}}});",
                  "} else {",
                  f"  vw.createView({json.dumps(name)}, {json.dumps(v.source)}, {p});",
                  "}"]
    return lines
