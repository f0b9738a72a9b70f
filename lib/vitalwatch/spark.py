"""The one place every SparkSession is built (jobs, tests, notebooks, local or cluster).

Connectors come from Maven Central through ``spark.jars.packages`` (coordinates in
conf/spark-packages.txt); Delta Lake is configured as the catalog; time is UTC everywhere so
FHIR instants keep their meaning. MongoDB over TLS: the connector's Java driver trusts the JVM's
default trust store (it ignores the URI's ``tlsCAFile``), so the driver and executors get
``javax.net.ssl.trustStore`` = the JDK's CAs plus the MongoDB server's CA (:func:`mongo_truststore`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from vitalwatch.config import Settings, conf_dir
from vitalwatch.packages import load_packages

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def session_conf(settings: Settings, app_name: str | None = None) -> dict[str, str]:
    """The Spark configuration vitalwatch needs, as a dict (also rendered by spark-submit.sh)."""
    from vitalwatch.jvm import jar_path

    pk = load_packages()
    java_opts = "-Duser.timezone=UTC"
    if (store := mongo_truststore(settings)) is not None:
        # no password: a JKS store of public certificates opens without one (see infra.tls)
        java_opts += f" -Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStoreType=JKS"
    ivy = settings.spark.ivy_dir or str(settings.path(settings.infra.cache_dir) / "ivy")
    conf = {
        "spark.app.name": app_name or settings.spark.app_name,
        "spark.jars.packages": pk.packages_csv,
        "spark.jars.excludes": pk.excludes_csv,
        "spark.jars.ivy": ivy,
        "spark.jars.ivySettings": str(conf_dir() / "ivysettings.xml"),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.streaming.stateStore.providerClass":
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # No extra empty micro-batch whenever a watermark moves: state expiry (gold's discharges,
        # silver's dedupe keys) is also done by the next batch with data, and an empty batch
        # costs the scoring query ~2 s during which a new reading would wait (measured).
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta rebuilds a table's snapshot on every commit; its default 50 partitions cost more
        # than the work on small streaming tables (measured: seconds per gold micro-batch).
        "spark.databricks.delta.snapshotPartitions": str(settings.spark.shuffle_partitions),
        # Several streaming queries share the cores: FAIR pools let the scoring query go first.
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(conf_dir() / "fairscheduler.xml"),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.log.level": "WARN",
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.driver.extraJavaOptions": f"{java_opts} {log4j2_option()}",
        "spark.executor.extraJavaOptions": f"{java_opts} {log4j2_option(executor=True)}",
        # No secret in a plan, the UI or the event log; nobody kills jobs from the UI.
        "spark.redaction.regex": settings.spark.redaction_regex,
        "spark.sql.redaction.options.regex": settings.spark.redaction_regex,
        "spark.ui.killEnabled": "false",
    }
    if not os.environ.get("VITALWATCH_SPARK_SUBMIT"):  # under spark-submit the launcher shipped it (--jars)
        conf["spark.jars"] = str(jar_path(settings))  # vitalwatch's own classes (vitalwatch.jvm)
    if settings.spark.python_daemon_module:
        conf["spark.python.daemon.module"] = settings.spark.python_daemon_module
    for k, v in settings.spark.extra_conf.items():  # extra JVM options are added to ours, not instead
        conf[k] = f"{conf[k]} {v}" if k.endswith(".extraJavaOptions") and k in conf else v
    return conf


LOG4J2_FILE = "log4j2.properties"


def log4j2_option(executor: bool = False) -> str:
    """The JVM option that makes Spark log as ``conf/log4j2.properties`` says (quiet: WARN, known
    harmless warnings at ERROR). Under spark-submit, executors (possibly on other machines) read
    the copy ``--files`` put in their working directory; elsewhere the file in ``conf/``."""
    if executor and os.environ.get("VITALWATCH_SPARK_SUBMIT"):
        return f"-Dlog4j2.configurationFile={LOG4J2_FILE}"
    return f"-Dlog4j2.configurationFile={(conf_dir() / LOG4J2_FILE).resolve().as_uri()}"


def mongo_ca_file(settings: Settings) -> Path | None:
    """The CA a MongoDB TLS client checks the server against: ``mongo.ca_file``, else the
    ``tlsCAFile`` of ``mongo.uri``, else (no ``mongo.uri``: the local mongod of ``infra up``, with
    ``infra.mongo.tls``) the local CA, created now if ``infra up`` has not yet (idempotent);
    None when MongoDB is not reached over TLS with a CA of ours."""
    m = settings.mongo
    if m.ca_file:
        return settings.path(m.ca_file)
    if m.uri:
        opts = {k.lower(): v for k, v in parse_qsl(urlsplit(m.uri).query)}
        return Path(opts["tlscafile"]) if opts.get("tlscafile") else None
    if not settings.infra.mongo.tls:
        return None
    from vitalwatch.infra.manager import InfraManager
    from vitalwatch.infra.mongo import local_ca_file

    mgr = InfraManager(settings)
    ca = local_ca_file(mgr.work)
    if not ca.is_file():
        mgr.ensure_ca()
    return ca


def mongo_truststore(settings: Settings) -> Path | None:
    """The trust store Spark's JVMs use (see the module doc): ``mongo.truststore`` as configured
    (a cluster's, present on every node), else one built under ``<infra.cache_dir>/truststores``
    from :func:`mongo_ca_file` (renewed when the CA or the JDK changes); None without TLS."""
    if settings.mongo.truststore:
        return settings.path(settings.mongo.truststore)
    ca = mongo_ca_file(settings)
    if ca is None:
        return None
    from vitalwatch.infra.tls import java_truststore

    return java_truststore(ca, settings.path(settings.infra.cache_dir) / "truststores")


def build_session(settings: Settings, app_name: str | None = None,
                  master: str | None = None) -> SparkSession:
    """Get or create the SparkSession for ``settings`` (master from config unless given).

    Under spark-submit the master and packages are already set by the launcher; ours only
    fill what is missing."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", _python()))
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # required by pyspark.pandas with pyarrow>=2
    builder = SparkSession.builder
    if not os.environ.get("VITALWATCH_SPARK_SUBMIT"):
        builder = builder.master(master or settings.spark.master)
    for k, v in session_conf(settings, app_name).items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("VITALWATCH_SPARK_LOG_LEVEL", "WARN"))
    from vitalwatch.jvm import register

    register(spark)
    return spark


def _python() -> str:
    import sys

    return sys.executable


def submit_args(settings: Settings) -> list[str]:
    """spark-submit arguments for the same configuration (used by spark-submit.sh): packages
    and static settings must be known before the JVM starts."""
    conf = session_conf(settings)
    from vitalwatch.jvm import jar_path

    conf.pop("spark.jars", None)
    args = ["--jars", str(jar_path(settings)), "--packages", conf.pop("spark.jars.packages"),
            "--exclude-packages", conf.pop("spark.jars.excludes")]
    conf.pop("spark.app.name")
    for k, v in conf.items():
        args += ["--conf", f"{k}={v}"]
    return args


if __name__ == "__main__":  # pragma: no cover - used by spark-submit.sh
    import sys

    from vitalwatch.config import get_settings

    sys.stdout.write("\0".join(submit_args(get_settings())))
