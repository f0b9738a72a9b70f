"""``vitalwatch triage``: the heart-disease triage classifier (the e-health source project's)."""

from __future__ import annotations

from typing import Annotated

import typer

from vitalwatch.cli._console import console, settings

app = typer.Typer(help="Heart-disease triage (the e-health source project's classifier).", no_args_is_help=True)


@app.command("train")
def triage_train(
    csv: Annotated[str | None, typer.Option(help="labelled CSV (default: the shared heart.csv)")] = None,
) -> None:
    """Train the critical/normal classifier (critical = 1 - target) and register it."""
    from pathlib import Path

    from vitalwatch.models.triage import train_triage
    from vitalwatch.spark import build_session

    s = settings()
    path = Path(csv) if csv else s.path("../shared/data/heart-disease/heart.csv")
    with console.status("training triage model"):
        rep = train_triage(build_session(s, app_name="vitalwatch-triage-train"), s, path)
    console.log(f"test metrics: {', '.join(f'{k} {v:.3f}' for k, v in rep.metrics.items())}")
    console.log(f"run {rep.run_id}: {rep.decision}")


@app.command("score")
def triage_score(
    csv: Annotated[str, typer.Argument(help="CSV with the 13 feature columns (a target column is ignored)")],
) -> None:
    """Score a CSV with the champion triage model; publish each row to the alerts (critical)
    or normal topic."""
    from pathlib import Path

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.models.triage import publish, score
    from vitalwatch.spark import build_session

    s = settings()  # a CSV it cannot read: TriageInputError, exit 2 (the CLI's error handler)
    with console.status("scoring"):
        spark = build_session(s, app_name="vitalwatch-triage-score")
        counts = publish(score(spark, s, Path(csv)), resolve(s, ("kafka",)).kafka("pipeline"))
    for topic, n in sorted(counts.items()):
        console.log(f"{n} rows → {topic}")
