"""The ``vitalwatch`` command: operational commands for the local stack and the jobs.

Every sub-command has ``--help``. Long-running ones show progress with rich."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalwatch.config import Settings, get_settings
from vitalwatch.pipeline import APPS, STAGES

console = Console(stderr=True)
app = typer.Typer(help="vitalwatch: real-time patient monitoring on Apache Spark.",
                  no_args_is_help=True, add_completion=False)
infra_app = typer.Typer(help="Local servers on 127.0.0.1: Kafka (KRaft), mongod --auth, Elasticsearch.",
                        no_args_is_help=True)
app.add_typer(infra_app, name="infra")
models_app = typer.Typer(help="The MLflow registry: champion, versions, metrics.", no_args_is_help=True)
app.add_typer(models_app, name="models")
triage_app = typer.Typer(help="Heart-disease triage (the e-health source project's classifier).",
                         no_args_is_help=True)
app.add_typer(triage_app, name="triage")
kafka_app = typer.Typer(help="Kafka principals, ACLs and topics (conf: kafka.security, kafka.topics).",
                        no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
mongo_app = typer.Typer(help="MongoDB roles, users, collections and views (conf: mongo.security).",
                        no_args_is_help=True)
app.add_typer(mongo_app, name="mongo")
patients_app = typer.Typer(help="The patient registry (wards and care teams alerts are routed to).",
                           no_args_is_help=True)
app.add_typer(patients_app, name="patients")
alerts_app = typer.Typer(help="Alerts: follow them live, acknowledge them.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
search_app = typer.Typer(help="Elasticsearch index templates and Kibana saved objects.", no_args_is_help=True)
app.add_typer(search_app, name="search")
users_app = typer.Typer(help="Dashboard users (bcrypt-hashed, in MongoDB) and their roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")

Servers = Annotated[list[str] | None, typer.Argument(help="kafka, mongo, elasticsearch (default: all)")]


@infra_app.command("up")
def infra_up(servers: Servers = None) -> None:
    """Start the local servers (idempotent, health-checked); print their endpoints."""
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.infra.process import InfraError

    mgr = InfraManager(get_settings())
    try:
        with console.status("starting local infrastructure") as st:
            mgr.up(servers, progress=lambda m: (st.update(m), console.log(m)))
    except InfraError as e:
        console.print(f"[red]infra up failed:[/red] {e}")
        raise typer.Exit(1) from e
    _print_status(mgr)


@infra_app.command("certs")
def infra_certs(
    rotate: Annotated[bool, typer.Option(help="renew every server and client certificate now")] = False,
    ca: Annotated[bool, typer.Option(help="with --rotate: renew the certificate authority too")] = False,
) -> None:
    """The local certificate authority under <infra.work_dir>/tls: create what is missing or
    expiring (as `infra up` does), or with --rotate renew the set atomically; print each
    certificate's expiry. Restart the servers (`infra down`, `infra up`) to load renewed ones."""
    from vitalwatch.infra.manager import InfraManager

    local_ca = InfraManager(get_settings()).ca()
    if rotate:
        console.log(f"new certificates in {local_ca.rotate(renew_ca=ca)}")
    elif local_ca.ensure():
        console.log(f"certificates written under {local_ca.root}")
    t = Table("certificate", "valid until", "files")
    for name, until in local_ca.expiry().items():
        t.add_row(name, until, f"{local_ca.root}/{name}.{{crt,key}}")
    Console(width=160).print(t)


@infra_app.command("fetch")
def infra_fetch(spark: Annotated[bool, typer.Option(help="also resolve the Spark connectors")] = True,
                compose: Annotated[bool, typer.Option(help="also build docker compose (Go module proxy) if the "
                                                           "docker client has none, to validate docker/")] = False) -> None:
    """Download everything the servers and Spark need (Maven Central), without starting anything."""
    from vitalwatch.infra.manager import InfraManager

    mgr = InfraManager(get_settings())
    for name, srv in mgr.servers.items():
        with console.status(f"{name}: fetching"):
            srv.prepare()
        console.log(f"{name}: artifacts ready")
    if spark:
        from vitalwatch.spark import build_session

        with console.status("resolving Spark connectors from Maven Central"):
            build_session(get_settings(), app_name="vitalwatch-fetch", master="local[1]").stop()
        console.log("Spark connectors ready")
    if compose:
        from vitalwatch.infra.artifacts import compose_command

        s = get_settings()
        with console.status(f"docker compose: the docker client's, or {s.infra.compose_version} built with Go (once)"):
            cmd = compose_command(s, build=True)
        console.log(f"docker compose ready: {' '.join(cmd)}")


@infra_app.command("down")
def infra_down(servers: Servers = None) -> None:
    """Stop the local servers (SIGTERM, then SIGKILL after a grace period); data is kept."""
    from vitalwatch.infra.manager import InfraManager

    InfraManager(get_settings()).down(servers, progress=console.log)


@infra_app.command("status")
def infra_status() -> None:
    """Show each server: running, healthy, endpoint, what it is, its log; then each pipeline
    application's stages ("degraded: <stage> failing since …"). Exit 1 if any server is down."""
    from vitalwatch.infra.manager import InfraManager

    s = get_settings()
    ok = _print_status(InfraManager(s))
    _print_app_health(s)
    if not ok:
        raise typer.Exit(1)


def _print_app_health(s) -> None:
    from vitalwatch.pipeline.health import lines

    for line in lines(s) or ["no pipeline application has run here"]:
        colour = "yellow" if "degraded" in line or "not running" in line else "green"
        Console().print(f"[{colour}]{line}[/{colour}]")


def _print_status(mgr: object) -> bool:
    t = Table("server", "state", "pid", "endpoint", "what it is", "log")
    ok = True
    for s in mgr.status():  # type: ignore[attr-defined]
        state = "[green]healthy[/green]" if s.healthy else ("[yellow]unhealthy[/yellow]" if s.running else "[red]down[/red]")
        ok &= s.healthy
        t.add_row(s.name, state, str(s.pid or ""), s.endpoint or "", s.server or "", s.log or "")
    Console().print(t)
    return ok


