"""``/api/v1/token`` (OAuth2 password flow), ``/model`` (the champion and its held-out
metrics) and ``/health`` (each streaming stage's rates, lag and degraded state)."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from vitalwatch.api import tokens
from vitalwatch.api.context import CallerDep, context
from vitalwatch.api.paging import json_response, records
from vitalwatch.api.problems import Problem
from vitalwatch.api.schemas import Health, ModelInfo, Token
from vitalwatch.dashboard import auth, rules

router = APIRouter(tags=["system"])
MODEL_CACHE_S = 60.0


@router.post("/token", response_model=Token, summary="Sign in (OAuth2 password flow): a short-lived bearer token",
             responses={401: {"description": "invalid username or password"},
                        429: {"description": "too many failures: wait Retry-After seconds"}})
def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Response:
    ctx = context(request)
    source = request.client.host if request.client else None
    try:
        user, out = auth.sign_in(ctx.db, ctx.s, form.username, form.password, source)
    except Problem:
        raise
    except Exception as e:  # the users' store is unreachable: nobody signs in
        raise Problem(503, "sign-in is not available right now; try again", headers={"Retry-After": "5"}) from e
    if out.reason == "throttled":
        wait = max(1, math.ceil(out.retry_after_s))
        raise Problem(429, f"too many failed sign-ins; try again in {wait} s", headers={"Retry-After": str(wait)})
    if user is None:
        raise Problem(401, "invalid username or password", headers={"WWW-Authenticate": "Bearer"},
                      error="invalid_grant")  # RFC 6749's code, for OAuth2 clients
    token, life = tokens.issue(ctx.token_key, ctx.s.api, user.username, user.role)
    return json_response({"access_token": token, "token_type": "bearer", "expires_in": life, "role": user.role})


class _ModelCache:
    def __init__(self) -> None:
        self.at, self.value, self.lock = -1e9, None, threading.Lock()

    def get(self, settings) -> dict[str, Any]:
        with self.lock:
            if self.value is not None and time.monotonic() - self.at < MODEL_CACHE_S:
                return self.value
        from vitalwatch.dashboard.data import champion

        ch = champion(settings)
        value = {"name": ch.name, "version": ch.version, "alias": settings.models.champion_alias,
                 "run_id": ch.run_id, "created": ch.created.isoformat() if ch.created else None,
                 "tags": {str(k): str(v) for k, v in ch.tags.items()},
                 "metrics": records(ch.metrics) if ch.metrics is not None else []}
        with self.lock:
            self.at, self.value = time.monotonic(), value
        return value


_models = _ModelCache()


@router.get("/model", response_model=ModelInfo, summary="The champion risk model and its held-out metrics")
def model(c: CallerDep) -> Response:
    c.need("model")
    try:
        info = _models.get(c.ctx.s)
    except Exception as e:  # the registry is down: say so, do not guess
        raise Problem(503, "the model registry is not reachable; try again", headers={"Retry-After": "10"}) from e
    if info["version"] is None:
        raise Problem(404, f"no {info['alias']} version of {info['name']} is registered")
    return json_response(info)


@router.get("/health", response_model=Health, summary="Each streaming stage: rates, Kafka lag, degraded state")
def health(c: CallerDep) -> Response:
    c.need("health")
    from vitalwatch.dashboard.data import progress

    try:
        table = rules.pipeline_health(progress(c.ctx.db, hours=1.0))
    except Exception as e:
        raise Problem(503, "the pipeline's progress store is not reachable; try again",
                      headers={"Retry-After": "5"}) from e
    table = table.assign(health=table["health"].fillna("ok").astype(str))
    table["degraded"] = table["health"].str.startswith("degraded")
    if not c.identifiers:  # an error's text can quote a record; the state is enough
        table["health"] = table["degraded"].map({True: "degraded", False: "ok"})
    stages = records(table.drop(columns=["timestamp"], errors="ignore"))
    status = "unknown" if not stages else "degraded" if table["degraded"].any() else "ok"
    return json_response({"status": status, "checked_time": datetime.now(UTC).isoformat(), "stages": stages})
