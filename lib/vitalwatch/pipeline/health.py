"""Where an application's stage health is written, and read back by people.

Two places, because either may be what is down: a JSON file per application under
``<infra.work_dir>/pipeline/health/`` (read by ``vitalwatch infra status`` and ``show``, on
the machine that runs it), and records in MongoDB ``pipeline_progress`` beside the progress
events (``kind: "health"``; the dashboard's pipeline-health page), sent through the progress
recorder's queue so a MongoDB outage never blocks a stage."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitalwatch.config import Settings
from vitalwatch.infra.process import pid_alive
from vitalwatch.pipeline.supervisor import StageHealth


def health_dir(settings: Settings) -> Path:
    return settings.path(settings.infra.work_dir) / "pipeline" / "health"


def write_file(settings: Settings, app: str, health: list[StageHealth]) -> Path:
    """Replace ``<app>.json`` atomically (a reader never sees half a file)."""
    d = health_dir(settings)
    d.mkdir(parents=True, exist_ok=True)
    doc = {"app": app, "pid": os.getpid(), "updated": datetime.now(UTC).isoformat(),
           "stages": [{**h.record(), "failing_since": h.failing_since.isoformat() if h.failing_since else None}
                      for h in health]}
    tmp = d / f".{app}.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(d / f"{app}.json")
    return d / f"{app}.json"


def mongo_records(app: str, health: list[StageHealth]) -> list[dict[str, Any]]:
    """Health records for ``pipeline_progress`` (``query`` is the stage, as in progress events)."""
    now = datetime.now(UTC)
    return [{"kind": "health", "app": app, "query": h.stage, "timestamp": now, **h.record()} for h in health]


def reporter(settings: Settings, app: str, enqueue: Callable[[list[dict[str, Any]]], None] | None
             ) -> Callable[[list[StageHealth]], None]:
    """The supervisor's ``on_change``: the file always, MongoDB when a recorder runs."""
    def report(health: list[StageHealth]) -> None:
        write_file(settings, app, health)
        if enqueue is not None:
            enqueue(mongo_records(app, health))
    return report


def read_all(settings: Settings) -> list[dict[str, Any]]:
    """Every application's last health file, with ``running`` (its process is alive here)."""
    d = health_dir(settings)
    out = []
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        doc["running"] = pid_alive(doc.get("pid"))
        out.append(doc)
    return out


def lines(settings: Settings) -> list[str]:
    """One line per running application: its degraded stages, else "ok"."""
    out = []
    for doc in read_all(settings):
        if not doc["running"]:
            out.append(f"{doc['app']}: not running (last seen {doc['updated'][:19]} UTC)")
            continue
        bad = [s["line"] for s in doc["stages"] if s["state"] == "degraded"]
        out.append(f"{doc['app']}: " + ("; ".join(bad) if bad else f"ok ({len(doc['stages'])} stages)"))
    return out
