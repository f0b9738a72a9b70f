"""Alert events (docs/requirements.md §4): the alert policies, whom alerts reach and how webhooks are sent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from vitalwatch.config.sources import project_root

ALERT_LEVELS = ("MEDIUM", "HIGH", "CRITICAL")
_THRESHOLDS = {"CRITICAL": 0.60, "HIGH": 0.40, "MEDIUM": 0.20}  # the source project's, on risk_6h


class WebhookConfig(BaseModel):
    """One webhook channel of the notifier (``vitalwatch notify``, lib/vitalwatch/alerts/).

    Secure by default, checked here at load so a bad endpoint fails before anything is sent:
    https only (plain http only to a loopback host), and every body is signed, so an endpoint
    whose secret cannot be found is refused rather than sent unsigned alerts. The secret comes
    from ``secret`` (never commit one), else the environment variable ``secret_env`` (default
    ``VITALWATCH_WEBHOOK_<NAME>_SECRET``), else the file ``secret_file``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="The channel's id, which keys its records in MongoDB deliveries.")
    url: str = Field(description="The endpoint: https, or plain http only to 127.0.0.0/8, ::1 or localhost; redirects are never followed.")
    levels: list[Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]] = Field(["CRITICAL", "HIGH"], description="Levels of the alert events sent to it.")
    timeout_s: float = Field(5, gt=0, le=120, description="Connect and read timeout of one attempt.")
    secret: SecretStr | None = Field(None, description="The signing secret itself: never commit one; prefer the environment or a file.")
    secret_env: str | None = Field(None, description="The environment variable holding the secret; null: VITALWATCH_WEBHOOK_<NAME>_SECRET.")
    secret_file: str | None = Field(None, description="A file holding the secret, if the environment has none.")

    @field_validator("url")
    @classmethod
    def _safe_url(cls, v: str) -> str:
        from vitalwatch.alerts.urls import require_safe_url

        require_safe_url(v)
        return v

    @property
    def default_secret_env(self) -> str:
        return f"VITALWATCH_WEBHOOK_{self.name.upper().replace('-', '_')}_SECRET"

    @model_validator(mode="after")
    def _resolve_secret(self) -> WebhookConfig:
        if self.secret is None:
            env = self.secret_env or self.default_secret_env
            if value := os.environ.get(env, "").strip():
                self.secret = SecretStr(value)
            elif self.secret_file:
                f = Path(os.path.expanduser(self.secret_file))
                f = f if f.is_absolute() else project_root() / f
                if not f.is_file():
                    raise ValueError(f"webhook {self.name!r}: secret_file {f} does not exist")
                self.secret = SecretStr(f.read_text().strip())
        if self.secret is None:
            raise ValueError(f"webhook {self.name!r} has no signing secret: set ${self.secret_env or self.default_secret_env} "
                             "(or secret_file); unsigned webhooks are refused")
        if len(self.secret.get_secret_value()) < 16:
            raise ValueError(f"webhook {self.name!r}: the signing secret must have at least 16 characters")
        return self

    def secret_bytes(self) -> bytes:
        assert self.secret is not None  # resolved at load (see _resolve_secret)
        return self.secret.get_secret_value().encode()


class NotifierConfig(BaseModel):
    """The notifier: a consumer of ``vitals.alerts`` delivering webhooks (docs/notifications.md)."""

    consumer_group: str = Field("vitalwatch-notifier", description="Its own Kafka consumer group on the alerts topic (granted in kafka.security.acls.notifier).")
    mongo_user: str = Field("vitalwatch_notifier", description="Its own MongoDB account (mongo.security.users): read and write `deliveries`, nothing else.")
    workers_per_channel: int = Field(4, ge=1, le=64, description="Concurrent attempts per webhook, so a slow one never holds up another.")
    backoff_base_s: float = Field(1.0, gt=0, description="After a 429, 5xx, timeout or connection error, retry n waits this × 2^(n-1), jittered ...")
    backoff_max_s: float = Field(60.0, gt=0, description="... at most this.")
    retry_after_max_s: float = Field(300.0, ge=0, description="A receiver's Retry-After is honoured up to this.")
    max_attempts: int | None = Field(None, ge=1, description="Give up after this many attempts; null: max_age_s decides.")
    max_age_s: float = Field(3600.0, gt=0, description="Give up once the alert is this old: `failed` in deliveries, logged as an error.")
    lease_margin_s: float = Field(10.0, gt=0, description="An attempt holds its delivery for 2 × the webhook's timeout_s plus this.")
    max_pending_events: int = Field(10_000, ge=1, description="Consumption pauses while this many alert events are unfinished.")
    commit_interval_s: float = Field(1.0, gt=0, description="How often Kafka offsets are committed, only past events whose deliveries are all final.")
    stall_s: float = Field(30, gt=0, description="Events waiting and none read for this long: a new consumer is created.")
    signature_tolerance_s: float = Field(300.0, gt=0, description="Receivers should refuse an X-Vitalwatch-Timestamp older than this.")

    @model_validator(mode="after")
    def _backoff_order(self) -> NotifierConfig:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("alerts.notifier.backoff_max_s must be >= backoff_base_s")
        return self


