"""The API application: ``/api/v1`` (REST, OpenAPI at ``/api/v1/openapi.json``, docs at
``/api/v1/docs``) and ``/fhir`` (FHIR R4 reads)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from vitalwatch.api import alerts, fhir, patients, problems, system
from vitalwatch.api.context import Context
from vitalwatch.api.schemas import problems as problem_responses
from vitalwatch.config import Settings

PREFIX = "/api/v1"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY"}


def create_app(settings: Settings, db=None) -> FastAPI:
    """The app for ``settings`` (``db``: a MongoDB database to use instead of the API's account)."""
    from vitalwatch import __version__

    app = FastAPI(title="vitalwatch API", version=__version__,
                  description="Patients, observations, risk scores, alerts (and acknowledging them), the "
                              "champion model and pipeline health; FHIR R4 RiskAssessment and Flag under /fhir. "
                              "Sign in at /api/v1/token (OAuth2 password flow) and send the bearer token.",
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs", redoc_url=None)
    app.state.ctx = Context(settings, db)
    problems.install(app)
    v1 = APIRouter(prefix=PREFIX, responses=problem_responses(400, 401, 403, 404, 422, 429, 500, 503))
    v1.include_router(system.router)
    v1.include_router(patients.router)
    v1.include_router(alerts.router)
    app.include_router(v1)
    app.include_router(fhir.router)

    @app.middleware("http")
    async def _headers(request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    return app


def from_environment() -> FastAPI:
    """uvicorn's factory (``vitalwatch.api.app:from_environment``): settings from conf/ and the environment."""
    from vitalwatch.config import get_settings

    return create_app(get_settings())
