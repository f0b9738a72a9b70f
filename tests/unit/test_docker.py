"""docker/: ``docker compose config`` accepts the stack (no engine needed for that), refuses it
without the passwords, and every service's entry point, command, job, CLI command and mounted
file exists in the image it runs in; the environment it passes lands in real settings fields."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from itertools import takewhile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vitalwatch.config import Settings
from vitalwatch.infra.artifacts import compose_command

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
STACK = {"kafka", "mongo", "elasticsearch", "kibana", "mlflow", "spark-master", "spark-worker",
         "search-init", "kibana-init", "trainer", "pipeline-alerts", "pipeline-lake", "pipeline-serving",
         "notifier", "dashboard"}
APPS = ("alerts", "lake", "serving")
DOCKERFILES = {"vitalwatch/spark-jobs": "Dockerfile.spark", "vitalwatch/dashboard": "Dockerfile.dashboard"}
IMAGE_HOME = "/opt/vitalwatch"


def _env_file(tmp_path: Path, **extra: str) -> Path:
    names = re.findall(r"^([A-Z_]+)=$", (DOCKER / "env.example").read_text(), re.M)
    assert names, "env.example lists the secrets to set"
    f = tmp_path / "test.env"
    f.write_text("".join(f"{n}=not-a-real-{i}\n" for i, n in enumerate(names)) + "".join(f"{k}={v}\n" for k, v in extra.items()))
    return f


def _config(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*compose_command(Settings()), "-f", str(COMPOSE), "--env-file", str(env_file), *args],
                          capture_output=True, text=True, timeout=120, cwd=DOCKER)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict:
    """The stack as ``docker compose config`` normalises it (profiles: all)."""
    out = _config(_env_file(tmp_path_factory.mktemp("compose")), "--profile", "demo", "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_config_accepts_the_stack(stack: dict) -> None:
    assert STACK | {"simulator"} == set(stack["services"])
    svc = stack["services"]
    assert svc["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "--auth" in svc["mongo"]["command"]
    init = [v for v in svc["mongo"]["volumes"] if v["target"].startswith("/docker-entrypoint-initdb.d/")]
    assert [Path(v["source"]) for v in init] == [DOCKER / "mongo" / "init-security.js"]
    pwd = svc["mongo"]["environment"]["VITALWATCH_MONGO_PIPELINE_PASSWORD"]
    for app in APPS:  # the pipeline's applications, each its own service running one --app
        assert f"vitalwatch_pipeline:{pwd}@mongo:27017" in svc[f"pipeline-{app}"]["environment"]["VITALWATCH__MONGO__URI"]
        assert svc[f"pipeline-{app}"]["command"][-2:] == ["--app", app]
        assert svc[f"pipeline-{app}"]["restart"] == "unless-stopped"
    assert svc["pipeline-alerts"]["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert "spark.cores.max" in " ".join(svc["pipeline-alerts"]["command"])  # cores of its own
    # the notifier: its own MongoDB account, never the pipeline's password
    assert "VITALWATCH_MONGO_PIPELINE_PASSWORD" not in str(svc["notifier"]["environment"])
    assert pwd not in str(svc["notifier"]["environment"]) and svc["notifier"]["command"] == ["notify"]
    assert svc["kibana-init"]["depends_on"]["kibana"]["condition"] == "service_healthy"


def test_no_service_holds_another_services_password(stack: dict) -> None:
    """Per-service secrets (issue 19): each service sees only its own MongoDB password; the
    database service alone holds them all, to create the accounts."""
    own = {**{f"pipeline-{a}": {"VITALWATCH_MONGO_PIPELINE_PASSWORD"} for a in APPS},
           "dashboard": {"VITALWATCH_MONGO_DASHBOARD_PASSWORD"}, "notifier": {"VITALWATCH_MONGO_NOTIFIER_PASSWORD"}}
    secrets = {n: v for n, v in stack["services"]["mongo"]["environment"].items() if n.endswith("_PASSWORD")}
    assert len(set(secrets.values())) == len(secrets) >= 7
    for name, svc in stack["services"].items():
        if name == "mongo":
            continue
        seen = json.dumps({k: svc.get(k) for k in ("environment", "command", "entrypoint")})
        holds = {n for n, v in secrets.items() if v in seen}
        assert holds <= own.get(name, set()), (name, holds)


def test_compose_refuses_a_stack_without_its_passwords(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    out = _config(empty, "config")
    assert out.returncode != 0 and "set it in docker/.env" in out.stderr


def _dockerfile_copies(dockerfile: str = "Dockerfile.spark") -> dict[str, Path]:
    """Path in the image → path in the repository, from the Dockerfile's COPY lines."""
    out = {}
    for src, dest in re.findall(r"^COPY (\S+) (\S+)$", (DOCKER / dockerfile).read_text(), re.M):
        target = dest if dest.startswith("/") else f"{IMAGE_HOME}/{dest.removeprefix('./')}"
        if target.endswith("/") or dest == ".":
            target = target.rstrip("/") + "/" + (Path(src).name if not (ROOT / src).is_dir() else "")
        out[target.rstrip("/")] = ROOT / src
    return out


