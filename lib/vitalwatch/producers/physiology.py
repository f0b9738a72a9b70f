"""Simulated patient physiology for the device simulator.

Three profiles: normotensive, hypertensive (stage 2 baseline) and crisis-prone (high
baseline plus onset episodes that ramp systolic/diastolic into the crisis range over hours,
hold, then resolve). On top: a circadian rhythm (nocturnal dip ~10 %, morning surge), slow
random drift, measurement noise, and heart rate, SpO2, respiratory rate and temperature that
move with the pressure. Deterministic given the seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

PROFILES = ("normotensive", "hypertensive", "crisis_prone")


@dataclass
class Episode:
    start_h: float
    ramp_h: float
    hold_h: float
    peak_sbp: float
    peak_dbp: float

    def weight(self, t_h: float) -> float:
        """0 outside the episode, rising to 1 at the peak, back to 0 when it resolves."""
        x = t_h - self.start_h
        if x < 0 or x > self.ramp_h * 2 + self.hold_h:
            return 0.0
        if x < self.ramp_h:
            return x / self.ramp_h
        if x < self.ramp_h + self.hold_h:
            return 1.0
        return 1.0 - (x - self.ramp_h - self.hold_h) / self.ramp_h


@dataclass
class Patient:
    patient_id: str
    profile: str
    ward: str
    device_id: str
    base_sbp: float
    base_dbp: float
    base_hr: float
    rng: random.Random
    episodes: list[Episode] = field(default_factory=list)
    drift: float = 0.0

    def vitals(self, t: datetime, t_h: float) -> dict[str, float]:
        """One reading at simulated hour ``t_h`` (hours since the simulation start)."""
        hour = t.hour + t.minute / 60
        circadian = -0.10 * math.cos(2 * math.pi * (hour - 15) / 24) * 0.5 - 0.05  # dip at night
        surge = 0.05 if 6 <= hour < 9 else 0.0
        self.drift = 0.95 * self.drift + self.rng.gauss(0, 1.5)
        ep = max((e.weight(t_h) for e in self.episodes), default=0.0)
        peak_s = max((e.peak_sbp for e in self.episodes if e.weight(t_h) > 0), default=self.base_sbp)
        peak_d = max((e.peak_dbp for e in self.episodes if e.weight(t_h) > 0), default=self.base_dbp)
        # During an episode the pressure is pulled toward the episode's peak, whatever the hour.
        sbp = (1 - ep) * (self.base_sbp * (1 + circadian + surge) + self.drift) + ep * peak_s
        dbp = (1 - ep) * (self.base_dbp * (1 + circadian * 0.8 + surge * 0.8) + 0.5 * self.drift) + ep * peak_d
        sbp += self.rng.gauss(0, 4)
        dbp += self.rng.gauss(0, 3)
        dbp = min(dbp, sbp - 15)
        hr = self.base_hr + 0.15 * (sbp - self.base_sbp) + 10 * ep + self.rng.gauss(0, 3)
        return {
            "systolic": round(max(sbp, 60), 1),
            "diastolic": round(max(dbp, 30), 1),
            "heart_rate": round(max(hr, 35), 1),
            "spo2": round(min(100.0, 97.5 - 2.5 * ep + self.rng.gauss(0, 0.8)), 1),
            "respiratory_rate": round(max(8.0, 15 + 5 * ep + self.rng.gauss(0, 1.2)), 1),
            "body_temperature": round(36.8 + 0.3 * math.sin(2 * math.pi * (hour - 17) / 24) + self.rng.gauss(0, 0.15), 2),
        }


def make_patients(n: int, seed: int, mix: dict[str, float], horizon_h: float, wards: int = 4,
                  prefix: str = "p") -> list[Patient]:
    """``n`` patients (ids ``<prefix>00000``…) with profiles drawn from ``mix``; crisis-prone
    ones get episodes spread over ``horizon_h`` hours (about one a day, at least one)."""
    master = random.Random(seed)
    names = [p for p in PROFILES if mix.get(p, 0) > 0]
    weights = [mix[p] for p in names]
    out = []
    for i in range(n):
        rng = random.Random(master.getrandbits(64))
        profile = rng.choices(names, weights)[0]
        if profile == "normotensive":
            sbp, dbp = rng.uniform(105, 128), rng.uniform(65, 80)
        elif profile == "hypertensive":
            sbp, dbp = rng.uniform(140, 160), rng.uniform(88, 100)
        else:
            sbp, dbp = rng.uniform(150, 168), rng.uniform(92, 105)
        p = Patient(f"{prefix}{i:05d}", profile, f"ward-{chr(ord('A') + i % wards)}", f"bp-cuff-{i:05d}",
                    sbp, dbp, rng.uniform(62, 88), rng)
        if profile == "crisis_prone":
            count = max(1, round(horizon_h / 24))
            for _ in range(count):
                p.episodes.append(Episode(start_h=rng.uniform(0.5, max(1.0, horizon_h - 2)),
                                          ramp_h=rng.uniform(1, 4), hold_h=rng.uniform(0.5, 3),
                                          peak_sbp=rng.uniform(185, 225), peak_dbp=rng.uniform(112, 135)))
        out.append(p)
    return out