# -- producers ------------------------------------------------------------------------------
def _send_with_progress(messages, total: int | None, topic: str, access, speedup: float,
                        rate: float, label: str, should_stop=None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from vitalwatch.producers.kafka_out import send

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as prog:
        task = prog.add_task(label, total=total)
        rep = send(messages, access, topic, speedup=speedup, rate=rate,
                   on_sent=lambda _m: prog.advance(task), should_stop=should_stop)
    console.log(f"sent {rep.sent} messages to {topic} in {rep.seconds:.1f}s "
                f"({rep.rate:.0f}/s); by kind: {rep.by_kind}")
    return rep


@app.command()
def simulate(
    patients: Annotated[int | None, typer.Option(help="number of simulated patients")] = None,
    hours: Annotated[float, typer.Option(help="simulated hours to produce")] = 24.0,
    speedup: Annotated[float | None, typer.Option(help="simulated seconds per wall second (0: no pacing)")] = None,
    rate: Annotated[float | None, typer.Option(help="cap in messages/s (0: none)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (same seed, same messages)")] = None,
    duplicates: Annotated[float | None, typer.Option(help="fraction of messages sent twice")] = None,
    late: Annotated[float | None, typer.Option(help="fraction delivered late/out of order")] = None,
    malformed: Annotated[float | None, typer.Option(help="fraction of readings followed by a malformed message")] = None,
    start: Annotated[str | None, typer.Option(help="simulated start time (ISO 8601, default: the HOURS ending now; "
                                                 "readings later than their sending are quarantined)")] = None,
) -> None:
    """Simulate bedside monitors: FHIR R4 vitals for N patients into the observations topic."""
    from datetime import datetime

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.producers.simulator import SimulationPlan
    from vitalwatch.producers.simulator import simulate as sim

    s = get_settings()
    upd = {k: v for k, v in dict(patients=patients, seed=seed, duplicate_fraction=duplicates,
                                late_fraction=late, malformed_fraction=malformed,
                                speedup=speedup, rate=rate).items() if v is not None}
    cfg = s.simulator.model_copy(update=upd)
    plan = SimulationPlan(datetime.fromisoformat(start), hours, cfg) if start else SimulationPlan.until_now(hours, cfg)
    ep = resolve(s, ("kafka",))
    _send_with_progress(sim(plan), None, s.kafka.topics.observations, ep.kafka("device"),
                        cfg.speedup, cfg.rate, f"simulating {cfg.patients} patients, {hours} h")


@app.command()
def replay(
    patients: Annotated[int | None, typer.Option(help="replay only the first N patients")] = None,
    max_rows: Annotated[int | None, typer.Option(help="stop after N hourly rows")] = None,
    speedup: Annotated[float, typer.Option(help="simulated seconds per wall second (0: no pacing)")] = 0.0,
    rate: Annotated[float, typer.Option(help="cap in messages/s (0: none)")] = 0.0,
    bundle: Annotated[bool, typer.Option(help="one Bundle per hourly row (else one message per Observation)")] = True,
    seed: Annotated[int, typer.Option(help="random seed of the fault injection")] = 7,
    duplicates: Annotated[float, typer.Option(help="fraction of messages sent twice")] = 0.0,
    late: Annotated[float, typer.Option(help="fraction delivered 1-3 h late (out of order)")] = 0.0,
    malformed: Annotated[float, typer.Option(help="fraction followed by a malformed message")] = 0.0,
) -> None:
    """Replay the real PhysioNet 2019 ICU vitals as FHIR into the observations topic."""
    from datetime import datetime

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.producers.faults import FaultPlan
    from vitalwatch.producers.icu_replay import replay as rp

    s = get_settings()
    msgs = list(rp(s.path(s.replay.path), datetime.fromisoformat(s.replay.base_time),
                   patients=patients, max_rows=max_rows, as_bundle=bundle,
                   faults=FaultPlan(seed, duplicates, late, malformed)))
    ep = resolve(s, ("kafka",))
    _send_with_progress(iter(msgs), len(msgs), s.kafka.topics.observations, ep.kafka("device"),
                        speedup, rate, "replaying ICU data")


# -- pipeline -------------------------------------------------------------------------------
@app.command()
def pipeline(
    app_name: Annotated[str | None, typer.Option("--app", help="one application: " + ", ".join(APPS))] = None,
    stages: Annotated[str | None, typer.Option(help="comma-separated, of: " + ",".join(STAGES)
                                               + " (default: the app's, else all)")] = None,
    available_now: Annotated[bool, typer.Option(help="process what is available, then stop")] = False,
    duration: Annotated[float, typer.Option(help="stop after S seconds (0: until Ctrl-C or SIGTERM)")] = 0,
) -> None:
    """Run one application's streaming stages in this process (local Spark; on a cluster use
    spark-submit.sh jobs/pipeline.py --app NAME). A failing stage is retried forever and
    reported degraded; only a lost Spark context ends the process (exit 3)."""
    import signal
    import threading

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.pipeline.runner import run_available_now, run_continuous
    from vitalwatch.pipeline.supervisor import SparkContextLost, backoff_s
    from vitalwatch.spark import build_session

    s = get_settings()
    if app_name is not None and app_name not in APPS:
        raise typer.BadParameter(f"unknown app {app_name!r}; apps: {', '.join(APPS)}", param_hint="--app")
    chosen = ([x.strip() for x in stages.split(",") if x.strip()] if stages
              else list(APPS[app_name]) if app_name else list(STAGES))
    label = app_name or "pipeline"
    with console.status("starting Spark (connectors resolve from Maven Central on first use)"):
        spark = build_session(s, app_name=f"vitalwatch-{label}")
    ep = resolve(s, ("kafka",))
    _best_effort("Kafka topics", lambda: _ensure_topics(s, ep))
    if {"gold", "serve_scores", "serve_alerts"} & set(chosen) and "mongo" in s.gold.sinks:
        _best_effort("MongoDB roles and users", lambda: _mongo_init(s))
    if available_now:
        console.log(run_available_now(spark, s, ep, chosen))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.log(f"{label}: running {', '.join(chosen)}")
    try:
        run_continuous(spark, s, ep, chosen, app=label, duration_s=duration or None, on_tick=_log_progress,
                       should_stop=stop.is_set,
                       on_failure=lambda h: console.log(f"[yellow]{h.line()}[/yellow] (retry in "
                                                        f"{backoff_s(s, h.failures):.0f} s)"))
    except SparkContextLost as e:
        console.print(f"[red]{label}: {e}; exiting so that it is started again[/red]")
        raise typer.Exit(3) from e


@app.command()
def notify() -> None:
    """Deliver webhooks for the alerts on the alert topic (the outbox notifier: its own process
    and consumer group; signed, retried, each (alert, webhook) once — docs/notifications.md).
    Runs until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from vitalwatch.alerts.notifier import run_notifier
    from vitalwatch.infra.endpoints import resolve

    s = get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_notifier(s, resolve(s, ("kafka", "mongo")), should_stop=stop.is_set, log_line=console.log)
    except KeyboardInterrupt:
        stop.set()


def _best_effort(what: str, fn) -> None:
    """A set-up step that must not stop an application when a server is down (the stages that
    need it fail, are reported degraded and retried)."""
    try:
        fn()
    except Exception as e:
        console.log(f"[yellow]{what} not set up now ({str(e).splitlines()[0][:200]}); the stages retry[/yellow]")


def _ensure_topics(s, ep) -> None:
    """The configured topics exist and their principals may use them (the broker does not
    auto-create; idempotent). Needs the Kafka admin password, which only operators hold: an
    application without it leaves this to ``vitalwatch kafka init`` / ``infra up``."""
    from vitalwatch.infra.kafka import provision
    from vitalwatch.infra.kafka_access import password_env
    from vitalwatch.infra.process import InfraError

    try:
        admin = ep.kafka("admin")
    except InfraError:  # an application's environment: kafka init / infra up provisioned already
        console.log(f"Kafka topics and ACLs: left to `vitalwatch kafka init` (no ${password_env('admin')} here)")
        return
    provision(admin, s)


def _log_progress(queries) -> None:
    for q in queries:
        p = q.lastProgress
        if p:
            console.log(f"{q.name}: batch {p['batchId']} in={p.get('numInputRows', 0)} rows "
                        f"({p.get('processedRowsPerSecond', 0) or 0:.0f} rows/s), "
                        f"{p['durationMs'].get('triggerExecution', 0)} ms")


@app.command()
def show(sample: Annotated[int, typer.Option(help="latest silver rows to print")] = 8) -> None:
    """The applications' health, counts of bronze, silver and quarantine, quarantine reasons, a
    Bundle's non-vital resources by type, dead letters per store, and the latest values."""
    from vitalwatch.pipeline.report import lake_summary
    from vitalwatch.spark import build_session

    s = get_settings()
    with console.status("reading the lake"):
        spark = build_session(s, app_name="vitalwatch-show")
        summ = lake_summary(spark, s, sample)
    _print_app_health(s)
    out = Console()
    t = Table("table", "rows", title=f"lake at {s.path(s.lake.root)}")
    t.add_row("bronze/observations_raw (messages)", str(summ["bronze_messages"]))
    t.add_row("silver/vital_signs (values)", str(summ["silver_values"]))
    t.add_row("silver/vital_signs (patients)", str(summ["silver_patients"]))
    t.add_row("silver/quarantine", str(summ["quarantined"]))
    out.print(t)
    t = Table("vital", "values")
    for k, v in summ["by_vital"].items():
        t.add_row(k, str(v))
    out.print(t)
    t = Table("quarantine reason", "rows")
    for k, v in summ["by_reason"].items():
        t.add_row(k, str(v))
    out.print(t)
    t = Table("resource type", "resources", title="Bundle resources that are not vital signs (counted, not quarantined)")
    for k, v in summ["ignored_by_type"].items():
        t.add_row(k, str(v))
    out.print(t)
    t = Table("sink", "rows", title=f"gold/dead_letter: rows a store refused for good ({summ['dead_letters']} in all)")
    for k, v in summ["dead_letters_by_sink"].items():
        t.add_row(k, str(v))
    out.print(t)
    t = Table("patient", "effective (UTC)", "vital", "value", "unit", "device", title="latest values to arrive")
    for r in summ["latest"]:
        t.add_row(r["patient_id"], str(r["effective_time"]), r["vital"], f"{r['value']:.1f}", r["unit"],
                  r["device_id"] or "")
    out.print(t)


@app.command()
def run(
    patients: Annotated[int, typer.Option(help="simulated patients")] = 50,
    hours: Annotated[float, typer.Option(help="simulated hours to produce")] = 6.0,
    speedup: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 120.0,
    duration: Annotated[float, typer.Option(help="wall seconds to run once the pipeline is up (0: until the simulation ends)")] = 0,
    malformed: Annotated[float, typer.Option(help="fraction of malformed messages to inject")] = 0.02,
    crisis_prone: Annotated[float, typer.Option(help="share of crisis-prone simulated patients")] = 0.3,
    dashboard: Annotated[bool, typer.Option(help="serve the clinicians' dashboard while it runs")] = True,
    api: Annotated[bool, typer.Option(help="serve the REST and FHIR API while it runs")] = True,
) -> None:
    """The local main command: infra up, MongoDB roles and registry, a champion model (trained
    on the ICU data if the registry has none), the applications as separate processes (the
    alert path first; the lake and serving copies; the notifier), the simulator (as a
    device: readings only), the dashboard, then a summary with the alert latency seen (in a
    terminal the dashboard stays up until Ctrl-C)."""
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.pipeline.apps import AppProcesses
    from vitalwatch.spark import build_session

    s = get_settings()
    with console.status("infra up") as st:
        InfraManager(s).up(progress=lambda m: (st.update(m), console.log(m)))
    ep = resolve(s, ("kafka", "mongo", "elasticsearch"))
    _ensure_topics(s, ep)
    _mongo_init(s)
    rest = max(0.0, 1.0 - crisis_prone)
    mix = {"crisis_prone": crisis_prone, "hypertensive": rest / 2, "normotensive": rest / 2}
    cfg = s.simulator.model_copy(update=dict(patients=patients, speedup=speedup, malformed_fraction=malformed,
                                             profile_mix=mix))
    if (why := _champion_unusable(s)) is not None:
        console.log(f"{why}: training one on the ICU data (about 2 min)")
        train(source="icu", patients=None, sequences=None, num_workers=None, device=None, trees=None,
              random_forest=False)
    board = _start_dashboard(s) if dashboard else None
    api_proc = _start_api(s) if api else None
    with console.status("starting Spark for the simulation plan and the summary"):
        spark = build_session(s, app_name="vitalwatch-local", master="local[1]")
    plan = _simulation_plan(spark, s, hours, cfg)
    _register_simulated(s.model_copy(update={"simulator": plan.cfg}), None, None)
    procs = AppProcesses(s, [*APPS, "notifier"], say=console.log)
    try:
        started = _run_apps(s, ep, procs, plan, speedup, duration)
    except KeyboardInterrupt:
        console.log("stopping")
        started = None
    finally:
        with console.status("stopping the applications"):
            procs.stop()
    try:
        if started is None:
            raise typer.Exit(1)
        show(sample=8)
        _gold_summary(spark, s, ep, since=started)
        if board is not None and sys.stdin.isatty():
            console.log("the dashboard and API stay up (the pipeline has stopped); Ctrl-C ends them")
            board.wait()
    except KeyboardInterrupt:
        pass
    finally:
        from vitalwatch.api.server import stop as stop_api
        from vitalwatch.dashboard.serve import stop as stop_dashboard

        for proc, stop_it in ((board, stop_dashboard), (api_proc, stop_api)):
            if proc is not None:
                stop_it(proc)


def _run_apps(s, ep, procs, plan, speedup: float, duration: float):
    """Start the applications, the simulator once every stage has run its first trigger (so
    the latency printed at the end is the running pipeline's, not its start-up's), and run
    until the duration passes or everything sent has been processed. When the simulation
    started (None if the applications never came up)."""
    import threading
    import time
    from datetime import UTC, datetime

    from vitalwatch.pipeline.health import lines, read_all
    from vitalwatch.pipeline.triggers import slowest_trigger_s
    from vitalwatch.producers.kafka_out import send
    from vitalwatch.producers.simulator import simulate as sim

    t0 = time.monotonic()
    procs.start_all()
    apps = set(APPS)

    def stages() -> list[dict]:
        return [st for d in read_all(s) if d["app"] in apps and d["running"] for st in d["stages"]]

    if not procs.wait_for(lambda: {d["app"] for d in read_all(s) if d["running"]} >= apps
                          and all(st["progressed"] for st in stages()), s.infra.start_timeout_s * 3):
        console.print(f"[red]the applications did not all start; see their logs in {procs.dir}[/red]")
        return None
    stop, done, result = threading.Event(), threading.Event(), {}

    def produce() -> None:
        try:
            result["report"] = send(sim(plan), ep.kafka("device"), s.kafka.topics.observations,
                                    speedup=speedup, should_stop=stop.is_set)
        except Exception as e:
            result["error"] = e
        finally:
            done.set()

    started = datetime.now(UTC)
    producer = threading.Thread(target=produce, name="simulator", daemon=True)
    producer.start()
    console.log(f"applications up in {time.monotonic() - t0:.0f} s; simulating {plan.cfg.patients} patients over "
                f"{plan.hours:g} simulated hours at x{speedup:g}; follow alerts with `vitalwatch alerts watch`; "
                f"Ctrl-C stops")
    quiet_since, said, slowest = None, [], slowest_trigger_s(s)
    try:
        while True:
            time.sleep(5)
            procs.check()
            now_lines = lines(s)
            if now_lines != said:  # one line per change
                said = now_lines
                for line in now_lines:
                    console.log(line)
            elapsed = (datetime.now(UTC) - started).total_seconds()
            if duration and elapsed >= duration:
                break
            if done.is_set() and all(st.get("last_input_rows") == 0 for st in stages()):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > slowest + 10:
                    break
            else:
                quiet_since = None
    finally:
        stop.set()
        producer.join(timeout=30)
    if "error" in result:
        console.print(f"[red]simulator failed:[/red] {result['error']}")
        return None
    return started


def _start_dashboard(s):
    """The dashboard in the background, with the local demo user when nobody can log in yet."""
    import pymongo

    from vitalwatch.dashboard.serve import ensure_demo_user, start, url

    admin = pymongo.MongoClient(_admin_mongo_uri(s), serverSelectionTimeoutMS=5000)[s.mongo.database]
    demo = ensure_demo_user(s, admin)
    log = s.path(s.infra.work_dir) / "dashboard" / "streamlit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = start(s, log=log)
    except (RuntimeError, TimeoutError) as e:  # the pipeline runs without it
        console.print(f"[yellow]dashboard not started:[/yellow] {e}")
        return None
    who = ("; sign in with a `vitalwatch users create` account" if demo is None
           else f"; created demo user {demo.username}, password {demo.password} (shown this once; also in {demo.file})"
           if demo.created else f"; demo user {demo.username} (its password: {demo.file})")
    console.log(f"dashboard: {url(s)}{who} (log: {log})")
    return proc


def _start_api(s):
    """The REST/FHIR API in the background (the pipeline runs without it if it fails)."""
    from vitalwatch.api.server import ca_file, start, url

    log = s.path(s.infra.work_dir) / "api" / "uvicorn.log"
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        proc = start(s, log=log)
    except (RuntimeError, TimeoutError) as e:
        console.print(f"[yellow]API not started:[/yellow] {e}")
        return None
    ca = ca_file(s)
    console.log(f"API: {url(s)}/api/v1/docs (the dashboard's users; POST /api/v1/token"
                + (f"; curl --cacert {ca}" if ca else "") + f"; log: {log})")
    return proc


def _gold_summary(spark, s, ep, since) -> None:
    """This run's scores and alerts per level in each store (the stores keep earlier runs'),
    and the event → alert latency on the topic."""
    import pymongo
    from pyspark.sql import functions as F

    from vitalwatch.alerts.feed import alert_latencies, percentiles
    from vitalwatch.pipeline.gold import GOLD_ALERTS, GOLD_SCORES
    from vitalwatch.pipeline.lake import read_table
    from vitalwatch.sinks.search import base_url, index_name

    t0 = since.replace(tzinfo=None)
    scores = read_table(spark, s, GOLD_SCORES).where((F.col("scored_time") >= t0) & F.col("observation_id").isNotNull())
    alerts = read_table(spark, s, GOLD_ALERTS).where(F.col("raised_time") >= t0)
    db = pymongo.MongoClient(ep.mongo_uri)[s.mongo.database]
    import requests

    base = base_url(ep.es_nodes or "")
    requests.post(f"{base}/{index_name(s, 'risk')},{index_name(s, 'alerts')}/_refresh", timeout=30)
    iso = t0.isoformat()
    es = {k: requests.get(f"{base}/{index_name(s, k)}/_count", timeout=10,
                          json={"query": {"range": {f: {"gte": iso}}}}).json().get("count", 0)
          for k, f in (("risk", "scored_time"), ("alerts", "raised_time"))}
    out = Console()
    t = Table("store", "risk scores", "alerts", title=f"gold, this run (since {since:%H:%M:%S} UTC)")
    t.add_row("Delta gold/", str(scores.count()), str(alerts.count()))
    t.add_row("MongoDB", str(db.risk_scores.count_documents({"scored_time": {"$gte": t0}})),
              str(db.alerts.count_documents({"raised_time": {"$gte": t0}})))
    t.add_row("Elasticsearch", str(es["risk"]), str(es["alerts"]))
    out.print(t)
    t = Table("level", "alerts", title="alerts by level")
    for r in alerts.groupBy("level").count().orderBy("level").collect():
        t.add_row(r["level"], str(r["count"]))
    out.print(t)
    q = percentiles(alert_latencies(ep.kafka("watch"), s.kafka.topics.alerts, since.timestamp() * 1000))
    if q:
        console.log(f"event → alert on {s.kafka.topics.alerts} (reading's Kafka time → alert's Kafka time), "
                    f"{q['n']:.0f} alerts: p50 {q['p50']:.1f}s, p95 {q['p95']:.1f}s, p99 {q['p99']:.1f}s, "
                    f"max {q['max']:.1f}s")


# -- models ---------------------------------------------------------------------------------
@app.command()
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

    s = get_settings()
    m = s.models
    upd: dict = {k: v for k, v in dict(num_workers=num_workers, device=device).items() if v is not None}
    if trees:
        upd["xgboost"] = {**m.xgboost, "n_estimators": trees}
    if random_forest is not None:
        upd["random_forest"] = m.random_forest.model_copy(update={"enabled": random_forest})
    # Training collects the validation/test vectors and caches the examples: it needs more
    # driver memory than the streaming jobs (2 GiB thrashes in GC on the full ICU data).
    s = s.model_copy(update={"models": m.model_copy(update=upd),
                             "spark": s.spark.model_copy(update={"driver_memory": m.train_driver_memory})})
    with console.status("starting Spark") as st:
        spark = build_session(s, app_name="vitalwatch-train")
        src = load_source(spark, s, source, patients=patients, sequences=sequences)
        rep = train_risk(spark, s, src, progress=lambda msg: (st.update(msg), console.log(msg)))
    sys.stdout.write(markdown_table(rep.table))
    sys.stdout.write(rep.events)
    console.log(f"run {rep.run_id}: {rep.decision}")
    console.log("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in rep.timings.items()))


def _champion_unusable(s: Settings) -> str | None:
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


@models_app.command("show")
def models_show() -> None:
    """Registered versions of the risk and triage models, with aliases and the selection metric."""
    from vitalwatch.models.integrity import CHECKSUM_TAG
    from vitalwatch.models.registry import client

    s = get_settings()
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
    Console(width=200).print(t)


@models_app.command("alert-policy")
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

    s = get_settings()
    s = s.model_copy(update={"spark": s.spark.model_copy(update={"driver_memory": s.models.train_driver_memory})})
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    loaded = load_risk_model(s)
    model = ModelRef(loaded.name, loaded.version, loaded.scorer)
    with console.status("starting Spark") as st:
        spark = build_session(s, app_name="vitalwatch-alert-policy")
        src = load_source(spark, s, "icu", patients=patients)
        metrics, scored = alert_eval.evaluate_events(src.rows, model, s, dest,
                                                     progress=lambda m: (st.update(m), console.log(m)))
        if explore:
            grid = alert_eval.explore(scored["validation"], s, s.alerts.policy,
                                      progress=lambda m: (st.update(m), console.log(m)))
            grid.to_csv(dest / "exploration.csv", index=False)
            front = alert_eval.frontier(grid)
            (dest / "frontier.md").write_text(markdown(front))
            e = s.models.event_evaluation
            best = alert_eval.choose(grid, e.target_burden_ph, e.target_warned)
            console.log(f"exploration: {len(grid)} policies → {dest / 'exploration.csv'}; frontier "
                        f"{dest / 'frontier.md'}; chosen by the rule: {best.to_dict()}")
    console.log(f"model {loaded.name} version {loaded.version}; event evaluation {metrics['event_eval_s']:.0f} s")
    sys.stdout.write((dest / "events.md").read_text())


@models_app.command("compare")
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
    from vitalwatch.pipeline.gold import GOLD_SCORES

    s = get_settings()
    since = (datetime.now(UTC) - timedelta(days=days)).date()
    df = read_delta(DeltaTable(s.table_path(*GOLD_SCORES)), score_columns(s), [("effective_date", ">=", since)])
    df["effective_time"] = df["effective_time"].dt.tz_convert(None)
    table = compare(df, s)
    if table.empty:
        console.print(f"no readings scored by both a champion and a shadow since {since} with a known outcome "
                      f"(gold.shadow_alias is {s.gold.shadow_alias!r})")
        raise typer.Exit(1)
    sys.stdout.write(markdown(table))


@models_app.command("history")
def models_history(
    triage: Annotated[bool, typer.Option(help="the triage model instead of the crisis-risk model")] = False,
) -> None:
    """Every logged move of the model's aliases (who moved champion/challenger, when, why)."""
    from vitalwatch.models.integrity import alias_history

    s = get_settings()
    name = s.models.triage_model_name if triage else s.models.risk_model_name
    t = Table("time", "alias", "from", "to", "by", "reason", title=name)
    for m in alias_history(s, name):
        t.add_row(*(str(m.get(k) or "") for k in ("time", "alias", "from", "to", "by", "reason")))
    Console(width=200).print(t)


@models_app.command("seal")
def models_seal(
    version: Annotated[str, typer.Argument(help="the registered version whose files you have checked")],
    triage: Annotated[bool, typer.Option(help="the triage model instead of the crisis-risk model")] = False,
) -> None:
    """Record the checksum of a version's artifacts as they are now (versions registered before
    models were sealed). Only after checking its files: the scoring app trusts what is sealed."""
    from vitalwatch.models.integrity import CHECKSUM_TAG, seal

    s = get_settings()
    name = s.models.triage_model_name if triage else s.models.risk_model_name
    console.print(f"{name} version {version} sealed: {CHECKSUM_TAG} {seal(s, name, version)}")


@triage_app.command("train")
def triage_train(
    csv: Annotated[str | None, typer.Option(help="labelled CSV (default: the shared heart.csv)")] = None,
) -> None:
    """Train the critical/normal classifier (critical = 1 - target) and register it."""
    from pathlib import Path

    from vitalwatch.models.triage import train_triage
    from vitalwatch.spark import build_session

    s = get_settings()
    path = Path(csv) if csv else s.path("../shared/data/heart-disease/heart.csv")
    with console.status("training triage model"):
        rep = train_triage(build_session(s, app_name="vitalwatch-triage-train"), s, path)
    console.log(f"test metrics: {', '.join(f'{k} {v:.3f}' for k, v in rep.metrics.items())}")
    console.log(f"run {rep.run_id}: {rep.decision}")


@triage_app.command("score")
def triage_score(
    csv: Annotated[str, typer.Argument(help="CSV with the 13 feature columns (a target column is ignored)")],
) -> None:
    """Score a CSV with the champion triage model; publish each row to the alerts (critical)
    or normal topic."""
    from pathlib import Path

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.models.triage import TriageInputError, publish, score
    from vitalwatch.spark import build_session

    s = get_settings()
    with console.status("scoring"):
        spark = build_session(s, app_name="vitalwatch-triage-score")
        try:
            counts = publish(score(spark, s, Path(csv)), resolve(s, ("kafka",)).kafka("pipeline"))
        except TriageInputError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from e
    for topic, n in sorted(counts.items()):
        console.log(f"{n} rows → {topic}")


# -- MongoDB, registry, alerts, search ------------------------------------------------------
def _admin_mongo_uri(s) -> str:
    """The administrator's URI: $VITALWATCH_MONGO_ADMIN_URI, else the local server's admin."""
    import os

    from vitalwatch.infra.endpoints import resolve

    if uri := os.environ.get("VITALWATCH_MONGO_ADMIN_URI"):
        return uri
    return resolve(s.model_copy(update={"mongo": s.mongo.model_copy(update={"uri": None})}), ("mongo",)).mongo_uri or ""


def _mongo_init(s) -> dict:
    """Apply roles/users on the local server (a cluster's are applied by its administrator)."""
    import os

    from vitalwatch.sinks import mongo

    if s.mongo.uri and not os.environ.get("VITALWATCH_MONGO_ADMIN_URI"):
        return {}
    return mongo.init(s, _admin_mongo_uri(s))


@mongo_app.command("init")
def mongo_init() -> None:
    """Create/update collections, indexes, the analysts' views, roles and users (idempotent).
    Connects as administrator: $VITALWATCH_MONGO_ADMIN_URI, else the local server's admin."""
    from vitalwatch.sinks import mongo

    s = get_settings()
    done = mongo.init(s, _admin_mongo_uri(s))
    for k, v in done.items():
        console.log(f"{k}: {', '.join(v)}")


@kafka_app.command("init")
def kafka_init() -> None:
    """Create/update the SCRAM users of kafka.security.acls (each role's password from
    $VITALWATCH_KAFKA_<ROLE>_PASSWORD or kafka.security.password_dir), sync their ACLs and
    create the topics (idempotent). Signs in as admin; `infra up` does this for the local broker."""
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.kafka import provision
    from vitalwatch.infra.kafka_acls import ensure_principals, principals

    s = get_settings()
    ep = resolve(s, ("kafka",))
    sec = s.kafka.security
    roles = principals(s)
    ensure_principals(ep.kafka("admin"), s, {r: ep.kafka(r).password for r in roles})
    provision(ep.kafka("admin"), s)
    console.log(f"kafka: users {', '.join(roles)} ({sec.mechanism}), their ACLs and topics "
                f"{', '.join(s.kafka.topics.model_dump().values())} are in place")


@kafka_app.command("acls")
def kafka_acls() -> None:
    """List what each principal is granted (from conf/, as `kafka init` applies it)."""
    from vitalwatch.infra.kafka_acls import acl_bindings

    for b in acl_bindings(get_settings()):
        console.print(f"{b.principal:15} {b.operation.name:6} {b.restype.name.lower():6} "
                      f"{b.name}{'*' if b.resource_pattern_type.name == 'PREFIXED' else ''}")


@mongo_app.command("script")
def mongo_script(out: Annotated[str | None, typer.Option(help="write to this file (default: stdout)")] = None) -> None:
    """Render the same roles and users as a mongosh script (docker/mongo/init-security.js)."""
    from pathlib import Path

    from vitalwatch.sinks.mongo import render_script

    text = render_script(get_settings())
    if out:
        Path(out).write_text(text)
        console.log(f"wrote {out}")
    else:
        sys.stdout.write(text)


@patients_app.command("register")
def patients_register(
    patients: Annotated[int | None, typer.Option(help="simulated patients (as `simulate` makes them)")] = None,
    seed: Annotated[int | None, typer.Option(help="simulator seed")] = None,
) -> None:
    """Register the simulator's patients (ward, care team, identifiers) in MongoDB."""
    _register_simulated(get_settings(), patients, seed)


def _register_simulated(s, patients: int | None, seed: int | None) -> int:
    from datetime import UTC, datetime

    import pymongo

    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.producers.simulator import SimulationPlan, registry_entries
    from vitalwatch.sinks import mongo

    cfg = s.simulator.model_copy(update={k: v for k, v in dict(patients=patients, seed=seed).items() if v is not None})
    docs = registry_entries(SimulationPlan(datetime.now(UTC), 1.0, cfg))
    uri = mongo.pipeline_uri(s, resolve(s, ("mongo",)).mongo_uri or "")
    n = mongo.register_patients(pymongo.MongoClient(uri)[s.mongo.database], docs)
    console.log(f"registry: {len(docs)} patients ({n} new)")
    return len(docs)


@patients_app.command("observations")
def patients_observations(
    patient: Annotated[list[str] | None, typer.Option(help="only these patients (repeatable)")] = None,
    top: Annotated[int, typer.Option(help="print at most this many patients (most observations first)")] = 50,
) -> None:
    """Observation counts per patient in silver (the source project's check_patient_observations):
    observations, values per vital sign, first and last reading, and quarantined messages."""
    from vitalwatch.dashboard.data import observation_counts

    s = get_settings()
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
    Console(width=200).print(t)
    if len(counts) > top:
        console.print(f"… and {len(counts) - top} more patients (--top)")
    console.print(f"silver/quarantine: {quarantined} messages or resources refused (see their reasons there)")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="login name (lower-case)")],
    role: Annotated[str, typer.Option(help="clinician, nurse, analyst or admin (conf: dashboard.roles)")],
    display_name: Annotated[str, typer.Option(help="name shown in the app")] = "",
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
    reset: Annotated[bool, typer.Option(help="replace the password and role of an existing user")] = False,
) -> None:
    """Create a dashboard user (the source project's create_users). The password is asked for
    (twice) unless --password-stdin; only its bcrypt hash is stored."""
    import pymongo

    from vitalwatch.dashboard import auth

    s = get_settings()
    pw = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    db = pymongo.MongoClient(_admin_mongo_uri(s), serverSelectionTimeoutMS=5000)[s.mongo.database]
    try:
        done = auth.create_user(db, s, username, pw, role, display_name, replace=reset)
    except auth.AuthError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e
    if not done:
        console.print(f"[red]user {username!r} exists[/red] (use --reset to replace its password and role)")
        raise typer.Exit(1)
    console.log(f"user {username} ({role}) {'updated' if reset else 'created'}")


