"""What comes in: the silver input rules, the simulator and the replay of recorded vitals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field, field_validator

# pandas/numpy nanosecond timestamps (the scoring engine's) hold 1677-09-21 .. 2262-04-11.
_EARLIEST_REPRESENTABLE = datetime(1678, 1, 1, tzinfo=UTC)


class FhirConfig(BaseModel):
    """The silver input rules (docs/silver-rules.md): what a message must be to be accepted.
    Which vital signs are accepted, their units and limits, is conf/vitals.yaml."""

    accepted_statuses: list[str] = Field(["final", "amended", "corrected", "preliminary"], description="Observation statuses accepted into silver; others are quarantined.")
    bundle_types: list[str] = Field(["batch", "transaction", "collection", "searchset", "history", "message"], description="Bundle types whose entries are read; others are quarantined.")
    min_effective_time: datetime = Field(datetime(1900, 1, 1, tzinfo=UTC), description="An earlier effective time is quarantined as effective_time_too_old.")
    max_clock_skew: timedelta = Field(timedelta(minutes=10), description="An effective time later than arrival (the broker's LogAppendTime, the pipeline's clock, not the device's) plus this is quarantined as effective_time_in_future.")
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="A Kafka value larger than this is quarantined as message_too_large, not parsed.")
    max_bundle_entries: int = Field(2000, ge=1, description="A Bundle with more entries is quarantined as bundle_too_large, not parsed.")
    max_json_depth: int = Field(64, ge=8, description="JSON nested deeper is quarantined as json_too_deep (FHIR vitals need about 8).")
    max_identifier_length: int = Field(128, ge=1, le=1024, description="Identifier values and fallback ids (fullUrl, identifier) at most this many characters.")

    @field_validator("min_effective_time")
    @classmethod
    def _representable(cls, v: datetime) -> datetime:
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        if v < _EARLIEST_REPRESENTABLE:
            raise ValueError(f"min_effective_time {v:%Y-%m-%d} is before {_EARLIEST_REPRESENTABLE:%Y-%m-%d}, "
                             "the earliest time the scoring engine can hold")
        return v.astimezone(UTC)

    @property
    def max_clock_skew_ms(self) -> int:
        return int(self.max_clock_skew.total_seconds() * 1000)


class SimulatorConfig(BaseModel):
    """The device simulator (`vitalwatch produce`): synthetic patients sending FHIR readings."""

    patients: int = Field(50, ge=1, description="Simulated patients.")
    patient_prefix: str = Field("p", pattern=r"^[A-Za-z0-9\-.]{1,40}$", description="Patient ids are <prefix>00000, <prefix>00001, ….")
    seed: int = Field(7, description="Random seed: the same seed sends the same readings.")
    cadence_minutes: float = Field(15, gt=0, description="Simulated minutes between one patient's readings.")
    speedup: float = Field(60.0, gt=0, description="Simulated seconds per wall-clock second.")
    rate: float = Field(0, ge=0, description="Messages per second at most; 0: as fast as the speed-up allows.")
    bundle_fraction: float = Field(0.2, ge=0, le=1, description="Share of readings sent as a Bundle (blood pressure plus other vitals).")
    duplicate_fraction: float = Field(0.0, ge=0, le=1, description="Share of messages sent twice, to exercise deduplication.")
    late_fraction: float = Field(0.0, ge=0, le=1, description="Share of readings sent late, to exercise late-data handling.")
    malformed_fraction: float = Field(0.0, ge=0, le=1, description="Share of messages followed by a malformed one (lib/vitalwatch/producers/faults.py).")
    profile_mix: dict[str, float] = Field({"normotensive": 0.6, "hypertensive": 0.3, "crisis_prone": 0.1}, description="Share of patients of each blood-pressure profile.")


class ReplayConfig(BaseModel):
    """Replay of recorded ICU vitals (`vitalwatch produce --replay`)."""

    path: str = Field("../shared/data/physionet2019/icu_vitals_dev.psv.gz", description="The recorded vitals file (PhysioNet 2019 layout).")
    base_time: str = Field("2026-01-01T00:00:00Z", description="The recording's hour 0 is sent as this time.")
