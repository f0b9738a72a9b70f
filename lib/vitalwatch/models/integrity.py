"""What the registry's models are made of, and who moved their aliases.

Why a checksum: the scoring app loads whatever the ``champion`` alias points at from the
artifact store. A file changed there after registration (by accident or on purpose) would
change every patient's risk without any trace. So every registered version is *sealed*: the
SHA-256 of its artifact files (each file's path and digest, in path order) is recorded as the
version's tag ``artifacts_sha256`` when it is registered, and a loader refuses a version whose
files no longer match, or that was never sealed (:class:`ModelIntegrityError`).

Why an alias log: moving ``champion`` changes what every ward is scored with. Every move made
through vitalwatch (:func:`move_alias`) is logged and appended to the registered model's tag
``alias_log`` (the latest :data:`ALIAS_LOG_KEEP` moves: alias, from, to, when, by whom, why);
:func:`unlogged_alias` tells a loader when an alias points somewhere no logged move put it
(moved outside vitalwatch, e.g. in the MLflow UI)."""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitalwatch.config import Settings

log = logging.getLogger(__name__)
CHECKSUM_TAG = "artifacts_sha256"
ALIAS_LOG_TAG = "alias_log"
ALIAS_LOG_KEEP = 25  # MLflow keeps tag values up to 5,000 characters
CLIENT_FILES = frozenset({"registered_model_meta"})  # written by the download, not part of the model


class ModelIntegrityError(RuntimeError):
    """A registered version whose artifacts do not match its seal, or that has none."""


def manifest_digest(root: Path) -> str:
    """SHA-256 over every file under ``root``: ``<relative path>\\t<sha256>\\n`` in path order
    (a renamed, added, removed or changed file changes it) — but ``registered_model_meta``,
    which the MLflow client writes into a download (the name and version it was asked for)."""
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file() and q.relative_to(root).as_posix() not in CLIENT_FILES):
        d = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                d.update(chunk)
        h.update(f"{p.relative_to(root).as_posix()}\t{d.hexdigest()}\n".encode())
    return h.hexdigest()


def _download(name: str, version: str, dst: Path) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)))


def seal(settings: Settings, name: str, version: str) -> str:
    """Record the checksum of version ``version``'s artifacts as it is now; the checksum."""
    from vitalwatch.models.registry import client

    c = client(settings)
    with tempfile.TemporaryDirectory(prefix="vitalwatch-seal-") as tmp:
        digest = manifest_digest(_download(name, version, Path(tmp)))
    c.set_model_version_tag(name, version, CHECKSUM_TAG, digest)
    log.info("model %s version %s sealed: %s %s", name, version, CHECKSUM_TAG, digest)
    return digest


def verified_download(settings: Settings, name: str, version: str, dst: Path) -> Path:
    """Download version ``version`` into ``dst`` and check it against its seal (raises
    :class:`ModelIntegrityError` on a mismatch or a missing seal); the local model directory."""
    from vitalwatch.models.registry import client

    want = client(settings).get_model_version(name, version).tags.get(CHECKSUM_TAG)
    if not want:
        raise ModelIntegrityError(
            f"model {name} version {version} has no {CHECKSUM_TAG} tag (registered before models were sealed, "
            f"or sealed outside vitalwatch): refusing it. Retrain (`vitalwatch train`), or check its files and "
            f"`vitalwatch models seal {version}`")
    local = _download(name, version, dst)
    got = manifest_digest(local)
    if got != want:
        raise ModelIntegrityError(
            f"model {name} version {version}: its artifacts do not match the checksum recorded at registration "
            f"({CHECKSUM_TAG} {want[:12]}…, files now {got[:12]}…): refusing it")
    return local


# -- aliases ------------------------------------------------------------------------------------
def actor() -> str:
    """Who is moving an alias: the MLflow user when one is configured, else the OS user."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def alias_history(settings: Settings, name: str) -> list[dict[str, Any]]:
    """The logged moves of ``name``'s aliases, oldest first."""
    from mlflow.exceptions import MlflowException

    from vitalwatch.models.registry import client

    try:
        raw = client(settings).get_registered_model(name).tags.get(ALIAS_LOG_TAG, "[]")
    except MlflowException:
        return []
    try:
        moves = json.loads(raw)
    except ValueError:
        return []
    return moves if isinstance(moves, list) else []


def move_alias(settings: Settings, name: str, alias: str, version: str, reason: str) -> dict[str, Any] | None:
    """Point ``name@alias`` at ``version``; log the move and append it to the alias log. The
    move (None when the alias already pointed there)."""
    from mlflow.exceptions import MlflowException

    from vitalwatch.models.registry import client

    c = client(settings)
    try:
        before: str | None = str(c.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        before = None
    if before == str(version):
        return None
    c.set_registered_model_alias(name, alias, version)
    move = {"alias": alias, "from": before, "to": str(version), "by": actor(),
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": reason[:200]}
    moves = [*alias_history(settings, name), move][-ALIAS_LOG_KEEP:]
    while len(text := json.dumps(moves, separators=(",", ":"))) > 5000 and len(moves) > 1:
        moves = moves[1:]
    c.set_registered_model_tag(name, ALIAS_LOG_TAG, text)
    log.warning("model alias moved: %s@%s %s → %s by %s (%s)", name, alias, before or "(none)", version,
                move["by"], move["reason"])
    return move


def unlogged_alias(settings: Settings, name: str, alias: str, version: str) -> bool:
    """True when ``name@alias`` points at ``version`` but no logged move put it there last."""
    last = [m for m in alias_history(settings, name) if m.get("alias") == alias]
    return not last or str(last[-1].get("to")) != str(version)