class PersistenceConfig(BaseModel):
    """The model's level counts only once ``k`` of the patient's last ``n`` readings (this one
    included) reached it: one noisy reading does not raise an alert."""

    k: int = Field(1, ge=1, description="Readings of the last n that must reach the level.")
    n: int = Field(1, ge=1, le=31, description="Readings looked at (the state keeps 30 past risks).")

    @model_validator(mode="after")
    def _k_within_n(self) -> PersistenceConfig:
        if self.k > self.n:
            raise ValueError("alerts persistence: k must be <= n")
        return self


class TrendConfig(BaseModel):
    """Trend-aware escalation: a risk at or above the MEDIUM threshold that rose by ``min_rise``
    over the patient's last ``readings`` readings is at least ``to_level`` (0 readings: off)."""

    readings: int = Field(0, ge=0, le=30, description="Readings the rise is measured over; 0: escalation is off.")
    min_rise: float = Field(0.15, gt=0, le=1, description="The rise in risk that escalates.")
    to_level: Literal["MEDIUM", "HIGH", "CRITICAL"] = Field("HIGH", description="The level a rising risk is at least.")


class AlertPolicyConfig(BaseModel):
    """One named alert policy (``alerts.profiles``): how a risk becomes a level and a level an event."""

    description: str = Field("", description="One line on what the profile is, shown beside its measured trade-off.")
    thresholds: dict[str, float] = Field(_THRESHOLDS, description="A model level is entered at a risk at or above its threshold.")
    exit_ratio: float = Field(1.0, gt=0, le=1, description="Hysteresis: a model level is held while the risk stays at or above threshold × this.")
    persistence: PersistenceConfig = Field(PersistenceConfig(), description="How many recent readings must reach a level.")
    trend: TrendConfig = Field(TrendConfig(), description="Escalation of a rising risk.")
    suppression_minutes: float = Field(60, ge=0, description="No second raise at the same level within this long.")
    reminder_minutes: dict[str, float | None] = Field({"CRITICAL": 60, "HIGH": 60, "MEDIUM": 60}, description="Per level, \"repeated\" events this often while it holds; null: none (crisis readings follow alerts.crisis_repeat_minutes whatever this says).")

    @model_validator(mode="after")
    def _levels(self) -> AlertPolicyConfig:
        if set(self.thresholds) != set(ALERT_LEVELS):
            raise ValueError(f"alert policy thresholds must name exactly {ALERT_LEVELS}")
        t = [self.thresholds[lvl] for lvl in ALERT_LEVELS]
        if t != sorted(t) or not all(0 < x <= 1 for x in t):
            raise ValueError("alert policy thresholds must rise from MEDIUM to CRITICAL within (0, 1]")
        if not set(self.reminder_minutes) <= set(ALERT_LEVELS):
            raise ValueError(f"alert policy reminder_minutes: levels are {ALERT_LEVELS}")
        return self


# docs/alert-policy.md has the measured trade-off of each.
_PROFILES: dict[str, dict[str, Any]] = {
    "source": {  # the source project's: 0.20/0.40/0.60 on risk_6h, hourly reminders
        "description": "thresholds 0.20/0.40/0.60, every reading counts, reminders every 60 min",
        "thresholds": _THRESHOLDS, "exit_ratio": 1.0, "persistence": {"k": 1, "n": 1},
        "trend": {"readings": 0, "min_rise": 0.15, "to_level": "HIGH"}, "suppression_minutes": 60,
        "reminder_minutes": {"CRITICAL": 60, "HIGH": 60, "MEDIUM": 60}},
    "tuned": {  # the default: chosen on validation patients
        "description": "source thresholds; a risk rising 0.15 over 3 readings is HIGH; no MEDIUM reminders, HIGH every 8 h; 8 h suppression",
        "thresholds": _THRESHOLDS, "exit_ratio": 1.0, "persistence": {"k": 1, "n": 1},
        "trend": {"readings": 3, "min_rise": 0.15, "to_level": "HIGH"}, "suppression_minutes": 480,
        "reminder_minutes": {"CRITICAL": 60, "HIGH": 480, "MEDIUM": None}},
    "fewer-reminders": {  # the smallest change: the source profile with MEDIUM/HIGH reminders spaced out
        "description": "source thresholds and suppression; reminders CRITICAL 1 h, HIGH 4 h, MEDIUM 8 h",
        "thresholds": _THRESHOLDS, "suppression_minutes": 60,
        "reminder_minutes": {"CRITICAL": 60, "HIGH": 240, "MEDIUM": 480}},
}


