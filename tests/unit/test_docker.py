"""docker/: ``docker compose config`` accepts the stack (no engine needed for that), refuses it
without any one of its secrets, and every service's entry point, command, job, CLI command and
mounted file exists in the image it runs in; the environment it passes lands in real settings
fields. Security (issue 19): Elasticsearch with security and TLS, Kibana behind a login on the
loopback address, MLflow with basic-auth, Spark with spark.authenticate and its secret only in
the environment, each secret held only by the services env.example names, the REST/FHIR API
(HTTPS, its own account, certificate and keys, no Java in its image) — and the set-up
scripts (certificates, Elasticsearch users/roles/API key, MLflow users, Kibana import) run
against fakes of the servers they talk to."""

from __future__ import annotations

import base64
import configparser
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from itertools import takewhile
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.helpers import ROOT
from vitalwatch.config import Settings
from vitalwatch.infra.artifacts import compose_command

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
STACK = {"kafka", "kafka-init", "mongo", "tls-init", "elasticsearch", "es-security-init", "kibana", "mlflow", "mlflow-init",
         "spark-master", "spark-worker", "search-init", "kibana-init", "trainer", "pipeline-alerts", "pipeline-lake",
         "pipeline-serving", "notifier", "dashboard", "api"}
APPS = ("alerts", "lake", "serving")
PIPELINE = {f"pipeline-{a}" for a in APPS}
SPARK_PROCESSES = {"spark-master", "spark-worker", *PIPELINE}
DOCKERFILES = {"vitalwatch/spark-jobs": "Dockerfile.spark", "vitalwatch/dashboard": "Dockerfile.dashboard"}
IMAGE_HOME = "/opt/vitalwatch"
CA_IN_CONTAINERS = "/etc/vitalwatch/tls/ca.crt"
API_KEY_VOLUME = "es-api-key"


def _declared() -> dict[str, set[str]]:
    """env.example: each variable → the services its comment line says receive it."""
    out, comment = {}, ""
    for line in (DOCKER / "env.example").read_text().splitlines():
        if m := re.fullmatch(r"([A-Z_]+)=", line):
            services = comment.split(":", 1)[0] if ":" in comment else ""
            out[m[1]] = {s.strip() for s in services.split(",") if s.strip()}
        comment = line.removeprefix("#").strip() if line.startswith("#") else ""
    return out


def _values() -> dict[str, str]:
    """A distinct value per secret, none a substring of another (equal length, distinct prefix)."""
    return {n: f"s{i:03d}x-not-a-real-secret-0123456789" for i, n in enumerate(sorted(_declared()))}


def _env_file(tmp_path: Path, drop: str | None = None, **extra: str) -> Path:
    values = _values()
    assert values, "env.example lists the secrets to set"
    f = tmp_path / f"test-{drop or 'all'}.env"
    f.write_text("".join(f"{k}={v}\n" for k, v in {**values, **extra}.items() if k != drop))
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