@users_app.command("list")
def users_list() -> None:
    """Dashboard users and their roles (no hashes)."""
    import pymongo

    from vitalwatch.dashboard import auth

    s = get_settings()
    db = pymongo.MongoClient(_admin_mongo_uri(s), serverSelectionTimeoutMS=5000)[s.mongo.database]
    t = Table("user", "role", "name", "active", "created")
    for u in auth.list_users(db):
        t.add_row(u["_id"], u.get("role", ""), u.get("display_name", ""), str(u.get("active", True)),
                  str(u.get("created_time", "")))
    Console(width=160).print(t)


@users_app.command("deactivate")
def users_deactivate(username: Annotated[str, typer.Argument(help="login name")]) -> None:
    """Stop a user from logging in (kept for the audit trail of their acknowledgements)."""
    import pymongo

    from vitalwatch.dashboard import auth

    s = get_settings()
    db = pymongo.MongoClient(_admin_mongo_uri(s), serverSelectionTimeoutMS=5000)[s.mongo.database]
    if not auth.set_active(db, username, False):
        console.print(f"[red]no user {username!r}[/red]")
        raise typer.Exit(1)
    console.log(f"user {username} deactivated")


@app.command()
def dashboard(
    port: Annotated[int | None, typer.Option(help="port (default: conf dashboard.port)")] = None,
) -> None:
    """Serve the clinicians' Streamlit dashboard (ward overview, patient, alert inbox, model,
    pipeline health) on dashboard.host:port until Ctrl-C. Needs the local servers (or a
    cluster's endpoints) and `vitalwatch mongo init`; create users with `vitalwatch users create`."""
    import subprocess

    from vitalwatch.dashboard.serve import command, url

    s = get_settings()
    _mongo_init(s)
    console.log(f"dashboard on {url(s, port)} (Ctrl-C stops)")
    try:
        raise typer.Exit(subprocess.call(command(s, port)))
    except KeyboardInterrupt:
        pass