def _default_profiles() -> dict[str, AlertPolicyConfig]:
    return {name: AlertPolicyConfig.model_validate(p) for name, p in _PROFILES.items()}


class AlertsConfig(BaseModel):
    """docs/requirements.md §4 alert events: when to raise, repeat, resolve, and whom to tell."""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "suppression_minutes" in data:
            raise ValueError("alerts.suppression_minutes moved to alerts.profiles.<profile>.suppression_minutes "
                             "(alerts.profile names the one in force); an override left here would be ignored")
        return data

    schema_version: int = Field(1, description="Version of the alert event's schema on the topic.")
    profile: str = Field("tuned", description="The alert policy in force, one of profiles, for streaming, batch rescoring and the event-level evaluation alike (lib/vitalwatch/alerts/policy.py).")
    profiles: dict[str, AlertPolicyConfig] = Field(default_factory=_default_profiles, description="Named alert policies: \"source\" (the source project's), \"tuned\" (chosen on validation patients) and \"fewer-reminders\"; docs/alert-policy.md has the measured trade-off of each.")
    crisis_repeat_minutes: float = Field(60.0, ge=0, description="The safety rule, outside every profile: a crisis reading alerts unless a CRITICAL alert was raised this recently (crisis readings always alert).")
    news2_aggregate_threshold: float = Field(7.0, description="A NEWS2 aggregate at or above this is an alert reason of its own ...")
    news2_aggregate_level: str = Field("HIGH", description="... raising the level to at least this.")
    news2_red_flag_level: str = Field("MEDIUM", description="Any single NEWS2 parameter scoring 3 raises the level to at least this.")
    publish_normal: bool = Field(True, description="Below-alert assessments are published to the normal topic.")
    routing: dict[str, list[str]] = Field(
        {"CRITICAL": ["physician_on_call", "nurse"], "HIGH": ["nurse"], "MEDIUM": ["dashboard"], "LOW": ["dashboard"]},
        description="Per level, the care-team roles notified (from the patient registry); LOW is a resolution.")
    fallback_care_team: dict[str, str] = Field(
        {"physician_on_call": "on-call-physician", "nurse": "charge-nurse", "dashboard": "ward-dashboard"},
        description="Per role, who is notified for patients not (yet) in the registry.")
    registry_cache_s: float = Field(60.0, ge=0, description="A patient's care team is looked up again after this long.")
    registry_timeout_s: float = Field(2.0, gt=0, description="Registry unreachable for longer: route from the cache, else the fallback team ...")
    registry_retry_s: float = Field(30.0, gt=0, description="... and do not ask it again for this long, so no batch waits on it.")
    webhooks: list[WebhookConfig] = Field([], description="Webhooks the notifier (`vitalwatch notify`, started by `run`) delivers each alert to at most once, recorded in MongoDB `deliveries`; e.g. [{name: pager, url: https://pager.example/hook, levels: [CRITICAL, HIGH]}], secrets from the environment.")
    notifier: NotifierConfig = Field(NotifierConfig(), description="The webhook notifier.")

    @model_validator(mode="after")
    def _known_profile(self) -> AlertsConfig:
        if self.profile not in self.profiles:
            raise ValueError(f"alerts.profile {self.profile!r} is not one of alerts.profiles: {sorted(self.profiles)}")
        return self

    @property
    def policy(self) -> AlertPolicyConfig:
        """The alert policy in force (``profiles[profile]``)."""
        return self.profiles[self.profile]

    def with_profile(self, name: str) -> AlertsConfig:
        """The same configuration under another named policy (evaluation, comparisons)."""
        if name not in self.profiles:
            raise ValueError(f"no alert profile {name!r}: {sorted(self.profiles)}")
        return self.model_copy(update={"profile": name})

    def with_policy(self, policy: AlertPolicyConfig, name: str = "candidate") -> AlertsConfig:
        """The same configuration under an ad-hoc policy (the exploration grid)."""
        return self.model_copy(update={"profile": name, "profiles": {**self.profiles, name: policy}})

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, v: list[WebhookConfig]) -> list[WebhookConfig]:
        names = [w.name for w in v]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"webhook names must be unique (they key deliveries): {dupes}")
        return v