def _load(rel: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(rel).stem, DOCKER / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _seen(svc: dict) -> str:
    """Everything of a service a secret could hide in."""
    return json.dumps({k: svc.get(k) for k in ("environment", "command", "entrypoint", "healthcheck", "volumes")})


def _holders(stack: dict, value: str) -> set[str]:
    return {name for name, svc in stack["services"].items() if value in _seen(svc)}


def _mounts(svc: dict) -> dict[str, dict]:
    return {v["target"]: v for v in svc.get("volumes", [])}


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
    # set-up before use: certificates before their servers, users before their clients
    assert svc["elasticsearch"]["depends_on"]["tls-init"]["condition"] == "service_completed_successfully"
    assert svc["kibana"]["depends_on"]["es-security-init"]["condition"] == "service_completed_successfully"
    assert svc["search-init"]["depends_on"]["es-security-init"]["condition"] == "service_completed_successfully"
    assert svc["trainer"]["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully"
    assert svc["dashboard"]["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully"
    for name in ("dashboard", "api"):   # users and certificates before the apps that sign in and serve with them
        for dep, condition in (("mongo", "service_healthy"), ("mlflow-init", "service_completed_successfully"),
                               ("tls-init", "service_completed_successfully")):
            assert svc[name]["depends_on"][dep]["condition"] == condition, (name, dep)


# -- secrets -------------------------------------------------------------------------------------
def test_no_service_holds_another_services_password(stack: dict) -> None:
    """Per-service secrets (issue 19): every secret reaches exactly the services its env.example
    line names, and those lists are themselves least privilege."""
    declared, values = _declared(), _values()
    assert len(declared) >= 18
    for name, value in values.items():
        assert _holders(stack, value) == declared[name], name
    holders = {n: declared[n] for n in declared}
    # the database and the one-shot set-ups alone hold what they create; a service its own
    assert all("mongo" in h for n, h in holders.items() if n.startswith("VITALWATCH_MONGO_"))
    assert holders["VITALWATCH_MONGO_PIPELINE_PASSWORD"] == {"mongo", *PIPELINE}
    assert holders["VITALWATCH_MONGO_DASHBOARD_PASSWORD"] == {"mongo", "dashboard"}
    assert holders["VITALWATCH_MONGO_API_PASSWORD"] == {"mongo", "api"}
    assert holders["VITALWATCH_MONGO_NOTIFIER_PASSWORD"] == {"mongo", "notifier"}
    assert holders["VITALWATCH_ELASTIC_PASSWORD"] == {"elasticsearch", "es-security-init"}
    assert holders["VITALWATCH_KIBANA_SYSTEM_PASSWORD"] == {"kibana", "es-security-init"}
    assert holders["VITALWATCH_KIBANA_READER_PASSWORD"] == {"es-security-init"}   # people sign in with it
    assert holders["VITALWATCH_KIBANA_SETUP_PASSWORD"] == {"es-security-init", "kibana-init"}
    assert holders["VITALWATCH_MLFLOW_ADMIN_PASSWORD"] == {"mlflow", "mlflow-init"}
    assert holders["VITALWATCH_MLFLOW_TRAINER_PASSWORD"] == {"mlflow-init", "trainer"}
    # the alert app (the champion) and the lake app (its training reference, for drift): read only
    assert holders["VITALWATCH_MLFLOW_PIPELINE_PASSWORD"] == {"mlflow-init", "pipeline-alerts", "pipeline-lake"}
    assert holders["VITALWATCH_MLFLOW_DASHBOARD_PASSWORD"] == {"mlflow-init", "dashboard"}
    assert holders["VITALWATCH_MLFLOW_API_PASSWORD"] == {"mlflow-init", "api"}
    # the API's own keys: nobody else's, not even a set-up job's
    assert holders["VITALWATCH_API_TOKEN_KEY"] == holders["VITALWATCH_API_PSEUDONYM_KEY"] == {"api"}
    assert holders["VITALWATCH_SPARK_AUTH_SECRET"] == SPARK_PROCESSES   # shared only among Spark processes
    # no shared anchor (x-…) carries a secret
    raw = yaml.safe_load(COMPOSE.read_text())
    for key, block in raw.items():
        if key.startswith("x-"):
            assert not [n for n in declared if n in json.dumps(block)], key


def test_every_secret_in_env_example_is_required(tmp_path: Path) -> None:
    """Compose refuses the stack without any one of them, naming it; and env.example lists every
    variable compose requires."""
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    assert required == set(_declared())
    for name in sorted(required):
        out = _config(_env_file(tmp_path, drop=name), "--profile", "demo", "config", "--quiet")
        assert out.returncode != 0 and name in out.stderr, name


def test_compose_refuses_a_stack_without_its_passwords(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    out = _config(empty, "config")
    assert out.returncode != 0 and "set it in docker/.env" in out.stderr


# -- certificates --------------------------------------------------------------------------------
def _image_uid(dockerfile: str) -> int:
    return int(re.search(r"useradd [^\n]*--uid (\d+)", (DOCKER / dockerfile).read_text())[1])


def _tls_binds(stack: dict) -> dict[str, list[dict]]:
    return {n: [v for v in s.get("volumes", []) if v["type"] == "bind" and Path(v["source"]).suffix in (".crt", ".key")]
            for n, s in stack["services"].items()}


def test_each_server_gets_only_its_own_key_owned_by_its_user(stack: dict, tmp_path: Path) -> None:
    svc = stack["services"]
    binds = _tls_binds(stack)
    default = Path(os.path.normpath(DOCKER / ".." / ".work" / "infra" / "tls"))
    assert {Path(v["source"]).parent for vs in binds.values() for v in vs} == {default}
    moved = _config(_env_file(tmp_path, VITALWATCH_TLS_DIR="/srv/vitalwatch-tls"), "config", "--format", "json")
    assert moved.returncode == 0, moved.stderr   # VITALWATCH_TLS_DIR moves every one of them
    assert {Path(v["source"]).parent for vs in _tls_binds(json.loads(moved.stdout)).values() for v in vs} == \
        {Path("/srv/vitalwatch-tls")}
    for name, vs in binds.items():
        for v in vs:
            assert v.get("read_only") and not v.get("bind", {}).get("create_host_path"), (name, v)
            assert Path(v["source"]).name != "ca.key", name   # the CA's key is never mounted
            if Path(v["source"]).suffix == ".key":           # private keys reach tls-init only
                assert name == "tls-init", (name, v)
    assert {Path(v["source"]).name for v in binds["tls-init"]} == \
        {"ca.crt", "elasticsearch.crt", "elasticsearch.key", "mlflow.crt", "mlflow.key", "dashboard.crt", "dashboard.key",
         "api.crt", "api.key"}
    assert svc["tls-init"]["network_mode"] == "none" and svc["tls-init"]["user"] == "0:0"
    specs = {s.split("=")[0]: (s.split("=")[1], set(s.split("=")[2].split(","))) for s in svc["tls-init"]["command"]}
    out = {v["target"]: v["source"] for v in svc["tls-init"]["volumes"] if v["type"] == "volume"}
    # each volume: one server's files, owned by the user its image runs as, mounted read-only by it alone
    expect = {"elasticsearch": ("es-tls", "1000:0", "/usr/share/elasticsearch/config/certs"),
              "mlflow": ("mlflow-tls", f"{_image_uid('Dockerfile.spark')}:0", "/etc/vitalwatch/mlflow-tls"),
              "dashboard": ("dashboard-tls", f"{_image_uid('Dockerfile.dashboard')}:0", "/etc/vitalwatch/dashboard-tls"),
              "api": ("api-tls", f"{_image_uid('Dockerfile.dashboard')}:0", "/etc/vitalwatch/api-tls")}
    for server, (volume, owner, target) in expect.items():
        dest = next(d for d, v in out.items() if v == volume)
        assert specs[dest][0] == owner and {f"{server}.crt", f"{server}.key"} <= specs[dest][1], server
        assert not {f for f in specs[dest][1] if f.endswith(".key")} - {f"{server}.key"}, server
        users = {n for n, s in svc.items() if any(v.get("source") == volume for v in s.get("volumes", []))}
        assert users == {"tls-init", server}, (volume, users)
        assert _mounts(svc[server])[target]["read_only"], server


# -- MongoDB: requireTLS ------------------------------------------------------------------------
MONGO_UID = "999:999"   # the mongodb user of the official mongo image


def test_mongo_requires_tls_with_its_own_certificate(stack: dict) -> None:
    svc = stack["services"]
    cmd = svc["mongo"]["command"]
    flag = {k: cmd[i + 1] for i, k in enumerate(cmd[:-1]) if k.startswith("--tls") and not cmd[i + 1].startswith("--")}
    assert "--auth" in cmd and flag["--tlsMode"] == "requireTLS"
    assert "--tlsAllowInvalidCertificates" not in cmd and "--tlsAllowInvalidHostnames" not in cmd
    mounts = _mounts(svc["mongo"])
    tls_dir = str(Path(flag["--tlsCertificateKeyFile"]).parent)
    assert Path(flag["--tlsCAFile"]).parent == Path(tls_dir) and mounts[tls_dir]["read_only"]
    assert mounts[tls_dir]["type"] == "volume" and svc["mongo"]["depends_on"]["tls-init"]["condition"] == \
        "service_completed_successfully"
    volume = mounts[tls_dir]["source"]
    users = {n for n, s in svc.items() if any(v.get("source") == volume for v in s.get("volumes", []))}
    assert users == {"tls-init", "mongo"}
    # tls-init writes exactly mongod's certificate+key and the CA into it, owned by mongod's user
    dest = next(v["target"] for v in svc["tls-init"]["volumes"] if v.get("source") == volume)
    spec = next(s for s in svc["tls-init"]["command"] if s.split("=")[0] == dest)
    assert spec.split("=")[1] == MONGO_UID
    assert set(spec.split("=")[2].split(",")) == {"ca.crt", "mongo.pem"} == \
        {Path(flag["--tlsCertificateKeyFile"]).name, Path(flag["--tlsCAFile"]).name}
    pems = {n for n, s in svc.items() for v in s.get("volumes", []) if str(v.get("source", "")).endswith(".pem")}
    assert pems == {"tls-init"}   # the key inside mongo.pem reaches tls-init only
    health = svc["mongo"]["healthcheck"]["test"]
    assert "--tls" in health and health[health.index("--tlsCAFile") + 1] == flag["--tlsCAFile"]


def test_every_mongo_client_connects_over_tls_verified_against_the_ca(stack: dict, monkeypatch) -> None:
    import vitalwatch.jvm
    from vitalwatch.sinks import mongo
    from vitalwatch.spark import session_conf

    svc = stack["services"]
    clients = {n for n, s in svc.items() if "VITALWATCH__MONGO__URI" in (s.get("environment") or {})}
    assert clients == {*PIPELINE, "notifier", "dashboard", "api"}
    for name in clients:
        env = svc[name]["environment"]
        q = parse_qs(urlsplit(env["VITALWATCH__MONGO__URI"]).query)
        assert q["tls"] == ["true"] and q["tlsCAFile"] == [CA_IN_CONTAINERS], name
        assert _mounts(svc[name])[CA_IN_CONTAINERS]["read_only"], name
        assert "tlsInsecure" not in env["VITALWATCH__MONGO__URI"] and "tlsAllowInvalid" not in env["VITALWATCH__MONGO__URI"]
        # the per-account URIs built from it (dashboard, API, notifier) keep TLS
        q = parse_qs(urlsplit(mongo.user_uri(env["VITALWATCH__MONGO__URI"], "u", "p", "vitalwatch")).query)
        assert q["tls"] == ["true"] and q["tlsCAFile"] == [CA_IN_CONTAINERS], name
    # the Spark connector (Java driver: no tlsCAFile) trusts the JVM trust store docker/entrypoint.sh
    # builds from the CA, on each driver and on the workers that run their executors, at one path
    stores = {n: (svc[n]["environment"].get("VITALWATCH__MONGO__TRUSTSTORE"), svc[n]["environment"].get("VITALWATCH__MONGO__CA_FILE"))
              for n in {*PIPELINE, "spark-worker"}}
    assert len(set(stores.values())) == 1 and next(iter(stores.values()))[1] == CA_IN_CONTAINERS, stores
    store = next(iter(stores.values()))[0]
    assert store.startswith(IMAGE_HOME + "/.work/")   # writable by the image's user
    env = svc["pipeline-serving"]["environment"]
    monkeypatch.delenv("VITALWATCH_SPARK_SUBMIT", raising=False)
    monkeypatch.setattr(vitalwatch.jvm, "jar_path", lambda _s: Path("/x/vitalwatch-spark.jar"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    conf = session_conf(Settings())
    for side in ("driver", "executor"):
        opts = conf[f"spark.{side}.extraJavaOptions"].split()
        assert f"-Djavax.net.ssl.trustStore={store}" in opts and not any("trustStorePassword" in o for o in opts), side


def test_entrypoint_builds_the_mongo_truststore_with_the_jdks_cas_and_ours(tmp_path: Path) -> None:
    ca, store = tmp_path / "ca.crt", tmp_path / "store" / "mongo.jks"
    _a_ca_certificate(ca)
    env = {**os.environ, "VITALWATCH__MONGO__CA_FILE": str(ca), "VITALWATCH__MONGO__TRUSTSTORE": str(store)}
    out = subprocess.run([str(DOCKER / "entrypoint.sh"), "true"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = subprocess.run(["keytool", "-list", "-keystore", str(store), "-storetype", "JKS"], input="\n",
                            capture_output=True, text=True, timeout=120).stdout
    # ours, and the public CAs the same JVM needs for Maven Central
    assert "vitalwatch-ca," in listed and listed.count("trustedCertEntry") > 20, listed[-2000:]
    env["VITALWATCH__MONGO__CA_FILE"] = str(tmp_path / "absent.crt")
    out = subprocess.run([str(DOCKER / "entrypoint.sh"), "true"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "vitalwatch infra certs" in out.stderr


# -- Elasticsearch and Kibana -------------------------------------------------------------------
def test_elasticsearch_runs_security_with_tls(stack: dict) -> None:
    values = _values()
    es = stack["services"]["elasticsearch"]
    env = es["environment"]
    assert env["xpack.security.enabled"] == "true"
    assert env["xpack.security.http.ssl.enabled"] == "true" and env["xpack.security.transport.ssl.enabled"] == "true"
    for layer in ("http", "transport"):
        assert env[f"xpack.security.{layer}.ssl.key"] == "certs/elasticsearch.key"
        assert env[f"xpack.security.{layer}.ssl.certificate"] == "certs/elasticsearch.crt"
        assert env[f"xpack.security.{layer}.ssl.certificate_authorities"] == "certs/ca.crt"
    assert env["ELASTIC_PASSWORD"] == values["VITALWATCH_ELASTIC_PASSWORD"]
    assert _mounts(es)["/usr/share/elasticsearch/config/certs"]["source"] == "es-tls"
    assert not es.get("ports")   # the compose network only
    check = " ".join(es["healthcheck"]["test"])
    assert "https://localhost:9200" in check and "--cacert" in check and "missing authentication credentials" in check
    # every client of it: HTTPS against the CA
    for s in stack["services"].values():
        e = s.get("environment") or {}
        if "VITALWATCH__ELASTICSEARCH__SSL" in e:
            assert e["VITALWATCH__ELASTICSEARCH__SSL"] == "true" and e["VITALWATCH__ELASTICSEARCH__CA_FILE"] in _mounts(s)
    assert stack["services"]["es-security-init"]["environment"]["ES_URL"] == "https://elasticsearch:9200"


def test_kibana_requires_a_login_and_is_published_on_loopback_only(stack: dict) -> None:
    values = _values()
    kb = stack["services"]["kibana"]
    env = kb["environment"]
    assert all(h.startswith("https://") for h in json.loads(env["ELASTICSEARCH_HOSTS"]))
    assert env["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert env["ELASTICSEARCH_PASSWORD"] == values["VITALWATCH_KIBANA_SYSTEM_PASSWORD"]
    assert env["ELASTICSEARCH_SSL_VERIFICATIONMODE"] == "full"
    assert _mounts(kb)[env["ELASTICSEARCH_SSL_CERTIFICATEAUTHORITIES"]]["source"].endswith("/ca.crt")
    assert kb["ports"] and all(p["host_ip"] == "127.0.0.1" for p in kb["ports"])
    check = " ".join(kb["healthcheck"]["test"])   # healthy = refusing anonymous API calls, serving its login page
    assert "/api/status" in check and "= 401" in check and "/login" in check
    for name, s in stack["services"].items():   # nothing else published beyond this host either
        assert all(p.get("host_ip") == "127.0.0.1" for p in s.get("ports", [])), name
    init = stack["services"]["kibana-init"]["environment"]
    sec = _load("elasticsearch/security_init.py")
    assert init["KIBANA_SETUP_USER"] == sec.SETUP_USER
    assert sec.PASSWORD_ENV[sec.SETUP_USER] in init


def test_the_api_key_reaches_only_the_pipelines_writers(stack: dict) -> None:
    svc = stack["services"]
    users = {n: m for n, s in svc.items() for m in s.get("volumes", []) if m.get("source") == API_KEY_VOLUME}
    assert set(users) == {"es-security-init", "search-init", "pipeline-serving"}
    assert not users["es-security-init"].get("read_only")
    assert users["search-init"]["read_only"] and users["pipeline-serving"]["read_only"]
    key_file = svc["es-security-init"]["environment"]["ES_API_KEY_FILE"]
    for name in ("search-init", "pipeline-serving"):
        env = svc[name]["environment"]
        assert env["VITALWATCH__ELASTICSEARCH__API_KEY_FILE"] == key_file
        assert key_file.startswith(users[name]["target"] + "/")
    for name, s in svc.items():   # nobody else is even pointed at it
        if name not in users:
            assert "API_KEY_FILE" not in json.dumps(s.get("environment")), name


class FakeResponse:
    def __init__(self, status: int, body: dict | None = None) -> None:
        self.status_code, self._body = status, body or {}
        self.text = json.dumps(self._body)
        self.content = self.text.encode()

    def json(self) -> dict:
        return self._body


class FakeElasticsearch:
    """The security APIs es-security-init calls, as Elasticsearch answers them."""

    def __init__(self, password: str, ca: str) -> None:
        self.password, self.ca = password, ca
        self.users: dict[str, dict] = {}
        self.roles: dict[str, dict] = {}
        self.keys: dict[str, dict] = {}
        self.urls: list[str] = []

    def add_key(self, name: str, descriptors: dict) -> str:
        kid = f"k{len(self.keys) + 1}"
        descriptors = json.loads(json.dumps(descriptors))
        self.keys[kid] = {"id": kid, "name": name, "api_key": f"secret-{kid}", "invalidated": False,
                          # as Elasticsearch returns them: normalised, with defaults filled in
                          "role_descriptors": {r: {**d, "applications": [], "run_as": [], "metadata": {},
                                                   "transient_metadata": {"enabled": True},
                                                   "indices": [{**i, "allow_restricted_indices": False}
                                                               for i in d["indices"]]}
                                               for r, d in descriptors.items()}}
        return base64.b64encode(f"{kid}:secret-{kid}".encode()).decode()

    def request(self, method: str, url: str, **kw) -> FakeResponse:
        self.urls.append(url)
        assert kw["verify"] == self.ca   # always HTTPS checked against the local CA
        parts = urlsplit(url)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = kw.get("json")
        auth = kw.get("headers", {}).get("Authorization", "")
        if auth.startswith("ApiKey "):
            kid, secret = base64.b64decode(auth[7:]).decode().split(":", 1)
            key = self.keys.get(kid)
            if path != "/_security/_authenticate" or not key or key["invalidated"] or key["api_key"] != secret:
                return FakeResponse(401)
            return FakeResponse(200, {"username": "elastic", "api_key": {"id": kid, "name": key["name"]}})
        if kw.get("auth") != ("elastic", self.password):
            return FakeResponse(401)
        if path == "/_cluster/health":
            return FakeResponse(200, {"status": "green"})
        if m := re.fullmatch(r"/_security/user/([^/]+)/_password", path):
            self.users.setdefault(m[1], {})["password"] = body["password"]
            return FakeResponse(200)
        if m := re.fullmatch(r"/_security/(role|user)/([^/]+)", path):
            (self.roles if m[1] == "role" else self.users)[m[2]] = body
            return FakeResponse(200, {"created": True})
        if path == "/_security/api_key" and method == "POST":
            encoded = self.add_key(body["name"], body["role_descriptors"])
            return FakeResponse(200, {"id": f"k{len(self.keys)}", "name": body["name"], "encoded": encoded})
        if path == "/_security/api_key" and method == "GET":
            keys = [k for k in self.keys.values()
                    if k["id"] == query.get("id", k["id"]) and k["name"] == query.get("name", k["name"])]
            return FakeResponse(200, {"api_keys": [{x: k[x] for x in ("id", "name", "invalidated", "role_descriptors")}
                                                   for k in keys]})
        if path == "/_security/api_key" and method == "DELETE":
            for kid in body["ids"]:
                self.keys[kid]["invalidated"] = True
            return FakeResponse(200, {"invalidated_api_keys": body["ids"]})
        return FakeResponse(404)

    def active(self) -> set[str]:
        return {k for k, v in self.keys.items() if not v["invalidated"]}


def test_es_security_init_converges_and_keeps_the_key_least_privileged(tmp_path: Path) -> None:
    sec = _load("elasticsearch/security_init.py")
    env = {v: f"{k}-password-0123456789" for k, v in sec.PASSWORD_ENV.items()}
    fake = FakeElasticsearch(env["VITALWATCH_ELASTIC_PASSWORD"], "/ca.crt")
    es = sec.Es("https://es:9200", "/ca.crt", env["VITALWATCH_ELASTIC_PASSWORD"], http=fake)
    key_file = tmp_path / "pipeline-api-key"
    sec.wait_ready(es, attempts=1)
    sec.setup(es, env, "vitalwatch", key_file, say=lambda _m: None)

    writer, reader = fake.roles["vitalwatch_writer"], fake.roles["vitalwatch_reader"]
    assert [i["names"] for i in writer["indices"]] == [["vitalwatch-*"]]
    assert set(writer["indices"][0]["privileges"]) == {"create_index", "index", "maintenance", "view_index_metadata"}
    assert not {"read", "all", "write", "delete", "delete_index", "manage"} & set(writer["indices"][0]["privileges"])
    assert set(writer["cluster"]) == {"monitor", "manage_index_templates"}
    assert reader["indices"] == [{"names": ["vitalwatch-*"], "privileges": ["read", "view_index_metadata"]}]
    assert not reader["cluster"] and [a["privileges"] for a in reader["applications"]] == [["space_read"]]
    assert fake.users["kibana_system"]["password"] == env["VITALWATCH_KIBANA_SYSTEM_PASSWORD"]
    assert fake.users[sec.READER_USER] == {**sec.users()[sec.READER_USER], "password": env["VITALWATCH_KIBANA_READER_PASSWORD"]}
    assert fake.users[sec.READER_USER]["roles"] == ["vitalwatch_reader"]
    assert fake.users[sec.SETUP_USER]["password"] == env["VITALWATCH_KIBANA_SETUP_PASSWORD"]
    # the API key: the writer's privileges, in a file only its owner can read
    assert fake.active() == {"k1"} and fake.keys["k1"]["name"] == sec.KEY_NAME
    assert sec._privileges(fake.keys["k1"]["role_descriptors"]["vitalwatch_writer"]) == sec._privileges(writer)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    first = key_file.read_text().strip()
    assert base64.b64decode(first).decode() == "k1:secret-k1"
    assert not any(p in u for u in fake.urls for p in env.values())   # no password in a URL

    sec.setup(es, env, "vitalwatch", key_file, say=lambda _m: None)   # again: nothing new
    assert fake.active() == {"k1"} and key_file.read_text().strip() == first
    fake.keys["k1"]["invalidated"] = True   # revoked behind its back: replaced
    sec.setup(es, env, "vitalwatch", key_file, say=lambda _m: None)
    assert fake.active() == {"k2"} and base64.b64decode(key_file.read_text()).decode().startswith("k2:")
    stray = fake.add_key(sec.KEY_NAME, {"vitalwatch_writer": writer})   # e.g. a run killed before writing its file
    assert stray and fake.active() == {"k2", "k3"}
    sec.setup(es, env, "vitalwatch", key_file, say=lambda _m: None)
    assert fake.active() == {"k2"}
    fake.keys["k2"]["role_descriptors"]["vitalwatch_writer"]["cluster"].append("all")   # broader than the role
    sec.setup(es, env, "vitalwatch", key_file, say=lambda _m: None)
    assert fake.active() == {"k4"}
    sec.setup(es, env, "vitalwatch", key_file, rotate=True, say=lambda _m: None)
    assert fake.active() == {"k5"} and stat.S_IMODE(key_file.stat().st_mode) == 0o400


def test_kibana_init_refuses_a_kibana_without_login(tmp_path: Path) -> None:
    kib = _load("kibana/import_saved_objects.py")
    ndjson = tmp_path / "objects.ndjson"
    ndjson.write_text('{"type":"index-pattern","id":"x","attributes":{"title":"x"},"references":[]}\n')

    class Http:
        def __init__(self, anonymous: int) -> None:
            self.anonymous, self.posts = anonymous, []

        def get(self, url: str, **kw) -> FakeResponse:
            assert "auth" not in kw
            return FakeResponse(self.anonymous)

        def post(self, url: str, **kw) -> FakeResponse:
            self.posts.append((url, kw["auth"], kw["headers"]))
            return FakeResponse(200, {"success": True, "successCount": 1})

    ok = Http(401)
    assert kib.import_saved_objects("http://kibana:5601", "setup", "pw-0123456789", ndjson, http=ok)["successCount"] == 1
    assert ok.posts == [("http://kibana:5601/api/saved_objects/_import", ("setup", "pw-0123456789"), {"kbn-xsrf": "vitalwatch"})]
    open_kibana = Http(200)
    with pytest.raises(RuntimeError, match="security is off"):
        kib.import_saved_objects("http://kibana:5601", "setup", "pw-0123456789", ndjson, http=open_kibana)
    assert not open_kibana.posts
    assert kib.saved_objects_file().is_file()


# -- MLflow --------------------------------------------------------------------------------------
def _mlflow_auth_config() -> ModuleType:
    """mlflow.server.auth.config without the package's __init__ (which needs the auth extra,
    Flask-WTF: the image installs it, the test environment need not)."""
    path = Path(importlib.util.find_spec("mlflow.server").origin).parent / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("mlflow_auth_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mlflow_runs_basic_auth_and_each_client_signs_in_as_itself(stack: dict, monkeypatch) -> None:
    from importlib.metadata import requires

    read_auth_config = _mlflow_auth_config().read_auth_config
    values, svc = _values(), stack["services"]
    # the image has the basic-auth app's dependencies: mlflow[auth] at the installed version
    assert any(r.startswith("Flask-WTF") and 'extra == "auth"' in r for r in requires("mlflow"))
    assert '"mlflow[auth]==$(python -c \'import mlflow; print(mlflow.__version__)\')"' in \
        (DOCKER / "Dockerfile.spark").read_text()
    ml = svc["mlflow"]
    cmd = ml["command"]
    assert cmd[cmd.index("--app-name") + 1] == "basic-auth"
    assert "mlflow" in cmd[cmd.index("--allowed-hosts") + 1].split(",")   # clients reach it as https://mlflow:5000
    tls = cmd[cmd.index("--uvicorn-opts") + 1].split()
    assert tls[tls.index("--ssl-certfile") + 1].startswith("/etc/vitalwatch/mlflow-tls/")
    assert tls[tls.index("--ssl-keyfile") + 1] == "/etc/vitalwatch/mlflow-tls/mlflow.key"
    assert ml["ports"] and all(p["host_ip"] == "127.0.0.1" for p in ml["ports"])
    check = " ".join(ml["healthcheck"]["test"])
    assert "https://localhost:5000/health" in check and CA_IN_CONTAINERS in check
    env = ml["environment"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == values["VITALWATCH_MLFLOW_ADMIN_PASSWORD"]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == values["VITALWATCH_MLFLOW_SECRET_KEY"]
    ini = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert _in_image(ini)
    # the installed MLflow reads that file and takes the admin's password from the environment
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(ROOT / ini.removeprefix(IMAGE_HOME + "/")))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-environment")
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_USERNAME", raising=False)
    cfg = read_auth_config()
    assert cfg.default_permission == "READ" and cfg.admin_password == "from-the-environment"
    assert cfg.database_uri.startswith("sqlite:////mlflow/") and _mounts(ml)["/mlflow"]["source"] == "mlflow-data"
    parsed = configparser.ConfigParser()
    parsed.read_string((ROOT / ini.removeprefix(IMAGE_HOME + "/")).read_text())
    assert not [k for k in parsed["mlflow"] if "password" in k or "secret" in k]   # no secret in the file
    init = svc["mlflow-init"]["environment"]
    assert init["MLFLOW_TRACKING_USERNAME"] == cfg.admin_username
    assert init["MLFLOW_TRACKING_PASSWORD"] == values["VITALWATCH_MLFLOW_ADMIN_PASSWORD"]
    users = _load("mlflow/init_users.py").USERS
    clients = {n: s["environment"] for n, s in svc.items()
               if "MLFLOW_TRACKING_USERNAME" in (s.get("environment") or {}) and n != "mlflow-init"}
    assert {n: e["MLFLOW_TRACKING_USERNAME"] for n, e in clients.items()} == \
        {"trainer": "vitalwatch_trainer", "pipeline-alerts": "vitalwatch_pipeline", "pipeline-lake": "vitalwatch_pipeline",
         "dashboard": "vitalwatch_dashboard", "api": "vitalwatch_api"}
    for name, e in clients.items():
        password_env, permission = users[e["MLFLOW_TRACKING_USERNAME"]]
        assert e["MLFLOW_TRACKING_PASSWORD"] == init[password_env] == values[password_env], name
        assert permission == ("MANAGE" if name == "trainer" else "READ"), name
        assert e["VITALWATCH__MODELS__TRACKING_URI"] == "https://mlflow:5000"
        assert e["MLFLOW_TRACKING_SERVER_CERT_PATH"] == CA_IN_CONTAINERS and CA_IN_CONTAINERS in _mounts(svc[name])


class _Auth:
    """MLflow's basic-auth client, per-user grant API (recent releases) or per-model (older)."""

    def __init__(self, legacy: bool = False) -> None:
        self.users: dict[str, str] = {}
        self.grants: dict[tuple[str, str], str] = {}
        if legacy:
            self.create_registered_model_permission = lambda m, u, p: self._grant(u, m, p)
            self.update_registered_model_permission = lambda m, u, p: self.grants.__setitem__((u, m), p)
        else:
            self.grant_user_permission = lambda u, t, m, p: self._grant(u, m, p, t)
            self.revoke_user_permission = lambda u, t, m: self.grants.pop((u, m))

    @staticmethod
    def _error(code: str) -> Exception:
        from mlflow.exceptions import MlflowException
        from mlflow.protos import databricks_pb2

        return MlflowException(code, error_code=getattr(databricks_pb2, code))

    def _grant(self, user: str, model: str, permission: str, rtype: str = "registered_model") -> None:
        assert rtype == "registered_model" and user in self.users
        if (user, model) in self.grants:
            raise self._error("RESOURCE_ALREADY_EXISTS")
        self.grants[(user, model)] = permission

    def get_user(self, name: str) -> dict:
        if name not in self.users:
            raise self._error("RESOURCE_DOES_NOT_EXIST")
        return {"username": name}

    def create_user(self, name: str, password: str) -> None:
        assert name not in self.users
        self.users[name] = password

    def update_user_password(self, name: str, password: str) -> None:
        self.users[name] = password


class _Registry:
    def __init__(self) -> None:
        self.models: set[str] = set()

    def get_registered_model(self, name: str) -> dict:
        if name not in self.models:
            raise _Auth._error("RESOURCE_DOES_NOT_EXIST")
        return {"name": name}


@pytest.mark.parametrize("legacy", [False, True])
def test_mlflow_init_converges_to_read_only_readers(legacy: bool) -> None:
    mod = _load("mlflow/init_users.py")
    env = {p: f"{u}-password-0123456789" for u, (p, _) in mod.USERS.items()}
    auth, registry, models = _Auth(legacy), _Registry(), ["risk", "triage"]
    mod.setup(auth, registry, env, models, say=lambda _m: None)
    assert auth.users == {u: env[p] for u, (p, _) in mod.USERS.items()}
    readers = {(u, m): "READ" for u in ("vitalwatch_pipeline", "vitalwatch_dashboard", "vitalwatch_api") for m in models}
    assert auth.grants == readers   # the trainer: MANAGE as the creator of what it registers
    registry.models.update(models)
    auth.grants[("vitalwatch_pipeline", "risk")] = "EDIT"   # drifted: set back
    env["VITALWATCH_MLFLOW_PIPELINE_PASSWORD"] = "a-new-password-0123456789"
    mod.setup(auth, registry, env, models, say=lambda _m: None)
    assert auth.grants == readers | {("vitalwatch_trainer", m): "MANAGE" for m in models}
    assert auth.users["vitalwatch_pipeline"] == "a-new-password-0123456789"
    mod.setup(auth, registry, env, models, say=lambda _m: None)   # and again: unchanged
    assert auth.grants == readers | {("vitalwatch_trainer", m): "MANAGE" for m in models}


# -- Spark ---------------------------------------------------------------------------------------
def test_spark_authenticates_with_the_secret_only_in_the_environment(stack: dict, monkeypatch) -> None:
    import pyspark

    import vitalwatch.jvm
    from vitalwatch.spark import session_conf

    secret, svc = _values()["VITALWATCH_SPARK_AUTH_SECRET"], stack["services"]
    jars = Path(pyspark.__file__).parent / "jars"
    core = zipfile.ZipFile(next(jars.glob("spark-core_*.jar")))
    assert b"_SPARK_AUTH_SECRET" in core.read("org/apache/spark/SecurityManager$.class")   # the variable Spark reads
    launcher = zipfile.ZipFile(next(jars.glob("spark-launcher_*.jar")))
    assert b"SPARK_DAEMON_JAVA_OPTS" in launcher.read("org/apache/spark/launcher/SparkClassCommandBuilder.class")
    for name in ("spark-master", "spark-worker"):
        opts = svc[name]["environment"]["SPARK_DAEMON_JAVA_OPTS"].split()
        assert {"-Dspark.authenticate=true", "-Dspark.network.crypto.enabled=true", "-Dspark.ui.killEnabled=false",
                "-Dspark.master.rest.enabled=false"} <= set(opts), name
    for name in SPARK_PROCESSES:
        s = svc[name]
        assert s["environment"]["_SPARK_AUTH_SECRET"] == secret, name
        assert secret not in json.dumps([s.get("command"), s.get("entrypoint")]), name
        assert "spark.authenticate.secret" not in json.dumps(s.get("command")), name
    for name in PIPELINE:   # every application: the cluster profile, whose Spark conf authenticates
        s = svc[name]
        assert s["command"][:2] == ["--profile", "cluster"] and s["environment"]["VITALWATCH_PROFILE"] == "cluster"
        assert s["environment"]["VITALWATCH__SPARK__MASTER"].startswith("spark://")
    assert svc["trainer"]["environment"]["VITALWATCH__SPARK__MASTER"].startswith("local")   # its own, no secret
    monkeypatch.setenv("VITALWATCH_PROFILE", "cluster")
    monkeypatch.delenv("VITALWATCH_SPARK_SUBMIT", raising=False)
    monkeypatch.setattr(vitalwatch.jvm, "jar_path", lambda _s: Path("/x/vitalwatch-spark.jar"))
    conf = session_conf(Settings())
    assert conf["spark.authenticate"] == "true" and conf["spark.network.crypto.enabled"] == "true"
    assert conf["spark.ui.killEnabled"] == "false"
    # Spark insists the key be set for a spark:// master; the value is not a secret and not used
    assert "_SPARK_AUTH_SECRET" in conf["spark.authenticate.secret"] and secret not in json.dumps(conf)
    monkeypatch.setenv("VITALWATCH_PROFILE", "local")
    assert "spark.authenticate" not in session_conf(Settings())   # local runs: one process, nothing to authenticate


# -- scripts -------------------------------------------------------------------------------------
SCRIPTS = ["entrypoint.sh", "spark-daemon.sh", "tls/install-certs.sh", "kafka/start.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_scripts_parse_and_are_executable(script: str) -> None:
    path = DOCKER / script
    assert os.access(path, os.X_OK), script
    out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_spark_daemon_refuses_authentication_without_a_secret() -> None:
    env = {**os.environ, "SPARK_DAEMON_JAVA_OPTS": "-Dspark.authenticate=true -Dx=y"}
    env.pop("_SPARK_AUTH_SECRET", None)
    out = subprocess.run([str(DOCKER / "spark-daemon.sh"), "org.apache.spark.deploy.master.Master"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "_SPARK_AUTH_SECRET" in out.stderr


def _a_ca_certificate(path: Path) -> None:
    import datetime as dt

    from vitalwatch.infra.tls import _pem_cert, make_ca

    path.write_bytes(_pem_cert(make_ca(1, dt.datetime.now(dt.UTC))[1]))


def test_tls_init_copies_only_the_listed_files_owned_by_their_user(tmp_path: Path) -> None:
    src, dest = tmp_path / "tls", tmp_path / "out" / "server"
    src.mkdir()
    for f in ("ca.crt", "server.crt", "server.key", "ca.key", "other.key"):
        (src / f).write_text(f"pem of {f}\n")
        (src / f).chmod(0o600)
    owner = f"{os.getuid()}:{os.getgid()}"
    script = str(DOCKER / "tls" / "install-certs.sh")
    out = subprocess.run([script, str(src), f"{dest}={owner}=ca.crt,server.crt,server.key"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["ca.crt", "server.crt", "server.key"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o400 and p.stat().st_uid == os.getuid() for p in dest.iterdir())
    assert stat.S_IMODE(dest.stat().st_mode) == 0o500 and (dest / "server.key").read_text() == "pem of server.key\n"
    refused = subprocess.run([script, str(src), f"{tmp_path / 'x'}={owner}=ca.key"], capture_output=True, text=True)
    assert refused.returncode != 0 and not (tmp_path / "x").exists()
    missing = subprocess.run([script, str(src), f"{tmp_path / 'y'}={owner}=nope.key"], capture_output=True, text=True)
    assert missing.returncode == 1 and "vitalwatch infra certs" in missing.stderr


def test_entrypoint_builds_a_truststore_the_connector_opens_without_a_password(tmp_path: Path) -> None:
    ca, store = tmp_path / "ca.crt", tmp_path / "store" / "ca.jks"
    _a_ca_certificate(ca)
    env = {**os.environ, "VITALWATCH__ELASTICSEARCH__CA_FILE": str(ca), "VITALWATCH__ELASTICSEARCH__TRUSTSTORE": str(store)}
    out = subprocess.run([str(DOCKER / "entrypoint.sh"), "sh", "-c", "echo ran \"$@\"", "-", "ok"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ran ok", out.stderr
    assert shutil.which("keytool")
    # no password: the integrity check is skipped but the CA's entry is listed (as elasticsearch-spark loads it)
    listed = subprocess.run(["keytool", "-list", "-keystore", str(store), "-storetype", "JKS"], input="\n",
                            capture_output=True, text=True, timeout=120)
    assert "trustedCertEntry" in listed.stdout and "vitalwatch-ca" in listed.stdout, listed.stdout + listed.stderr
    env["VITALWATCH__ELASTICSEARCH__CA_FILE"] = str(tmp_path / "absent.crt")
    out = subprocess.run([str(DOCKER / "entrypoint.sh"), "true"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "vitalwatch infra certs" in out.stderr


def test_the_pipelines_elasticsearch_options_carry_tls_and_the_key(stack: dict, tmp_path: Path, monkeypatch) -> None:
    """pipeline-serving's environment, as the connector options and REST calls it yields."""
    from vitalwatch.infra.elasticsearch import spark_options
    from vitalwatch.sinks.search import rest_base, rest_headers

    env = stack["services"]["pipeline-serving"]["environment"]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    key = tmp_path / "pipeline-api-key"
    key.write_text("ZW5jb2RlZDprZXk=\n")
    monkeypatch.setenv("VITALWATCH__ELASTICSEARCH__API_KEY_FILE", str(key))
    s = Settings()
    opts = spark_options(s.elasticsearch.nodes, s.elasticsearch)
    assert opts["es.net.ssl"] == "true"
    assert opts["es.net.ssl.truststore.location"] == "file://" + env["VITALWATCH__ELASTICSEARCH__TRUSTSTORE"]
    assert "es.net.ssl.truststore.pass" not in opts
    assert opts["es.net.http.header.Authorization"] == "ApiKey ZW5jb2RlZDprZXk="
    assert re.search(s.spark.redaction_regex, opts["es.net.http.header.Authorization"])   # hidden in plans and logs
    assert rest_base(s.elasticsearch.nodes, opts) == "https://elasticsearch:9200"
    assert rest_headers(opts) == {"Authorization": "ApiKey ZW5jb2RlZDprZXk="}
    worker = stack["services"]["spark-worker"]   # executors: the same truststore path, the CA for REST
    assert worker["environment"]["VITALWATCH__ELASTICSEARCH__TRUSTSTORE"] == env["VITALWATCH__ELASTICSEARCH__TRUSTSTORE"]
    assert worker["environment"]["REQUESTS_CA_BUNDLE"] in _mounts(worker)
    assert worker["entrypoint"][2].endswith("/entrypoint.sh")
    monkeypatch.setenv("VITALWATCH_PROFILE", "local")   # the local node: unchanged, plain HTTP, no header
    for k in [k for k in os.environ if k.startswith("VITALWATCH__ELASTICSEARCH__")]:
        monkeypatch.delenv(k)
    assert spark_options("127.0.0.1:9200", Settings().elasticsearch) == spark_options("127.0.0.1:9200") == \
        {"es.nodes": "127.0.0.1:9200", "es.nodes.wan.only": "true", "es.net.ssl": "false"}


# -- images --------------------------------------------------------------------------------------
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
    assert entry[0] == "/usr/bin/tini" and all(_in_image(p) for p in entry[2:]) and entry[-1].endswith("spark-submit.sh")
    assert not [p for p in copies if p.rstrip("/") == f"{IMAGE_HOME}/docker"]   # never docker/ whole (docker/.env)


def test_dashboard_image_serves_the_app_it_copies(stack: dict) -> None:
    from typer.testing import CliRunner

    from vitalwatch.cli import app
    from vitalwatch.dashboard.launch import app_path

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
    env = svc["environment"]   # HTTPS with its own certificate, which the health check verifies
    assert env["VITALWATCH__DASHBOARD__TLS"] == "true"
    assert Path(env["VITALWATCH__DASHBOARD__TLS_KEY_FILE"]).parent.as_posix() in _mounts(svc)
    assert "https://localhost:8501/_stcore/health" in " ".join(svc["healthcheck"]["test"])


def _image_env(dockerfile: str) -> dict[str, str]:
    """The ``ENV k=v \\`` lines of a Dockerfile."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / dockerfile).read_text())
    return dict(kv.split("=", 1) for line in re.findall(r"^ENV (.+)$", text, re.M) for kv in line.split())


def _no_java(dockerfile: str) -> None:
    """A Python slim base and nothing of Java installed, fetched or pointed at."""
    text = (DOCKER / dockerfile).read_text()
    assert re.search(r"^FROM python:3\.11-slim\S*$", text, re.M), dockerfile
    instructions = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert not [line for line in instructions if re.search(r"java|jdk|jre|keytool|spark", line, re.I)], dockerfile


def test_api_serves_https_from_the_java_free_image_with_its_own_secrets(stack: dict, monkeypatch) -> None:
    """The REST/FHIR API: the dashboard's image (no JDK), `vitalwatch api` on 0.0.0.0 behind a
    port published on loopback, HTTPS with its own certificate (which its health check verifies),
    its own MongoDB account and MLflow user, its own token and pseudonym keys, the lake read-only."""
    import vitalwatch.cli
    from vitalwatch.api import tokens
    from vitalwatch.sinks.mongo import security, user_password

    svc, values = stack["services"], _values()
    api = svc["api"]
    # the image: Dockerfile.dashboard, the same build as the dashboard's, and no Java in it
    assert api["build"]["dockerfile"] == "docker/Dockerfile.dashboard" and api["image"] == svc["dashboard"]["image"]
    _no_java("Dockerfile.dashboard")
    assert api["command"] == ["api"] and api["restart"] == "unless-stopped"
    # what `vitalwatch api` runs with this environment: uvicorn on 0.0.0.0:<api.port>, HTTPS with the mounted files
    for k in [k for k in os.environ if k.startswith(("VITALWATCH", "MLFLOW_"))]:
        monkeypatch.delenv(k)
    for k, v in {**_image_env("Dockerfile.dashboard"), **api["environment"]}.items():
        if k != "VITALWATCH_HOME":   # the image's checkout; here, this one
            monkeypatch.setenv(k, v)
    calls: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, cmd: calls.append(cmd))  # uvicorn would take the process
    monkeypatch.setattr(vitalwatch.cli, "get_settings", Settings)
    from typer.testing import CliRunner

    res = CliRunner().invoke(vitalwatch.cli.app, api["command"])
    assert res.exit_code == 0 and len(calls) == 1, res.output
    cmd, s = calls[0], Settings()
    arg = {k: cmd[i + 1] for i, k in enumerate(cmd[:-1]) if k.startswith("--")}
    assert cmd[1:4] == ["-m", "uvicorn", "vitalwatch.api.app:from_environment"] and "--factory" in cmd
    assert arg["--host"] == "0.0.0.0" and int(arg["--port"]) == s.api.port
    env = api["environment"]
    assert env["VITALWATCH__API__TLS"] == "true"
    assert arg["--ssl-certfile"] == env["VITALWATCH__API__TLS_CERT_FILE"] and Path(arg["--ssl-certfile"]).name == "api.crt"
    assert arg["--ssl-keyfile"] == env["VITALWATCH__API__TLS_KEY_FILE"] and Path(arg["--ssl-keyfile"]).name == "api.key"
    tls = _mounts(api)[Path(arg["--ssl-keyfile"]).parent.as_posix()]
    assert tls["source"] == "api-tls" and tls["read_only"]   # filled by tls-init (see the certificates' test)
    # published on loopback only, at the port it serves; healthy = its schema over verified HTTPS
    assert [(p["host_ip"], int(p["target"])) for p in api["ports"]] == [("127.0.0.1", s.api.port)]
    check = " ".join(api["healthcheck"]["test"])
    assert f"https://localhost:{s.api.port}/api/v1/openapi.json" in check and f"cafile='{CA_IN_CONTAINERS}'" in check
    assert _mounts(api)[CA_IN_CONTAINERS]["read_only"]
    # its own MongoDB account: the URI carries no one's credentials, the password is its user's alone
    assert security(s).users[s.api.mongo_user]["password_env"] == "VITALWATCH_MONGO_API_PASSWORD"
    assert "@" not in env["VITALWATCH__MONGO__URI"]
    assert user_password(s, s.api.mongo_user) == values["VITALWATCH_MONGO_API_PASSWORD"] == \
        svc["mongo"]["environment"]["VITALWATCH_MONGO_API_PASSWORD"]
    assert [k for k in env if k.startswith("VITALWATCH_MONGO_")] == ["VITALWATCH_MONGO_API_PASSWORD"]
    # its keys, read from where the API reads them, at least as long as it demands
    assert tokens.signing_key(s) == values["VITALWATCH_API_TOKEN_KEY"].encode()
    assert tokens.secret(s, "pseudonym", tokens.PSEUDONYM_KEY_ENV) == values["VITALWATCH_API_PSEUDONYM_KEY"].encode()
    assert all(len(values[k]) >= tokens.MIN_KEY_BYTES for k in ("VITALWATCH_API_TOKEN_KEY", "VITALWATCH_API_PSEUDONYM_KEY"))
    # every secret it holds is its own: no other service's password or key, none of Kafka, Spark, Elasticsearch
    assert {n for n, v in values.items() if v in _seen(api)} == \
        {"VITALWATCH_MONGO_API_PASSWORD", "VITALWATCH_MLFLOW_API_PASSWORD", "VITALWATCH_API_TOKEN_KEY",
         "VITALWATCH_API_PSEUDONYM_KEY"}
    creators = {"mongo": {"VITALWATCH_MONGO_API_PASSWORD"}, "mlflow-init": {"VITALWATCH_MLFLOW_API_PASSWORD"}}
    for name, other in svc.items():   # elsewhere only where its accounts are created; its keys nowhere
        if name != "api":
            keys = {k for k in other.get("environment") or {} if re.match(r"VITALWATCH_(API|MONGO_API|MLFLOW_API)_|VITALWATCH__API__", k)}
            assert keys == creators.get(name, set()), name
    # MLflow as a read-only user; the lake read-only (delta-rs), where the cluster profile puts it
    assert env["MLFLOW_TRACKING_USERNAME"] == "vitalwatch_api"
    assert _load("mlflow/init_users.py").USERS["vitalwatch_api"] == ("VITALWATCH_MLFLOW_API_PASSWORD", "READ")
    lake = _mounts(api)["/data"]
    assert lake["source"] == "lake" and lake["read_only"] and s.lake.root.startswith("/data/")


def _console_scripts() -> set[str]:
    from importlib.metadata import entry_points

    return {e.name for e in entry_points(group="console_scripts")}


def test_every_jobs_image_service_runs_something_that_exists(stack: dict) -> None:
    """Entry points and commands of the services built from Dockerfile.spark."""
    from typer.testing import CliRunner

    from vitalwatch.cli import app

    jobs = {n: s for n, s in stack["services"].items()
            if s.get("build") and s["build"]["dockerfile"].endswith("Dockerfile.spark")}
    assert {"mlflow", "spark-master", "spark-worker", "pipeline-alerts", "trainer", "kibana-init", "tls-init",
            "es-security-init", "mlflow-init"} <= set(jobs)
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
        prog, rest = entry[2], entry[3:]
        if prog.endswith("/entrypoint.sh"):   # the truststore, then the real program
            assert _in_image(prog), name
            prog, rest = rest[0], rest[1:]
        if prog == "python":
            assert _in_image(rest[0]), (name, rest[0])
            continue
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
    for name, svc in stack["services"].items():   # a typo would be ignored silently
        for key in [k for k in (svc.get("environment") or {}) if k.startswith("VITALWATCH__")]:
            node = Settings.model_fields
            for part in key.removeprefix("VITALWATCH__").lower().split("__"):
                assert part in node, (name, key)
                ann = node[part].annotation
                node = getattr(ann, "model_fields", {}) if hasattr(ann, "model_fields") else {}
    env = stack["services"]["pipeline-alerts"]["environment"]
    assert env["VITALWATCH_PROFILE"] == "cluster"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert s.kafka.bootstrap_servers == "kafka:9092" and s.spark.master == "spark://spark-master:7077"
    assert s.models.tracking_uri == "https://mlflow:5000" and s.lake.root == "/data/lake"
    assert s.mongo.uri == env["VITALWATCH__MONGO__URI"]


# -- Kafka: SASL_SSL, SCRAM, ACLs ---------------------------------------------------------------
KAFKA_CA_IN_BROKER = "/etc/kafka/tls/ca.crt"
KAFKA_PASSWORD = re.compile(r"VITALWATCH_KAFKA_([A-Z]+)_PASSWORD")
# the Kafka principal each compose service runs as: the role its program asks for
# (jobs/pipeline.py → pipeline, `vitalwatch notify` → notifier, `vitalwatch simulate` → device)
KAFKA_ROLE_OF = {**{p: "pipeline" for p in PIPELINE}, "notifier": "notifier", "simulator": "device"}
KAFKA_SERVER_ONLY = {"kafka", "kafka-init"}   # the broker and its one-shot set-up


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def _kafka_env(stack: dict, tmp: Path, **extra: str) -> dict[str, str]:
    """The kafka service's environment, its files moved under ``tmp``; nothing else of ours."""
    tls = tmp / "tls"
    tls.mkdir(exist_ok=True)
    for f in ("kafka.pem", "ca.crt"):
        (tls / f).write_text("pem\n")
    env = {k: str(v) for k, v in stack["services"]["kafka"]["environment"].items()}
    env |= {"PATH": os.environ["PATH"], "HOME": str(tmp),
            "KAFKA_LOG_DIRS": str(tmp / "data"), "KAFKA_LISTENER_NAME_CLIENT_SSL_KEYSTORE_LOCATION": str(tls / "kafka.pem"),
            "KAFKA_LISTENER_NAME_CLIENT_SSL_TRUSTSTORE_LOCATION": str(tls / "ca.crt"),
            "VITALWATCH_KAFKA_HOME": str(tmp / "kafka"), "VITALWATCH_KAFKA_IMAGE_RUN": str(tmp / "image-run"),
            "VITALWATCH_KAFKA_RUN_DIR": str(tmp / "run")}
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    (tmp / "data").mkdir(exist_ok=True)
    return env | extra


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def _kafka_start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DOCKER / "kafka" / "start.sh")], env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def kafka_boot(stack: dict, tmp_path_factory) -> dict:
    """docker/kafka/start.sh run as the kafka service runs it, the image's parts replaced by the
    real Kafka classes of the image's version: its ``bin/kafka-storage.sh`` (kafka.tools.StorageTool)
    and its start, /etc/kafka/docker/run, up to the broker's launch (kafka.docker.KafkaDockerWrapper
    setup: server.properties from the KAFKA_* variables, then the image's own format). Each part
    records what it was given."""
    from vitalwatch.infra.artifacts import kafka_libs

    s = Settings()
    image = stack["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{s.infra.kafka.version}"   # the jars below are the image's version
    libs = kafka_libs(s.path(s.infra.cache_dir), s.infra.kafka.version, s.infra.kafka.scala)
    tmp = tmp_path_factory.mktemp("kafka")
    rec = tmp / "rec"
    rec.mkdir()
    env = _kafka_env(stack, tmp, VITALWATCH_KAFKA_ADMIN_PASSWORD=_values()["VITALWATCH_KAFKA_ADMIN_PASSWORD"],
                     VITALWATCH_KAFKA_CONTROLLER_PASSWORD=_values()["VITALWATCH_KAFKA_CONTROLLER_PASSWORD"])
    _script(tmp / "kafka" / "bin" / "kafka-storage.sh", f"""set -eu
printf '%s\\n' "$@" >{rec}/storage.argv
f="${{1#@}}"
stat -c %a "$f" >{rec}/args.mode; cp "$f" {rec}/args
p="$(sed -n 4p "$f")"; stat -c %a "$p" >{rec}/props.mode
exec java -cp '{libs}/*' kafka.tools.StorageTool "$@"
""")
    _script(tmp / "image-run", f"""env >{rec}/run.env
ls -A {tmp}/run >{rec}/run-dir
mkdir -p {rec}/default {rec}/mounted {rec}/final
java -cp '{libs}/*' kafka.docker.KafkaDockerWrapper setup --default-configs-dir {rec}/default \\
  --mounted-configs-dir {rec}/mounted --final-configs-dir {rec}/final >{rec}/setup.out 2>&1
echo $? >{rec}/setup.rc
""")
    out = _kafka_start(env)
    assert out.returncode == 0, out.stdout + out.stderr
    checkpoint = subprocess.run(["java", "-cp", f"{libs}/*", "kafka.tools.DumpLogSegments", "--cluster-metadata-decoder",
                                 "--files", str(tmp / "data" / "bootstrap.checkpoint")],
                                capture_output=True, text=True, timeout=120)
    return {"tmp": tmp, "rec": rec, "env": env, "out": out.stdout + out.stderr, "checkpoint": checkpoint.stdout,
            "server": _props((rec / "final" / "server.properties").read_text())}


def test_kafka_has_no_unauthenticated_listener(stack: dict, kafka_boot: dict) -> None:
    """server.properties as the image writes it from compose's variables: CLIENT is SASL_SSL with
    SCRAM-SHA-512, the controller SASL_PLAINTEXT with PLAIN on loopback; no PLAINTEXT or SSL
    listener, and no listener whose name would default to one."""
    p = kafka_boot["server"]
    protocols = dict(e.split(":") for e in p["listener.security.protocol.map"].split(","))
    assert protocols == {"CLIENT": "SASL_SSL", "CONTROLLER": "SASL_PLAINTEXT"}
    assert not {"PLAINTEXT", "SSL"} & set(protocols.values())
    listeners = {e.split("://")[0]: e.split("://")[1] for e in p["listeners"].split(",")}
    assert set(listeners) == set(protocols)   # every listener is mapped (none defaults to a protocol of its name)
    assert p["advertised.listeners"] == "CLIENT://kafka:9092" and p["inter.broker.listener.name"] == "CLIENT"
    assert p["controller.listener.names"] == "CONTROLLER" and listeners["CONTROLLER"].startswith("127.0.0.1:")
    assert p["controller.quorum.voters"] == f"1@{listeners['CONTROLLER']}"
    assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512" == p["sasl.mechanism.inter.broker.protocol"]
    assert p["sasl.mechanism.controller.protocol"] == "PLAIN" == p["listener.name.controller.sasl.enabled.mechanisms"]
    assert 'username="admin"' in p["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert "ScramLoginModule" in p["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert 'username="controller"' in p["listener.name.controller.plain.sasl.jaas.config"]
    # TLS: the local CA's `kafka` certificate and the CA, from the volume tls-init fills
    svc = stack["services"]["kafka"]
    env = svc["environment"]
    assert env["KAFKA_LISTENER_NAME_CLIENT_SSL_KEYSTORE_TYPE"] == "PEM" == env["KAFKA_LISTENER_NAME_CLIENT_SSL_TRUSTSTORE_TYPE"]
    assert env["KAFKA_LISTENER_NAME_CLIENT_SSL_TRUSTSTORE_LOCATION"] == KAFKA_CA_IN_BROKER
    assert Path(env["KAFKA_LISTENER_NAME_CLIENT_SSL_KEYSTORE_LOCATION"]).name == "kafka.pem"
    assert "ssl.client.auth" not in p and not svc.get("ports")   # SCRAM signs clients in; the compose network only
    tls_dir = str(Path(KAFKA_CA_IN_BROKER).parent)
    assert Path(env["KAFKA_LISTENER_NAME_CLIENT_SSL_KEYSTORE_LOCATION"]).parent == Path(tls_dir)
    assert _mounts(svc)[tls_dir]["read_only"] and _mounts(svc)[tls_dir]["type"] == "volume"


def test_kafka_authorizer_refuses_what_no_acl_grants(kafka_boot: dict) -> None:
    p = kafka_boot["server"]
    assert p["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert p["allow.everyone.if.no.acl.found"] == "false"
    assert sorted(p["super.users"].split(";")) == ["User:admin", "User:controller"]
    assert p["auto.create.topics.enable"] == "false"


def test_the_compose_broker_is_secured_as_the_local_one(kafka_boot: dict, tmp_path: Path) -> None:
    """Every setting of the local broker (lib/vitalwatch/infra/kafka.py) is the compose broker's,
    but for its addresses, paths and tuning; passwords aside, the same JAAS lines."""
    from vitalwatch.infra.kafka import KafkaServer

    work = tmp_path / "infra"
    (work / "tls").mkdir(parents=True)
    for f in ("kafka.pem", "ca.crt"):
        (work / "tls" / f).write_text("pem\n")
    local = _props(KafkaServer(Settings(), work)._properties(9092, 9093, work / "data", "ADMIN_PW", "CONTROLLER_PW"))
    values = _values()
    docker = {k: v.replace(values["VITALWATCH_KAFKA_ADMIN_PASSWORD"], "ADMIN_PW")
                  .replace(values["VITALWATCH_KAFKA_CONTROLLER_PASSWORD"], "CONTROLLER_PW")
              for k, v in kafka_boot["server"].items()}
    where = {"listeners", "advertised.listeners", "controller.quorum.voters", "log.dirs",
             "listener.name.client.ssl.keystore.location", "listener.name.client.ssl.truststore.location"}
    tuning = {"num.partitions", "group.initial.rebalance.delay.ms", "log.retention.hours"}
    assert {k: local[k] for k in local if k not in where | tuning} == \
        {k: docker.get(k) for k in local if k not in where | tuning}
    assert set(docker) - set(local) <= {"offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                                        "transaction.state.log.min.isr"} | where


def test_kafka_start_formats_with_the_admin_credential_kept_out_of_argv(kafka_boot: dict) -> None:
    """A new volume is formatted with the admin's SCRAM credential (the image's own format step
    cannot add one), its arguments in a 0600 file on the tmpfs, deleted at once; the image's format
    then finds the directory formatted, with the same cluster id, and goes on to the broker."""
    rec, tmp, values = kafka_boot["rec"], kafka_boot["tmp"], _values()
    admin, controller = values["VITALWATCH_KAFKA_ADMIN_PASSWORD"], values["VITALWATCH_KAFKA_CONTROLLER_PASSWORD"]
    sec = Settings().kafka.security
    argv = (rec / "storage.argv").read_text().splitlines()
    assert argv == [f"@{tmp / 'run' / 'format.args'}"]   # the password is on no command line
    assert (rec / "args.mode").read_text().strip() == "600" == (rec / "props.mode").read_text().strip()
    assert (rec / "args").read_text().splitlines() == [
        "format", f"--cluster-id={kafka_boot['env']['CLUSTER_ID']}", "-c", str(tmp / "run" / "format.properties"),
        "--add-scram", f"{sec.mechanism}=[name=admin,iterations={sec.scram_iterations},password={admin}]"]
    # the credential is in the metadata log from the start (salted: the password is not)
    records = [json.loads(line.split("payload: ", 1)[1]) for line in kafka_boot["checkpoint"].splitlines()
               if "USER_SCRAM_CREDENTIAL_RECORD" in line]
    assert [(r["data"]["name"], r["data"]["mechanism"], r["data"]["iterations"]) for r in records] == \
        [("admin", 2, sec.scram_iterations)]   # 2: SCRAM-SHA-512
    assert admin.encode() not in (tmp / "data" / "bootstrap.checkpoint").read_bytes()
    # the image's start: its format step refuses to format again, which its launch script accepts
    assert (rec / "setup.rc").read_text().strip() == "1" and "is already formatted" in (rec / "setup.out").read_text()
    assert "clusterId" not in (rec / "setup.out").read_text()   # same cluster id, no mismatch
    # what is left: only the health check's client settings, 0600; the broker's environment
    # without the passwords (server.properties has them)
    assert (rec / "run-dir").read_text().split() == ["client.properties"]
    client = tmp / "run" / "client.properties"
    assert stat.S_IMODE(client.stat().st_mode) == 0o600
    c = _props(client.read_text())
    assert c["security.protocol"] == "SASL_SSL" and c["sasl.mechanism"] == sec.mechanism
    assert c["ssl.truststore.type"] == "PEM" and c["ssl.truststore.location"] == kafka_boot["env"]["KAFKA_LISTENER_NAME_CLIENT_SSL_TRUSTSTORE_LOCATION"]
    assert f'username="admin" password="{admin}"' in c["sasl.jaas.config"]
    run_env = (rec / "run.env").read_text().splitlines()
    assert not [v for v in run_env if KAFKA_PASSWORD.match(v)]
    assert sorted(v.split("=", 1)[0] for v in run_env if admin in v or controller in v) == \
        ["KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG", "KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG"]
    assert (tmp / "data" / ".vitalwatch-admin-scram").exists()
    assert "formatted with the admin's" in kafka_boot["out"]


def test_kafka_start_refuses_bad_passwords_and_unauthenticated_data(stack: dict, tmp_path: Path) -> None:
    env = _kafka_env(stack, tmp_path, VITALWATCH_KAFKA_ADMIN_PASSWORD="a" * 24, VITALWATCH_KAFKA_CONTROLLER_PASSWORD="c" * 24)
    _script(tmp_path / "kafka" / "bin" / "kafka-storage.sh", f"touch {tmp_path}/formatted; touch {tmp_path}/data/meta.properties\n")
    _script(tmp_path / "image-run", f"touch {tmp_path}/ran\n")
    for name in ("VITALWATCH_KAFKA_ADMIN_PASSWORD", "VITALWATCH_KAFKA_CONTROLLER_PASSWORD"):
        out = _kafka_start({k: v for k, v in env.items() if k != name})
        assert out.returncode == 2 and name in out.stderr
        out = _kafka_start({**env, name: 'short"quote'})   # would break a JAAS line or --add-scram
        assert out.returncode == 2 and name in out.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "formatted").exists()
    (tmp_path / "data" / "meta.properties").write_text("version=1\n")   # formatted without the admin credential
    out = _kafka_start(env)
    assert out.returncode == 1 and "predates authentication" in out.stderr and not (tmp_path / "ran").exists()
    (tmp_path / "data" / ".vitalwatch-admin-scram").touch()   # ours: started as is, not formatted again
    out = _kafka_start(env)
    assert out.returncode == 0 and (tmp_path / "ran").exists() and not (tmp_path / "formatted").exists(), out.stderr


def test_kafka_runs_its_start_script_with_its_own_certificate(stack: dict) -> None:
    svc = stack["services"]
    kafka = svc["kafka"]
    script = next(v for v in kafka["volumes"] if v.get("source") == str(DOCKER / "kafka" / "start.sh"))
    assert script["read_only"] and kafka["entrypoint"] == ["/bin/bash", script["target"]]
    run_dir = "/run/vitalwatch-kafka"   # the script's default: a tmpfs, nothing written to a volume
    assert f'run_dir="${{VITALWATCH_KAFKA_RUN_DIR:-{run_dir}}}"' in (DOCKER / "kafka" / "start.sh").read_text()
    assert run_dir in kafka["tmpfs"]
    assert kafka["depends_on"]["tls-init"]["condition"] == "service_completed_successfully"
    tls_dir = str(Path(KAFKA_CA_IN_BROKER).parent)
    volume = _mounts(kafka)[tls_dir]["source"]
    assert {n for n, s in svc.items() if any(v.get("source") == volume for v in s.get("volumes", []))} == {"tls-init", "kafka"}
    dest = next(v["target"] for v in svc["tls-init"]["volumes"] if v.get("source") == volume)
    spec = next(x for x in svc["tls-init"]["command"] if x.split("=")[0] == dest)
    assert spec.split("=")[1] == "1000:1000"   # the apache/kafka image's appuser
    assert set(spec.split("=")[2].split(",")) == {"ca.crt", "kafka.pem"}
    # healthy = admin signs in over SASL_SSL, checked against the CA, its settings in a file
    check = kafka["healthcheck"]["test"]
    assert check[check.index("--bootstrap-server") + 1] == "kafka:9092"
    assert check[check.index("--command-config") + 1] == f"{run_dir}/client.properties"
    assert not [v for v in kafka["environment"] if v.startswith("KAFKA_") and KAFKA_PASSWORD.search(v)]


def test_kafka_passwords_one_principal_per_service(stack: dict) -> None:
    """The admin's password only in the broker and kafka-init, the controller's only in the
    broker; every other service holds at most one Kafka password: its own principal's."""
    from vitalwatch.infra.kafka_acls import principals

    svc, values = stack["services"], _values()
    assert _holders(stack, values["VITALWATCH_KAFKA_ADMIN_PASSWORD"]) == KAFKA_SERVER_ONLY
    assert _holders(stack, values["VITALWATCH_KAFKA_CONTROLLER_PASSWORD"]) == {"kafka"}
    held = {n: {m[1].lower() for k in (s.get("environment") or {}) if (m := KAFKA_PASSWORD.fullmatch(k))}
            for n, s in svc.items()}
    assert held["kafka"] == {"admin", "controller"}
    assert held["kafka-init"] == {"admin", *principals(Settings())}   # `kafka init` sets every role's
    clients = {n: h for n, h in held.items() if h and n not in KAFKA_SERVER_ONLY}
    assert clients == {n: {r} for n, r in KAFKA_ROLE_OF.items()}
    for role in principals(Settings()):
        name = f"VITALWATCH_KAFKA_{role.upper()}_PASSWORD"
        assert _holders(stack, values[name]) == {"kafka-init"} | {n for n, r in KAFKA_ROLE_OF.items() if r == role}
    for name in ("VITALWATCH_KAFKA_ADMIN_PASSWORD", "VITALWATCH_KAFKA_CONTROLLER_PASSWORD"):
        assert not [n for n, s in svc.items() if n not in KAFKA_SERVER_ONLY and name in json.dumps(s)], name


def test_every_kafka_client_signs_in_as_itself_over_tls_after_kafka_init(stack: dict, monkeypatch) -> None:
    from vitalwatch.infra.endpoints import resolve

    svc = stack["services"]
    init = svc["kafka-init"]
    assert init["command"] == ["kafka", "init"] and init["restart"] == "on-failure"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    # the services with a principal, and the workers that run their executors' Kafka source/sink
    for name in [*KAFKA_ROLE_OF, "kafka-init", "spark-worker"]:
        env = svc[name]["environment"]
        assert env["VITALWATCH__KAFKA__SECURITY__CA_FILE"] == CA_IN_CONTAINERS, name
        assert _mounts(svc[name])[CA_IN_CONTAINERS]["read_only"], name
        if name in KAFKA_ROLE_OF:
            assert svc[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully", name
    for name, role in KAFKA_ROLE_OF.items():   # the settings it yields: SASL_SSL as its role, checked against the CA
        for k in [k for k in os.environ if k.startswith("VITALWATCH")]:
            monkeypatch.delenv(k)
        for k, v in svc[name]["environment"].items():
            monkeypatch.setenv(k, v)
        access = resolve(Settings(), ("kafka",)).kafka(role)
        assert access.bootstrap == "kafka:9092" and access.protocol == "SASL_SSL" and access.user == role, name
        assert access.password == _values()[f"VITALWATCH_KAFKA_{role.upper()}_PASSWORD"], name
        conf = access.conf()
        assert conf["ssl.ca.location"] == CA_IN_CONTAINERS and conf["ssl.endpoint.identification.algorithm"] == "https"
        if role == "pipeline":
            assert access.spark_options()["kafka.ssl.truststore.location"] == CA_IN_CONTAINERS