@app.command()
def api(
    port: Annotated[int | None, typer.Option(help="port (default: conf api.port)")] = None,
) -> None:
    """Serve the REST and FHIR API (/api/v1, /fhir; OpenAPI at /api/v1/openapi.json, docs at
    /api/v1/docs) with uvicorn on api.host:port until Ctrl-C: the dashboard's users and roles,
    bearer tokens from POST /api/v1/token. Needs the local servers and `vitalwatch mongo init`."""
    import os

    from vitalwatch.api.server import ca_file, command, url

    s = get_settings()
    _mongo_init(s)
    trust = "" if s.api.tls_cert_file or not s.api.tls else f" (TLS: trust {ca_file(s)})"
    console.log(f"API on {url(s, port)}/api/v1/docs{trust} (Ctrl-C stops)")
    cmd = command(s, port)
    os.execv(cmd[0], cmd)  # uvicorn takes this process: a container's stop signal reaches it


@alerts_app.command("watch")
def alerts_watch(
    ward: Annotated[str | None, typer.Option(help="only this ward's alerts")] = None,
    caregiver: Annotated[str | None, typer.Option(help="only alerts routed to this caregiver id")] = None,
    from_beginning: Annotated[bool, typer.Option(help="replay the topic from the start")] = False,
    idle_exit: Annotated[float, typer.Option(help="exit after S seconds without a message (0: never)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON event per line")] = False,
) -> None:
    """Follow alerts live from the alerts topic, each alert once (by alert_id)."""
    import json

    from vitalwatch.alerts.feed import AlertFilter, describe, follow
    from vitalwatch.infra.endpoints import resolve

    s = get_settings()
    ep = resolve(s, ("kafka",))
    console.log(f"following {s.kafka.topics.alerts}" + (f" for ward {ward}" if ward else "")
                + (f" for caregiver {caregiver}" if caregiver else "") + "; Ctrl-C stops")
    try:
        for ev in follow(ep.kafka("watch"), s.kafka.topics.alerts, keep=AlertFilter(ward, caregiver),
                         from_beginning=from_beginning, idle_timeout_s=idle_exit or None):
            sys.stdout.write((json.dumps(ev, default=str) if as_json else describe(ev)) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="the alert to acknowledge")],
    user: Annotated[str, typer.Option(help="your dashboard username (a role that may acknowledge)")],
    note: Annotated[str, typer.Option(help="a note kept with the acknowledgement")] = "",
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
) -> None:
    """Acknowledge an alert as a signed-in dashboard user: the password is checked (throttled,
    audited) like the dashboard's sign-in, and the acknowledgement records that user and role,
    written through the dashboard's own MongoDB account."""
    import pymongo

    from vitalwatch.dashboard import auth
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.sinks import mongo

    s = get_settings()
    pw = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("password", hide_input=True)
    server = resolve(s, ("mongo",)).mongo_uri or ""
    acct = s.dashboard.mongo_user
    db = pymongo.MongoClient(mongo.user_uri(server, acct, mongo.user_password(s, acct), s.mongo.database),
                             serverSelectionTimeoutMS=5000)[s.mongo.database]
    signed, out = auth.sign_in(db, s, user, pw, source="cli")
    if signed is None:
        console.print("[red]" + (f"too many failed sign-ins; try again in {out.retry_after_s:.0f} s"
                                 if out.reason == "throttled" else "invalid username or password") + "[/red]")
        raise typer.Exit(1)
    if not auth.allowed(s, signed.role, "acknowledge"):
        console.print(f"[red]role {signed.role} may not acknowledge alerts[/red]")
        raise typer.Exit(1)
    try:
        first = mongo.acknowledge(db, alert_id, signed.username, note, role=signed.role, source="cli")
    except KeyError as e:
        console.print(f"[red]no alert {alert_id!r}[/red]")
        raise typer.Exit(1) from e
    console.log("acknowledged" if first else "already acknowledged")


