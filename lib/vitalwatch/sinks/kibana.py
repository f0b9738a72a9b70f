"""Kibana saved objects (``dashboards/kibana/*.ndjson``): import, and the fields they use
(checked against the index templates by the tests, so a renamed column breaks a test, not a
dashboard in production)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _walk_strings(x: Any) -> list[tuple[str, str]]:
    out = []
    if isinstance(x, dict):
        for k, v in x.items():
            if isinstance(v, str):
                out.append((k, v))
            out += _walk_strings(v)
    elif isinstance(x, list):
        for v in x:
            out += _walk_strings(v)
    return out


def used_fields(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Data view title → fields its visualizations aggregate on, filter by or use for time."""
    views = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    out: dict[str, set[str]] = {t: set() for t in views.values()}
    for o in objects:
        attrs = o["attributes"]
        if o["type"] == "index-pattern":
            if tf := attrs.get("timeFieldName"):
                out[attrs["title"]].add(tf)
            continue
        if o["type"] != "visualization":
            continue
        ref = next(r["id"] for r in o.get("references", []) if r["type"] == "index-pattern")
        vis = json.loads(attrs["visState"])
        fields = {v for k, v in _walk_strings(vis) if k == "field"}
        search = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
        query = search.get("query", {}).get("query", "")
        fields |= set(re.findall(r"([A-Za-z_][\w.]*)\s*:", query))
        out[views[ref]] |= fields
    return out


def import_saved_objects(url: str, path: Path, timeout_s: float = 60) -> dict[str, Any]:
    """POST the ndjson to Kibana's saved-objects import API (overwrite: idempotent)."""
    with path.open("rb") as f:
        r = requests.post(f"{url.rstrip('/')}/api/saved_objects/_import", params={"overwrite": "true"},
                          headers={"kbn-xsrf": "vitalwatch"}, files={"file": (path.name, f, "application/ndjson")},
                          timeout=timeout_s)
    r.raise_for_status()
    return r.json()
