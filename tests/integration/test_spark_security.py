"""Spark holds no secret where people can read it (issue 19, point 5): the connection URI with
its password is redacted in query plans (``explain``) and in the event log, and the UI cannot
kill jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from tests.helpers import ROOT
from vitalwatch.config import Settings
from vitalwatch.spark import session_conf

pytestmark = pytest.mark.integration


def _password(uri: str) -> str:
    pw = unquote(urlsplit(uri).password or "")
    assert len(pw) >= 16, "the admin URI carries its generated password"
    return pw


def _explain(spark, uri: str) -> str:
    """The plan of a command that carries the connector's options (as the pipeline's writes do)."""
    rows = spark.sql("EXPLAIN EXTENDED CREATE TEMPORARY VIEW vw_redaction_probe USING mongodb OPTIONS "
                     f"('connection.uri' '{uri}', database 'admin', collection 'visible-{uri[-12:]}')").collect()
    return "\n".join(r[0] for r in rows)


def test_a_plan_shows_no_connection_password(spark, endpoints) -> None:
    uri = endpoints.mongo_uri
    pw = _password(uri)
    plan = _explain(spark, uri)
    assert "connection.uri" in plan and pw not in plan and "redacted" in plan
    assert f"visible-{uri[-12:]}" in plan  # the plan shows option values: a password that got through would be seen


def test_the_event_log_holds_no_password_and_the_ui_cannot_kill(base_settings: Settings, endpoints, tmp_path) -> None:
    conf = session_conf(base_settings)
    assert conf["spark.ui.killEnabled"] == "false"
    uri = endpoints.mongo_uri
    pw = _password(uri)
    events = tmp_path / "events"
    events.mkdir()
    script = textwrap.dedent(f"""
        from vitalwatch.config import Settings
        from vitalwatch.spark import build_session
        s = Settings()
        s = s.with_updates(spark={{"master": "local[1]", "extra_conf": {{
            "spark.eventLog.enabled": "true", "spark.eventLog.dir": {json.dumps(events.as_uri())},
            "spark.mongodb.read.connection.uri": {json.dumps(uri)}}}}})
        spark = build_session(s, app_name="redaction-probe")
        df = (spark.read.format("mongodb").option("connection.uri", {json.dumps(uri)})
              .option("database", "admin").option("collection", "system.version").load())
        df.count()
        spark.stop()
    """)
    # the connector's JVM trusts the test's mongod (requireTLS) through the CA named in its URI
    ca = dict(parse_qsl(urlsplit(uri).query))["tlsCAFile"]
    done = subprocess.run([sys.executable, "-c", script], text=True, capture_output=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "VITALWATCH__MONGO__CA_FILE": ca})
    assert done.returncode == 0, done.stderr[-3000:]
    text = "".join(p.read_text(errors="replace") for p in events.iterdir())
    assert "SparkListenerSQLExecutionStart" in text and "redaction-probe" in text
    assert pw not in text and "redacted" in text


def test_a_kafka_plan_shows_no_sasl_password(spark, endpoints) -> None:
    """The Kafka source's SASL login (a JAAS line with the ``pipeline`` password) is redacted
    in the plan as the MongoDB URI is."""
    access = endpoints.kafka("pipeline")
    opts = ", ".join(f"'{k}' '{v}'" for k, v in {**access.spark_options(), "subscribe": "visible-topic"}.items())
    rows = spark.sql(f"EXPLAIN EXTENDED CREATE TEMPORARY VIEW vw_kafka_probe USING kafka OPTIONS ({opts})").collect()
    plan = "\n".join(r[0] for r in rows)
    assert "visible-topic" in plan and "kafka.sasl.jaas.config" in plan
    assert access.password not in plan and "redacted" in plan
