"""Replay of the real ICU vitals (PhysioNet/CinC 2019, training set B subset) as FHIR.

Each hourly row becomes the patient's Observations at ``base_time + ICULOS hours``: a BP
panel (when SBP or DBP was measured), heart rate, SpO2, respiratory rate, temperature and
mean arterial pressure, for the values present (NaN = not measured). Rows are replayed in
time order across patients, as a ward's monitors would send them."""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from vitalwatch.producers import fhir
from vitalwatch.producers.faults import FaultPlan, inject
from vitalwatch.producers.fhir import Message

_VITAL_COLUMNS = {"HR": "heart_rate", "O2Sat": "spo2", "Resp": "respiratory_rate",
                  "Temp": "body_temperature", "MAP": "mean_arterial_pressure"}


def _num(s: str | None) -> float | None:
    if s is None or s == "" or s.lower() == "nan":
        return None
    x = float(s)
    return None if math.isnan(x) else x


def read_rows(path: Path, patients: int | None = None, max_rows: int | None = None) -> list[dict[str, str]]:
    """Rows of the first ``patients`` patients (file order), sorted by (ICULOS, patient)."""
    rows: list[dict[str, str]] = []
    seen: list[str] = []
    with gzip.open(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="|"):
            pid = row["patient_id"]
            if not seen or seen[-1] != pid:
                if patients is not None and len(seen) >= patients and pid not in seen:
                    break
                seen.append(pid)
            rows.append(row)
    rows.sort(key=lambda r: (float(r["ICULOS"]), r["patient_id"]))
    return rows[:max_rows] if max_rows else rows


def row_resources(row: dict[str, str], base: datetime) -> list[dict]:
    pid = f"icu-{row['patient_id']}"
    t = base + timedelta(hours=float(row["ICULOS"]))
    device = f"icu-monitor-{row['patient_id']}"
    out = []
    sbp, dbp = _num(row.get("SBP")), _num(row.get("DBP"))
    if sbp is not None or dbp is not None:
        bp = fhir.blood_pressure(pid, t, sbp or 0.0, dbp or 0.0, device)
        bp["component"] = [c for c, v in zip(bp["component"], (sbp, dbp), strict=True) if v is not None]
        out.append(bp)
    for col, name in _VITAL_COLUMNS.items():
        v = _num(row.get(col))
        if v is not None:
            out.append(fhir.vital(pid, t, name, v, device))
    return out


def replay(path: Path, base_time: datetime, *, patients: int | None = None, max_rows: int | None = None,
           as_bundle: bool = True, faults: FaultPlan | None = None) -> Iterator[Message]:
    """Messages in time order: one Bundle per row (default) or one message per Observation,
    with ``faults`` injected on request (late ones arrive 1–3 h late: the rows are hourly)."""
    msgs = _messages(path, base_time, patients, max_rows, as_bundle)
    if faults is None:
        return msgs
    return inject(msgs, replace(faults, late_delay=(timedelta(hours=1), timedelta(hours=3))))


def _messages(path: Path, base_time: datetime, patients: int | None, max_rows: int | None,
              as_bundle: bool) -> Iterator[Message]:
    for row in read_rows(path, patients, max_rows):
        res = row_resources(row, base_time)
        if not res:
            continue
        pid = f"icu-{row['patient_id']}"
        t = base_time + timedelta(hours=float(row["ICULOS"]))
        if as_bundle:
            yield Message.of(pid, fhir.bundle(res, "collection"), t)
        else:
            for r in res:
                yield Message.of(pid, r, t)