@search_app.command("init")
def search_init() -> None:
    """Install the Elasticsearch index templates (conf/elasticsearch/) and create the indices
    (idempotent, retried; `infra up` runs it too — the pipeline never does)."""
    from vitalwatch.infra.endpoints import resolve
    from vitalwatch.infra.manager import search_init as init

    s = get_settings()
    init(s, resolve(s, ("elasticsearch",)).es_nodes or "", console.log)


@search_app.command("kibana-import")
def kibana_import(
    url: Annotated[str, typer.Option(help="Kibana base URL")] = "http://127.0.0.1:5601",
    file: Annotated[str | None, typer.Option(help="saved objects (default dashboards/kibana/vitalwatch.ndjson)")] = None,
) -> None:
    """Import the data views and the dashboard into Kibana (overwrites same ids)."""
    from pathlib import Path

    from vitalwatch.config import project_root
    from vitalwatch.sinks.kibana import import_saved_objects

    path = Path(file) if file else project_root() / "dashboards" / "kibana" / "vitalwatch.ndjson"
    res = import_saved_objects(url, path)
    console.log(f"imported {res.get('successCount', 0)} objects: success={res.get('success')}")
    if not res.get("success"):
        console.print(res.get("errors"))
        raise typer.Exit(1)


def _simulation_plan(spark, s, hours: float, cfg):
    """The ``hours`` ending now (no reading dated after it is sent, at any speed-up). If the lake
    already holds readings of these patients in that window (an earlier run), their later
    readings would all be late for the scoring state; the simulated ward then admits a new
    cohort of patients instead (ids ``r<MMDDHHMM>-p00000``…)."""
    from datetime import UTC, datetime

    from pyspark.sql import functions as F

    from vitalwatch.pipeline.lake import SILVER_VITALS, read_table
    from vitalwatch.producers.simulator import SimulationPlan

    plan = SimulationPlan.until_now(hours, cfg)
    try:
        newest = (read_table(spark, s, SILVER_VITALS).where(F.col("patient_id").startswith(cfg.patient_prefix))
                  .agg(F.max("effective_time").cast("long")).first()[0])
    except Exception:
        return plan
    if newest is None or datetime.fromtimestamp(int(newest), UTC) < plan.start:
        return plan
    cohort = f"r{datetime.now(UTC):%m%d%H%M}-{cfg.patient_prefix}"
    console.log(f"the lake has readings of patients {cfg.patient_prefix}… in the last {hours:g} h: "
                f"simulating a new cohort {cohort}…")
    return SimulationPlan(plan.start, hours, cfg.model_copy(update={"patient_prefix": cohort}))


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
