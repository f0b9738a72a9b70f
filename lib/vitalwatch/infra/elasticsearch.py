"""A real Elasticsearch server from the ``integ-test-zip`` distribution on Maven Central.

That distribution is the server core with the transport, security and APM modules only:
indexing, bulk, search, mappings and index templates all work, but the ``rest-root`` module
that answers ``GET /`` is not in it, and elasticsearch-spark reads the cluster name, uuid and
version from ``GET /`` on every task. ``es_rest_root/`` is a small plugin that restores that
endpoint from the running node (as rest-root does); it is compiled here with the JDK's
``javac`` against the distribution's own jars and installed into its ``plugins/``.

Elasticsearch refuses to run as root; when we are root it runs as ``infra.elasticsearch.
run_as_user`` (default ``nobody``) through ``setpriv``, owning its copy under the work dir.
Security is off for this loopback-only development node (see README)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import requests

from vitalwatch.config import Settings
from vitalwatch.infra import artifacts
from vitalwatch.infra.process import InfraError, LocalServer, pick_port, start_detached, wait_until


class ElasticsearchServer(LocalServer):
    name = "elasticsearch"
    log_name = "console.log"

    def __init__(self, settings: Settings, work: Path) -> None:
        super().__init__(settings, work)
        self.cfg = settings.infra.elasticsearch

    def prepare(self) -> None:
        artifacts.elasticsearch_zip(self.s.path(self.s.infra.cache_dir), self.cfg.version)

    def _run_as(self) -> tuple[list[str], int | None, int | None]:
        if os.geteuid() != 0:
            return [], None, None
        try:
            pw = pwd.getpwnam(self.cfg.run_as_user)
        except KeyError as e:
            raise InfraError(f"user {self.cfg.run_as_user!r} for Elasticsearch does not exist") from e
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise InfraError("running as root needs util-linux setpriv to start Elasticsearch unprivileged")
        group = grp.getgrgid(pw.pw_gid).gr_name
        return ([setpriv, f"--reuid={pw.pw_name}", f"--regid={group}", "--clear-groups"],
                pw.pw_uid, pw.pw_gid)

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
        prefix, uid, gid = self._run_as()
        if uid is not None:
            _check_traversable(self.dir, uid)
            for p in (self.dir,):
                subprocess.run(["chown", "-R", f"{uid}:{gid}", str(p)], check=True)
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


def _check_traversable(path: Path, uid: int) -> None:
    """The unprivileged user must reach the work dir: every parent needs o+x (or be theirs)."""
    for p in [path, *path.parents]:
        if not p.exists():
            continue
        st = p.stat()
        if st.st_uid != uid and not st.st_mode & 0o001:
            raise InfraError(f"Elasticsearch runs as uid {uid} but cannot enter {p} (mode "
                             f"{oct(st.st_mode & 0o777)}); choose an infra.work_dir it can reach")


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


def spark_options(nodes: str) -> dict[str, str]:
    """elasticsearch-spark options for ``nodes`` (one HTTP endpoint, no node discovery)."""
    return {"es.nodes": nodes, "es.nodes.wan.only": "true", "es.net.ssl": "false"}