def _in_image(path: str, dockerfile: str = "Dockerfile.spark") -> bool:
    for target, src in _dockerfile_copies(dockerfile).items():
        if path == target:
            return src.exists()
        if path.startswith(target + "/") and src.is_dir():
            return (src / path[len(target) + 1:]).exists()
    return False


def test_dockerfile_copies_exist_and_its_entry_point_is_copied() -> None:
    copies = _dockerfile_copies()
    assert all(src.exists() for src in copies.values()), copies
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", (DOCKER / "Dockerfile.spark").read_text(), re.M)[1])
    assert entry[0] == "/usr/bin/tini" and _in_image(entry[-1])


def test_dashboard_image_serves_the_app_it_copies(stack: dict) -> None:
    from typer.testing import CliRunner

    from vitalwatch.cli import app
    from vitalwatch.dashboard.serve import app_path

    text = (DOCKER / "Dockerfile.dashboard").read_text()
    copies = _dockerfile_copies("Dockerfile.dashboard")
    assert all(src.exists() for src in copies.values()), copies
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)[1])
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M)[1])
    assert entry == ["/usr/bin/tini", "--", "vitalwatch"] and "vitalwatch" in _console_scripts()
    assert CliRunner().invoke(app, [*cmd, "--help"]).exit_code == 0
    # the app and every page it registers are in the image
    rel = app_path().relative_to(ROOT).as_posix()
    assert _in_image(f"{IMAGE_HOME}/{rel}", "Dockerfile.dashboard")
    for page in re.findall(r'st\.Page\("([^"]+)"', app_path().read_text()):
        assert _in_image(f"{IMAGE_HOME}/dashboards/{page}", "Dockerfile.dashboard"), page
    assert "_stcore/health" in text and "8501" in text
    svc = stack["services"]["dashboard"]
    assert svc["build"]["dockerfile"] == "docker/Dockerfile.dashboard"
    assert any(v["target"] == "/data" and v.get("read_only") for v in svc["volumes"])
    assert svc["environment"]["VITALWATCH_MONGO_DASHBOARD_PASSWORD"] == \
        stack["services"]["mongo"]["environment"]["VITALWATCH_MONGO_DASHBOARD_PASSWORD"]


def _console_scripts() -> set[str]:
    from importlib.metadata import entry_points

    return {e.name for e in entry_points(group="console_scripts")}


def test_every_jobs_image_service_runs_something_that_exists(stack: dict) -> None:
    """Entry points and commands of the services built from Dockerfile.spark."""
    from typer.testing import CliRunner

    from vitalwatch.cli import app

    jobs = {n: s for n, s in stack["services"].items()
            if s.get("build") and s["build"]["dockerfile"].endswith("Dockerfile.spark")}
    assert {"mlflow", "spark-master", "spark-worker", "pipeline-alerts", "trainer", "kibana-init"} <= set(jobs)
    scripts = _console_scripts()
    spark_core = next((Path(__import__("pyspark").__file__).parent / "jars").glob("spark-core_*.jar"))
    classes = set(zipfile.ZipFile(spark_core).namelist())
    for name, svc in jobs.items():
        entry, command = svc.get("entrypoint") or [], svc.get("command") or []
        if not entry:  # the image's: spark-submit.sh [--profile P] jobs/<job>.py
            job = next(c for c in command if c.endswith(".py"))
            assert (ROOT / job).is_file(), (name, job)
            continue
        assert entry[:2] == ["/usr/bin/tini", "--"], name
        prog = entry[2]
        if prog.startswith("/"):
            assert _in_image(prog), (name, prog)
            if prog.endswith("spark-daemon.sh"):
                assert f"{command[0].replace('.', '/')}.class" in classes, (name, command[0])
        else:
            assert prog in scripts, (name, prog)
        if prog == "vitalwatch":
            res = CliRunner().invoke(app, [*takewhile(lambda c: not c.startswith("--"), command), "--help"])
            assert res.exit_code == 0, (name, res.output)


def test_the_stack_environment_lands_in_settings_fields(stack: dict, monkeypatch) -> None:
    env = stack["services"]["pipeline-alerts"]["environment"]
    assert env["VITALWATCH_PROFILE"] == "cluster"
    for key in [k for k in env if k.startswith("VITALWATCH__")]:  # a typo would be ignored silently
        node = Settings.model_fields
        for part in key.removeprefix("VITALWATCH__").lower().split("__"):
            assert part in node, key
            ann = node[part].annotation
            node = getattr(ann, "model_fields", {}) if hasattr(ann, "model_fields") else {}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert s.kafka.bootstrap_servers == "kafka:9092" and s.spark.master == "spark://spark-master:7077"
    assert s.models.tracking_uri == "http://mlflow:5000" and s.lake.root == "/data/lake"
    assert s.mongo.uri == env["VITALWATCH__MONGO__URI"]
