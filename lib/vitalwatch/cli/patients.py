"""``vitalwatch patients``: the patient registry and observation counts per patient."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vitalwatch.cli._common import given
from vitalwatch.cli._console import console, print_out, settings

app = typer.Typer(help="The patient registry (wards and care teams alerts are routed to).", no_args_is_help=True)


@app.command("register")
def patients_register(
    patients: Annotated[int | None, typer.Option(help="simulated patients (as `simulate` makes them)")] = None,
    seed: Annotated[int | None, typer.Option(help="simulator seed")] = None,
) -> None:
    """Register the simulator's patients (ward, care team, identifiers) in MongoDB."""
    register_simulated(settings(), patients, seed)


def register_simulated(s, patients: int | None, seed: int | None) -> int:
    """Register the simulator's patients of ``s.simulator`` (patients/seed overridden if given)."""
    from datetime import UTC, datetime

    import pymongo

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.producers.simulator import SimulationPlan, registry_entries
    from vitalwatch.sinks import mongo

    cfg = s.simulator.model_copy(update=given(patients=patients, seed=seed))
    docs = registry_entries(SimulationPlan(datetime.now(UTC), 1.0, cfg))
    uri = mongo.pipeline_uri(s, resolve(s, ("mongo",)).mongo_uri or "")
    n = mongo.register_patients(pymongo.MongoClient(uri)[s.mongo.database], docs)
    console.log(f"registry: {len(docs)} patients ({n} new)")
    return len(docs)


@app.command("observations")
def patients_observations(
    patient: Annotated[list[str] | None, typer.Option(help="only these patients (repeatable)")] = None,
    top: Annotated[int, typer.Option(help="print at most this many patients (most observations first)")] = 50,
) -> None:
    """Observation counts per patient in silver (the source project's check_patient_observations):
    observations, values per vital sign, first and last reading, and quarantined messages."""
    from vitalwatch.dashboard.data import observation_counts

    s = settings()
    counts, quarantined = observation_counts(s, patient)
    if counts.empty:
        console.print("no observation in silver/vital_signs" + (f" for {', '.join(patient)}" if patient else ""))
        raise typer.Exit(1 if patient else 0)
    vitals = [c for c in counts.columns if c.startswith("n_")]
    t = Table("patient", "observations", *[v.removeprefix("n_") for v in vitals], "first (UTC)", "last (UTC)",
              title=f"silver/vital_signs: {len(counts)} patients, {int(counts['observations'].sum())} observations")
    for r in counts.head(top).itertuples(index=False):
        t.add_row(r.patient_id, str(r.observations), *[str(getattr(r, v)) for v in vitals],
                  f"{r.first:%Y-%m-%d %H:%M}", f"{r.last:%Y-%m-%d %H:%M}")
    print_out(t, width=200)
    if len(counts) > top:
        console.print(f"… and {len(counts) - top} more patients (--top)")
    console.print(f"silver/quarantine: {quarantined} messages or resources refused (see their reasons there)")
