"""Fetching server artifacts from Maven Central with Maven (never committed, cached once).

Kafka: the broker jar ``org.apache.kafka:kafka_<scala>`` and its runtime dependencies.
Elasticsearch: the ``integ-test-zip`` distribution (core server + security modules).
Docker Compose: the CLI plugin built from its source on the Go module proxy, where the docker
client has none (validating ``docker/compose.yaml`` needs no engine)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from vitalwatch.infra.process import InfraError

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>vitalwatch.infra</groupId><artifactId>kafka-broker</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version></dependency>
  </dependencies>
</project>
"""


def _mvn(args: list[str], cwd: Path) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise InfraError("Maven (mvn) is not on PATH; it fetches the Kafka and Elasticsearch artifacts")
    proc = subprocess.run([mvn, "-B", "-q", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"mvn {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def kafka_libs(cache_dir: Path, version: str, scala: str) -> Path:
    """Directory of the broker's jars (classpath ``<dir>/*``), fetched on first use."""
    target = cache_dir / f"kafka_{scala}-{version}" / "libs"
    marker = target.parent / ".complete"
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / "pom.xml").write_text(_KAFKA_POM.format(scala=scala, version=version))
    shutil.rmtree(target, ignore_errors=True)
    _mvn(["dependency:copy-dependencies", f"-DoutputDirectory={target}", "-DincludeScope=runtime"],
         target.parent)
    if not (target / f"kafka_{scala}-{version}.jar").exists():
        raise InfraError(f"Kafka {version} jar missing after fetch in {target}")
    marker.touch()
    return target


def elasticsearch_zip(cache_dir: Path, version: str) -> Path:
    """The Elasticsearch integ-test-zip distribution, fetched on first use."""
    out = cache_dir / "elasticsearch"
    z = out / f"elasticsearch-{version}.zip"
    if z.exists() and zipfile.is_zipfile(z):
        return z
    out.mkdir(parents=True, exist_ok=True)
    coord = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
    _mvn(["dependency:copy", f"-Dartifact={coord}", f"-DoutputDirectory={out}"], out)
    if not z.exists():
        raise InfraError(f"Elasticsearch {version} zip missing after fetch in {out}")
    return z


def unpack_elasticsearch(zip_path: Path, dest: Path) -> Path:
    """Unpack the distribution into dest (once) and return ES_HOME."""
    home = dest / zip_path.stem
    if (home / "bin" / "elasticsearch").exists():
        return home
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                (dest / info.filename).chmod(mode)
    return home


COMPOSE_MODULE = "github.com/docker/compose/v2"


def compose_plugin(cache_dir: Path, version: str) -> Path:
    """The ``docker-compose`` plugin binary of ``version``, built once with Go into the cache
    (about 2 minutes to download its modules and 3 to build on 2 cores). Built inside the
    downloaded module, since ``go install pkg@version`` refuses a go.mod with exclude
    directives, which compose's has."""
    import json

    out = cache_dir / "compose" / version / "docker-compose"
    if out.exists():
        return out
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise InfraError("Go is not on PATH; it builds the docker compose plugin from the Go module proxy")
    env = {**os.environ, "CGO_ENABLED": "0"}

    def run(args: list[str], cwd: Path | None = None) -> str:
        proc = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise InfraError(f"go {' '.join(args)} failed (docker compose {version}):\n{proc.stderr[-3000:]}")
        return proc.stdout

    src = Path(json.loads(run(["mod", "download", "-json", f"{COMPOSE_MODULE}@{version}"]))["Dir"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        run(["build", "-trimpath", "-ldflags", f"-s -w -X {COMPOSE_MODULE}/internal.Version={version}",
             "-o", f"{tmp}/docker-compose", "./cmd"], cwd=src)
        (Path(tmp) / "docker-compose").rename(out)
    return out


def compose_command(settings, *, build: bool = False) -> list[str]:
    """How to run ``docker compose`` here: the docker client's plugin, else the one built into
    the cache (with ``build``, built now if missing; otherwise a missing one fails, never skips)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    cache, version = Path(settings.infra.cache_dir).expanduser(), settings.infra.compose_version
    if build:
        return [str(compose_plugin(cache, version))]
    built = cache / "compose" / version / "docker-compose"
    if not built.exists():
        raise InfraError(f"no docker compose: the docker client has no compose plugin and {built} is missing; "
                         "run `vitalwatch infra fetch --compose` (make test does)")
    return [str(built)]
