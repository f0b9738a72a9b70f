"""``vitalwatch train`` and ``vitalwatch models``: the crisis-risk model and the MLflow registry."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from vitalwatch.cli._common import given
from vitalwatch.cli._console import console, print_out, progress, settings
from vitalwatch.config import Settings

app = typer.Typer(help="The MLflow registry: champion, versions, metrics.", no_args_is_help=True)

Triage = Annotated[bool, typer.Option(help="the triage model instead of the crisis-risk model")]


def train(
    source: Annotated[str, typer.Option(help="icu (real PhysioNet data), synthetic, or lake (silver table)")] = "icu",
    patients: Annotated[int | None, typer.Option(help="icu: use only the first N patients")] = None,
    sequences: Annotated[int | None, typer.Option(help="synthetic: number of sequences (default from conf)")] = None,
    num_workers: Annotated[int | None, typer.Option(help="xgboost.spark workers")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda")] = None,
    trees: Annotated[int | None, typer.Option(help="XGBoost rounds (default from conf)")] = None,
    random_forest: Annotated[bool | None, typer.Option(help="also train the Spark ML Random Forest comparison")] = None,
) -> None:
    """Train the crisis-risk model (1 h/6 h/24 h), evaluate on held-out patients, register it
    in MLflow and move the champion alias only if it beats the current champion."""
    from vitalwatch.models.train_risk import load_source, markdown_table, train_risk
    from vitalwatch.spark import build_session

    s = settings()
    m = s.models
    upd = given(num_workers=num_workers, device=device)
    if trees:
        upd["xgboost"] = {**m.xgboost, "n_estimators": trees}
    if random_forest is not None:
        upd["random_forest"] = {"enabled": random_forest}
    # Training collects the validation/test vectors and caches the examples: it needs more
    # driver memory than the streaming jobs (2 GiB thrashes in GC on the full ICU data).
    s = s.with_updates(models=upd, spark={"driver_memory": m.train_driver_memory})
    with progress("starting Spark") as say:
        spark = build_session(s, app_name="vitalwatch-train")
        src = load_source(spark, s, source, patients=patients, sequences=sequences)
        rep = train_risk(spark, s, src, progress=say)
    sys.stdout.write(markdown_table(rep.table))
    sys.stdout.write(rep.events)
    console.log(f"run {rep.run_id}: {rep.decision}")
    console.log("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in rep.timings.items()))


def champion_unusable(s: Settings) -> str | None:
    """Why the registry has no champion the alert app can load (None: it has one)."""
    from vitalwatch.models.integrity import ModelIntegrityError
    from vitalwatch.models.registry import champion_version, load_risk_model

    if champion_version(s, s.models.risk_model_name) is None:
        return "no champion crisis-risk model in the registry"
    try:
        load_risk_model(s)
    except ModelIntegrityError as e:
        return f"the champion is refused ({e})"
    return None


@app.command("show")
def models_show() -> None:
    """Registered versions of the risk and triage models, with aliases and the selection metric."""
    from vitalwatch.models.integrity import CHECKSUM_TAG
    from vitalwatch.models.registry import client

    s = settings()
    c = client(s)
    t = Table("model", "version", "aliases", "selection metric", "promoted", "sealed", "run")
    for name in (s.models.risk_model_name, s.models.triage_model_name):
        versions = sorted(c.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
        aliases: dict[str, list[str]] = {}
        if versions:
            for alias, v in c.get_registered_model(name).aliases.items():
                aliases.setdefault(str(v), []).append(alias)
        for mv in versions:
            metric = next((f"{k} {v}" for k, v in mv.tags.items() if k.startswith(("val_", "test_"))), "")
            t.add_row(name, str(mv.version), ",".join(sorted(aliases.get(str(mv.version), []))), metric,
                      mv.tags.get("promoted", ""), (mv.tags.get(CHECKSUM_TAG) or "NO")[:12], mv.run_id)
    print_out(t, width=200)


@app.command("alert-policy")
def models_alert_policy(
    explore: Annotated[bool, typer.Option(help="also run the exploration grid on the validation patients")] = False,
    patients: Annotated[int | None, typer.Option(help="icu: use only the first N patients")] = None,
    out: Annotated[str, typer.Option(help="where the tables and plots go")] = ".work/alert-policy",
) -> None:
    """The champion through the whole alert path on held-out ICU patients: burden, onsets warned
    and lead times for every alert profile and the baselines (model card, "Alert policy")."""
    from pathlib import Path

    from vitalwatch.alerts.evaluation import markdown
    from vitalwatch.models import alert_eval
    from vitalwatch.models.registry import load_risk_model
    from vitalwatch.models.train_risk import load_source
    from vitalwatch.scoring.engine import ModelRef
    from vitalwatch.spark import build_session

    s = settings()
    s = s.with_updates(spark={"driver_memory": s.models.train_driver_memory})
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    loaded = load_risk_model(s)
    model = ModelRef(loaded.name, loaded.version, loaded.scorer)
    with progress("starting Spark") as say:
        spark = build_session(s, app_name="vitalwatch-alert-policy")
        src = load_source(spark, s, "icu", patients=patients)
        metrics, scored = alert_eval.evaluate_events(src.rows, model, s, dest, progress=say)
        if explore:
            grid = alert_eval.explore(scored["validation"], s, s.alerts.policy, progress=say)
            grid.to_csv(dest / "exploration.csv", index=False)
            (dest / "frontier.md").write_text(markdown(alert_eval.frontier(grid)))
            e = s.models.event_evaluation
            best = alert_eval.choose(grid, e.target_burden_ph, e.target_warned)
            console.log(f"exploration: {len(grid)} policies → {dest / 'exploration.csv'}; frontier "
                        f"{dest / 'frontier.md'}; chosen by the rule: {best.to_dict()}")
    console.log(f"model {loaded.name} version {loaded.version}; event evaluation {metrics['event_eval_s']:.0f} s")
    sys.stdout.write((dest / "events.md").read_text())


@app.command("compare")
def models_compare(
    days: Annotated[float, typer.Option(help="readings of the last N days (by effective date)")] = 7,
) -> None:
    """Champion vs shadow (``gold.shadow_alias``) on the readings both scored, once their outcomes
    are known: AUROC/AUPRC/ECE per horizon, alert burden and onsets warned through the policy in
    force. Reading only: promotion stays the registry's rule."""
    from datetime import UTC, datetime, timedelta

    from deltalake import DeltaTable

    from vitalwatch.alerts.evaluation import markdown
    from vitalwatch.dashboard.data import read_delta
    from vitalwatch.models.compare import compare, score_columns
    from vitalwatch.pipeline.lake import GOLD_SCORES

    s = settings()
    since = (datetime.now(UTC) - timedelta(days=days)).date()
    df = read_delta(DeltaTable(s.table_path(*GOLD_SCORES)), score_columns(s), [("effective_date", ">=", since)])
    df["effective_time"] = df["effective_time"].dt.tz_convert(None)
    table = compare(df, s)
    if table.empty:
        console.print(f"no readings scored by both a champion and a shadow since {since} with a known outcome "
                      f"(gold.shadow_alias is {s.gold.shadow_alias!r})")
        raise typer.Exit(1)
    sys.stdout.write(markdown(table))


def _model_name(s: Settings, triage: bool) -> str:
    """The registered model ``--triage`` chooses: the triage classifier, else the crisis-risk model."""
    return s.models.triage_model_name if triage else s.models.risk_model_name


@app.command("history")
def models_history(triage: Triage = False) -> None:
    """Every logged move of the model's aliases (who moved champion/challenger, when, why)."""
    from vitalwatch.models.integrity import alias_history

    s = settings()
    name = _model_name(s, triage)
    t = Table("time", "alias", "from", "to", "by", "reason", title=name)
    for m in alias_history(s, name):
        t.add_row(*(str(m.get(k) or "") for k in ("time", "alias", "from", "to", "by", "reason")))
    print_out(t, width=200)


@app.command("seal")
def models_seal(
    version: Annotated[str, typer.Argument(help="the registered version whose files you have checked")],
    triage: Triage = False,
) -> None:
    """Record the checksum of a version's artifacts as they are now (versions registered before
    models were sealed). Only after checking its files: the scoring app trusts what is sealed."""
    from vitalwatch.models.integrity import CHECKSUM_TAG, seal

    s = settings()
    name = _model_name(s, triage)
    console.print(f"{name} version {version} sealed: {CHECKSUM_TAG} {seal(s, name, version)}")

