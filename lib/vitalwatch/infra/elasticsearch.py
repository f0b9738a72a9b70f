"""A real Elasticsearch server from the ``integ-test-zip`` distribution on Maven Central.

That distribution is the server core with the transport, security and APM modules only:
indexing, bulk, search, mappings and index templates all work, but the ``rest-root`` module
that answers ``GET /`` is not in it, and elasticsearch-spark reads the cluster name, uuid and
version from ``GET /`` on every task. ``es_rest_root/`` is a small plugin that restores that
endpoint from the running node (as rest-root does); it is compiled here with the JDK's
``javac`` against the distribution's own jars and installed into its ``plugins/``.

Elasticsearch refuses to run as root; when we are root it runs as ``infra.elasticsearch.
run_as_user`` (default ``nobody``) through ``setpriv``, owning its copy under the work dir.
Security is off for this loopback-only development node (see docs/operations.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import requests

from vitalwatch.config import ElasticsearchConfig, Settings
from vitalwatch.infra import artifacts
from vitalwatch.infra.process import (
    InfraError,
    LocalServer,
    pick_port,
    start_detached,
    unprivileged,
    wait_until,
)


class ElasticsearchServer(LocalServer):
    name = "elasticsearch"
    log_name = "console.log"

    def __init__(self, settings: Settings, work: Path) -> None:
        super().__init__(settings, work)
        self.cfg = settings.infra.elasticsearch

    def prepare(self) -> None:
        artifacts.elasticsearch_zip(self.s.path(self.s.infra.cache_dir), self.cfg.version)

    def start(self, prev: dict[str, Any]) -> dict[str, Any]:
        z = artifacts.elasticsearch_zip(self.s.path(self.s.infra.cache_dir), self.cfg.version)
        self.dir.mkdir(parents=True, exist_ok=True)
        home = artifacts.unpack_elasticsearch(z, self.dir / "dist")
        install_rest_root_plugin(home, self.cfg.version)
        port = pick_port(self.cfg.port, prev.get("port"), self.host)
        tport = pick_port(self.cfg.transport_port, prev.get("transport_port"), self.host)
        if tport == port:
            tport = pick_port(0, None, self.host)
        conf, data, logs, tmp = (self.dir / n for n in ("config", "data", "logs", "tmp"))
        for d in (conf, data, logs, tmp):
            d.mkdir(parents=True, exist_ok=True)
        for f in (home / "config").iterdir():
            if f.is_file() and f.name != "elasticsearch.yml":
                shutil.copy2(f, conf / f.name)
        (conf / "elasticsearch.yml").write_text("\n".join([
            "cluster.name: vitalwatch-local",
            "node.name: vitalwatch-es-1",
            f"network.host: {self.host}",
            f"http.port: {port}",
            f"transport.port: {tport}",
            "discovery.type: single-node",
            f"path.data: {data}",
            f"path.logs: {logs}",
            "xpack.security.enabled: false",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "action.destructive_requires_name: true",
            "",
        ]))
        prefix = unprivileged(self.cfg.run_as_user, "Elasticsearch", self.dir)
        env = {"ES_JAVA_HOME": _java_home(), "ES_PATH_CONF": str(conf), "ES_TMPDIR": str(tmp),
               "ES_JAVA_OPTS": f"-Xms{self.cfg.heap} -Xmx{self.cfg.heap}"}
        pid = start_detached([*prefix, str(home / "bin" / "elasticsearch")], log_file=self.log_file,
                             pid_file=self.pid_file, env=env, cwd=self.dir)
        url = f"http://{self.host}:{port}"
        state = {"pid": pid, "port": port, "transport_port": tport, "url": url,
                 "nodes": f"{self.host}:{port}", "endpoint": url, "log": str(self.log_file),
                 "server": f"Elasticsearch {self.cfg.version} (integ-test-zip from Maven Central; "
                           "security off, loopback only)"}
        wait_until(lambda: self.healthy(state), timeout_s=self.s.infra.start_timeout_s,
                   what="Elasticsearch", pid=pid, log_file=self.log_file, interval_s=1.0)
        return state

    def healthy(self, state: dict[str, Any]) -> bool:
        r = requests.get(f"{state['url']}/_cluster/health", params={"wait_for_status": "yellow",
                         "timeout": "2s"}, timeout=5)
        return r.status_code == 200 and r.json().get("status") in ("green", "yellow")


def _java_home() -> str:
    if jh := os.environ.get("JAVA_HOME"):
        return jh
    java = shutil.which("java")
    if not java:
        raise InfraError("java (17+) is not on PATH; Elasticsearch needs it")
    return str(Path(os.path.realpath(java)).parent.parent)


PLUGIN_NAME = "vitalwatch-rest-root"
PLUGIN_SOURCE = Path(__file__).parent / "es_rest_root" / "vitalwatch" / "es" / "RestRootPlugin.java"


def install_rest_root_plugin(home: Path, version: str) -> Path:
    """Compile and install the root-endpoint plugin into ``home/plugins`` (once)."""
    target = home / "plugins" / PLUGIN_NAME
    jar = target / f"{PLUGIN_NAME}.jar"
    if jar.exists():
        return target
    javac = shutil.which("javac")
    if not javac:
        raise InfraError("javac (JDK 17+) is needed to build the Elasticsearch root-endpoint plugin")
    build = home.parent / "plugin-build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    out = subprocess.run([javac, "--release", "17", "-proc:none", "-nowarn", "-d", str(build),
                          "-cp", f"{home / 'lib'}/*", str(PLUGIN_SOURCE)], capture_output=True, text=True)
    if out.returncode != 0:
        raise InfraError(f"compiling {PLUGIN_SOURCE.name} failed:\n{out.stdout}{out.stderr}")
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(build.rglob("*.class")):
            zf.write(f, f.relative_to(build).as_posix())
    (target / "plugin-descriptor.properties").write_text("\n".join([
        "description=vitalwatch: restores GET / (the rest-root module is not in integ-test-zip)",
        "version=1.0.0", f"name={PLUGIN_NAME}", "classname=vitalwatch.es.RestRootPlugin",
        "java.version=17", f"elasticsearch.version={version}", ""]))
    return target


def spark_options(nodes: str, es: ElasticsearchConfig | None = None) -> dict[str, str]:
    """elasticsearch-spark options for ``nodes`` (one HTTP endpoint, no node discovery); with
    ``es.ssl`` HTTPS trusting ``es.truststore``, with ``es.api_key_file`` its key as the
    Authorization header (a value Spark's redaction regex hides: it holds "ApiKey")."""
    opts = {"es.nodes": nodes, "es.nodes.wan.only": "true", "es.net.ssl": "false"}
    if es is not None and es.ssl:
        opts["es.net.ssl"] = "true"
        if es.truststore:  # opened without a password: the store holds only the public CA certificate
            opts["es.net.ssl.truststore.location"] = Path(es.truststore).absolute().as_uri()
    if es is not None and (key := api_key(es)):
        opts["es.net.http.header.Authorization"] = f"ApiKey {key}"
    return opts


def api_key(es: ElasticsearchConfig) -> str | None:
    """The API key in ``es.api_key_file`` (Elasticsearch's ``encoded`` form), None without one."""
    if not es.api_key_file:
        return None
    key = Path(es.api_key_file).read_text().strip()
    if not key:
        raise InfraError(f"elasticsearch.api_key_file {es.api_key_file} is empty")
    return key
