"""vitalwatch's own JVM classes for Spark (``java/``), compiled here against pyspark's jars.

Two things Spark's Python API cannot do at JVM speed: a strict JSON check of each Kafka value
(:class:`FhirJsonCheck`, a SQL UDF) and first-wins deduplication that reports the rows it does
not keep (:class:`FirstWins`, ``flatMapGroupsWithState``). The jar is built once per source
digest with ``javac`` into ``spark.jvm_dir`` (default ``<infra.cache_dir>/jvm``) and put on
``spark.jars`` by :mod:`vitalwatch.spark` and ``spark-submit.sh``, so executors get it too."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

from vitalwatch.config import Settings

JSON_CHECK_UDF = "vitalwatch_fhir_json_check"
JSON_CHECK_CLASS = "vitalwatch.spark.FhirJsonCheck"


class JvmBuildError(RuntimeError):
    pass


def _sources() -> dict[str, bytes]:
    """The Java sources by relative path, read through the package's resources: they are files
    in a checkout or a wheel, and entries of a zip where the library is shipped as one."""
    out: dict[str, bytes] = {}

    def walk(node, rel: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{rel}{child.name}/")
            elif child.name.endswith(".java"):
                out[f"{rel}{child.name}"] = child.read_bytes()

    walk(resources.files(__name__).joinpath("java"), "")
    if not out:
        raise JvmBuildError("vitalwatch's Java sources (vitalwatch/jvm/java) are missing from the package")
    return dict(sorted(out.items()))


def _digest(sources: dict[str, bytes]) -> str:
    import pyspark

    h = hashlib.sha256(pyspark.__version__.encode())
    for rel, body in sources.items():
        h.update(rel.encode() + b"\0" + body)
    return h.hexdigest()[:16]


def jar_dir(settings: Settings) -> Path:
    return settings.path(settings.spark.jvm_dir or str(Path(settings.infra.cache_dir) / "jvm"))


def jar_path(settings: Settings) -> Path:
    """The jar for the current sources, built if missing (atomically: a concurrent build or a
    killed one never leaves a half-written jar under the final name)."""
    sources = _sources()
    jar = jar_dir(settings) / f"vitalwatch-spark-{_digest(sources)}.jar"
    if jar.is_file():
        return jar
    javac = shutil.which("javac")
    if not javac:
        raise JvmBuildError("javac (a JDK 11+) is needed once to build vitalwatch's Spark classes "
                            f"into {jar.parent}; install a JDK or set spark.jvm_dir to a built copy")
    import pyspark

    classpath = str(Path(pyspark.__file__).parent / "jars" / "*")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=jar.parent) as tmp:
        src, classes = Path(tmp) / "src", Path(tmp) / "classes"
        files = []
        for rel, body in sources.items():
            f = src / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(body)
            files.append(str(f))
        out = subprocess.run([javac, "--release", "11", "-proc:none", "-nowarn", "-encoding", "UTF-8",
                              "-d", str(classes), "-cp", classpath, *files], capture_output=True, text=True)
        if out.returncode != 0:
            raise JvmBuildError(f"compiling vitalwatch's Java sources failed:\n{out.stdout}{out.stderr}")
        part = Path(tmp) / jar.name
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: vitalwatch\r\n\r\n")
            for f in sorted(classes.rglob("*.class")):
                zf.write(f, f.relative_to(classes).as_posix())
        os.replace(part, jar)
    return jar


def register(spark) -> None:
    """Register the SQL functions on ``spark`` (idempotent; cheap)."""
    from pyspark.sql.types import StringType

    spark.udf.registerJavaFunction(JSON_CHECK_UDF, JSON_CHECK_CLASS, StringType())


def first_wins(df, key: str, content: str, order: str, time: str):
    """:class:`FirstWins` on ``df`` (see its Javadoc): adds ``first_wins`` and ``first_content``."""
    from pyspark.sql import DataFrame

    jvm = df.sparkSession.sparkContext._jvm
    return DataFrame(jvm.vitalwatch.spark.FirstWins.mark(df._jdf, key, content, order, time), df.sparkSession)
