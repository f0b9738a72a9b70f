"""Errors as RFC 9457 problem details (``application/problem+json``) under ``/api/v1``, and as
FHIR ``OperationOutcome`` under ``/fhir``; never a stack trace or an internal message."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM = "application/problem+json"
FHIR_JSON = "application/fhir+json"
log = logging.getLogger("vitalwatch.api")
FHIR_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
              409: "conflict", 422: "invalid", 429: "throttled", 503: "transient"}


class Problem(Exception):
    """An error the client is told about: status, a short title and what to do."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra
        self.title = title or HTTPStatus(status).phrase


def unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = "Bearer" + (f' error="{error}"' if error else "")
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})


def response(request: Request, status: int, detail: str, title: str | None = None,
             headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    title = title or HTTPStatus(status).phrase
    if request.url.path == "/fhir" or request.url.path.startswith("/fhir/"):
        body = {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": FHIR_CODES.get(status, "processing"),
                           "diagnostics": detail}]}
        return JSONResponse(body, status, headers=headers, media_type=FHIR_JSON)
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": request.url.path, **extra}
    return JSONResponse(body, status, headers=headers, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    """Every error the app can answer with, in one shape."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, e: Problem) -> JSONResponse:
        return response(request, e.status, e.detail, e.title, e.headers, **e.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return response(request, e.status_code, str(e.detail), headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(x) for x in err.get("loc", ())], "msg": str(err.get("msg", ""))}
                  for err in e.errors()]
        where = "; ".join(f"{'.'.join(x['loc'])}: {x['msg']}" for x in errors[:5])
        return response(request, 422, f"the request is not valid: {where}", errors=errors)

    from pymongo.errors import PyMongoError

    @app.exception_handler(PyMongoError)
    async def _mongo(request: Request, e: PyMongoError) -> JSONResponse:
        log.error("MongoDB on %s %s: %s", request.method, request.url.path, type(e).__name__)
        return response(request, 503, "the database is not reachable; try again", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return response(request, 500, "an unexpected error; it has been logged")
