"""Where configuration comes from: the YAML layers and the paths they live under.

Why layered: one set of defaults for every deployment (the models' field defaults, documented
in docs/configuration.md); ``conf/base.yaml`` for what is kept as data (access control); a
profile (``conf/<profile>.yaml``) says what differs on a cluster; the environment carries
secrets and per-host endpoints that never belong in git.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

ENV_PREFIX = "VITALWATCH__"
OVERLAY_ENV = "VITALWATCH_CONFIG_OVERLAY"


def project_root() -> Path:
    """The directory holding ``conf/``: $VITALWATCH_HOME, else the nearest ancestor of the
    working directory or of this package that has ``conf/base.yaml``."""
    if home := os.environ.get("VITALWATCH_HOME"):
        return Path(home).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for d in (start, *start.parents):
            if (d / "conf" / "base.yaml").is_file():
                return d
    return Path.cwd()


def conf_dir() -> Path:
    """Where the YAML files live; $VITALWATCH_CONF_DIR wins (spark-submit ships conf/ there)."""
    if d := os.environ.get("VITALWATCH_CONF_DIR"):
        return Path(d).resolve()
    return project_root() / "conf"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml_layers(profile: str | None = None) -> dict[str, Any]:
    """base.yaml deep-merged with the profile's file (if it exists), then the overlay."""
    d = conf_dir()
    base_file = d / "base.yaml"
    if not base_file.is_file():
        raise FileNotFoundError(f"vitalwatch configuration not found: {base_file}")
    data = yaml.safe_load(base_file.read_text()) or {}
    profile = profile or os.environ.get("VITALWATCH_PROFILE", "local")
    prof_file = d / f"{profile}.yaml"
    if prof_file.is_file():
        data = _deep_merge(data, yaml.safe_load(prof_file.read_text()) or {})
    elif profile != "local":
        raise FileNotFoundError(f"profile {profile!r} has no file {prof_file}")
    overlay = os.environ.get(OVERLAY_ENV)
    if overlay:  # a parent process's exact settings, for the applications it starts
        data = _deep_merge(data, yaml.safe_load(Path(overlay).read_text()) or {})
    data["profile"] = profile
    return data


class YamlSource(PydanticBaseSettingsSource):
    """Feeds the merged YAML layers to pydantic-settings below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], profile: str | None) -> None:
        super().__init__(settings_cls)
        self._data = load_yaml_layers(profile)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data
