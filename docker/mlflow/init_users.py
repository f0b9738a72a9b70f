"""mlflow-init (docker/compose.yaml): the MLflow users of the stack, idempotent — every
``docker compose up`` runs it again and it converges to the same state.

Each service that talks to MLflow signs in as its own user (MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD in its environment, which the MLflow client reads natively):

- ``vitalwatch_trainer`` registers the models, so it manages them (MANAGE: a creator's right;
  granted here too once a model exists, e.g. after a restore);
- ``vitalwatch_pipeline`` (the alert app loads the champion), ``vitalwatch_dashboard`` (the
  champion's page) and ``vitalwatch_api`` (``/api/v1/model``) only read them (READ): none can
  register a version or move ``champion``.

A user that exists gets the password from the environment again (so changing it in docker/.env
and re-running takes effect). Runs as the admin (MLFLOW_TRACKING_USERNAME/PASSWORD); passwords
come from the environment, never from argv, and are never printed."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

# user -> (the environment variable holding its password, its permission on the registered models)
USERS = {
    "vitalwatch_trainer": ("VITALWATCH_MLFLOW_TRAINER_PASSWORD", "MANAGE"),
    "vitalwatch_pipeline": ("VITALWATCH_MLFLOW_PIPELINE_PASSWORD", "READ"),
    "vitalwatch_dashboard": ("VITALWATCH_MLFLOW_DASHBOARD_PASSWORD", "READ"),
    "vitalwatch_api": ("VITALWATCH_MLFLOW_API_PASSWORD", "READ"),
}


def _code(e: Exception) -> str:
    return str(getattr(e, "error_code", ""))


def ensure_user(auth: Any, name: str, password: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        auth.get_user(name)
    except MlflowException as e:
        if _code(e) != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(name, password)
        return "created"
    auth.update_user_password(name, password)
    return "password set"


def grant(auth: Any, user: str, model: str, permission: str) -> None:
    """``permission`` for ``user`` on registered model ``model`` (replacing another level): the
    per-user grant API of recent MLflow, else the per-model one of older releases."""
    from mlflow.exceptions import MlflowException

    if hasattr(auth, "grant_user_permission"):
        try:
            auth.grant_user_permission(user, "registered_model", model, permission)
        except MlflowException as e:
            if _code(e) != "RESOURCE_ALREADY_EXISTS":
                raise
            auth.revoke_user_permission(user, "registered_model", model)
            auth.grant_user_permission(user, "registered_model", model, permission)
        return
    try:
        auth.create_registered_model_permission(model, user, permission)
    except MlflowException as e:
        if _code(e) != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.update_registered_model_permission(model, user, permission)


def model_exists(registry: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        registry.get_registered_model(name)
    except MlflowException as e:
        if _code(e) != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    return True


def setup(auth: Any, registry: Any, env: dict[str, str], models: list[str], say: Any = print) -> None:
    for user, (password_env, permission) in USERS.items():
        say(f"{user}: {ensure_user(auth, user, env[password_env])}")
        for model in models:
            # a model's creator gets MANAGE when it registers it; granting MANAGE before the model
            # exists would collide with that on MLflow releases whose grants are not upserts
            if permission == "MANAGE" and not model_exists(registry, model):
                say(f"  {model}: {permission} once it registers the model")
                continue
            grant(auth, user, model, permission)
            say(f"  {model}: {permission}")


def wait_ready(registry: Any, attempts: int = 60, wait_s: float = 5.0) -> None:
    for attempt in range(1, attempts + 1):
        try:
            registry.search_registered_models(max_results=1)
            return
        except Exception:  # the server still starting
            if attempt == attempts:
                raise
            time.sleep(wait_s)


def main() -> int:
    env = dict(os.environ)
    missing = [n for n in ["MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                           *(p for p, _ in USERS.values())] if not env.get(n)]
    if missing:
        raise SystemExit(f"mlflow-init: set {', '.join(missing)} (docker/env.example)")
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    from vitalwatch.config import Settings

    m = Settings().models
    registry = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    wait_ready(registry)
    setup(get_app_client("basic-auth", tracking_uri=env["MLFLOW_TRACKING_URI"]), registry, env,
          [m.risk_model_name, m.triage_model_name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
