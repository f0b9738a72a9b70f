"""Quiet, predictable output: streaming progress said only when it changes (and off a terminal at
most once a minute), the drain rule of `vitalwatch run` and the benchmark, Spark's log4j2
configuration on every session, and the CLI's one error handler."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.helpers import ROOT
from vitalwatch.localrun import Drain
from vitalwatch.logs import ProgressLog, level_for


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _progress(batch: int, rows: int = 10) -> dict:
    return {"batchId": batch, "numInputRows": rows, "processedRowsPerSecond": 100.0,
            "durationMs": {"triggerExecution": 250}}


def test_on_a_terminal_each_new_batch_is_a_line_and_a_repeated_batch_says_nothing() -> None:
    said: list[str] = []
    log = ProgressLog(said.append, tty=True, clock=Clock())
    log.update([("bronze", _progress(1)), ("silver", None)])
    log.update([("bronze", _progress(1)), ("silver", None)])
    assert said == ["bronze: batch 1 in=10 rows (100 rows/s), 250 ms"]
    log.update([("bronze", _progress(2)), ("silver", _progress(7))])
    assert said[1:] == ["bronze: batch 2 in=10 rows (100 rows/s), 250 ms",
                        "silver: batch 7 in=10 rows (100 rows/s), 250 ms"]


def test_off_a_terminal_changes_within_a_minute_are_one_summary_line() -> None:
    said: list[str] = []
    clock = Clock()
    log = ProgressLog(said.append, tty=False, clock=clock)
    log.update([("gold", _progress(1))])
    assert said == ["gold: batch 1 in=10 rows (100 rows/s), 250 ms"]
    clock.t = 20
    log.update([("gold", _progress(2))])
    clock.t = 40
    log.update([("gold", _progress(3)), ("bronze", _progress(5))])
    clock.t = 59
    log.update([("gold", _progress(3)), ("bronze", _progress(5))])
    assert len(said) == 1  # two changes within the minute: still the one line
    clock.t = 61
    log.update([("gold", _progress(3)), ("bronze", _progress(5))])  # nothing new, but pending
    assert said[1:] == ["gold: batch 3 in=10 rows (100 rows/s), 250 ms; bronze: batch 5 in=10 rows (100 rows/s), 250 ms"]
    clock.t = 200
    log.update([("gold", _progress(3)), ("bronze", _progress(5))])
    assert len(said) == 2


def test_drained_only_after_a_whole_quiet_stretch() -> None:
    clock = Clock()
    drain = Drain(10, clock=clock)
    assert not drain.update(True)
    clock.t = 8
    assert not drain.update(False)  # a batch read something: the stretch starts again
    clock.t = 9
    assert not drain.update(True)
    clock.t = 19
    assert not drain.update(True)
    clock.t = 19.5
    assert drain.update(True) and drain.since == 9


def test_verbose_and_quiet_levels() -> None:
    assert level_for() == logging.INFO and level_for(verbose=True) == logging.DEBUG
    assert level_for(quiet=True) == level_for(verbose=True, quiet=True) == logging.WARNING


def _properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            out[key.strip()] = value.strip()
    return out


def test_log4j2_configuration_parses_root_warn_and_named_loggers_at_error() -> None:
    props = _properties(ROOT / "conf" / "log4j2.properties")
    assert props["rootLogger.level"] == "warn" and props["rootLogger.appenderRef.stdout.ref"] == props["appender.console.name"]
    loggers = {k.split(".")[1] for k in props if k.startswith("logger.")}
    assert loggers and all(f"logger.{n}.name" in props and f"logger.{n}.level" in props for n in loggers)
    quiet = {props[f"logger.{n}.name"] for n in loggers if props[f"logger.{n}.level"] == "error"}
    assert {"org.apache.hadoop.util.NativeCodeLoader", "org.apache.kafka.clients.admin.AdminClientConfig",
            "org.apache.spark.sql.execution.streaming.ResolveWriteToStream"} <= quiet


def test_session_conf_adds_the_log4j2_option_to_the_configured_java_options(monkeypatch) -> None:
    from vitalwatch.config import Settings
    from vitalwatch.spark import session_conf

    monkeypatch.delenv("VITALWATCH_SPARK_SUBMIT", raising=False)
    s = Settings().with_updates(spark={"extra_conf": {"spark.driver.extraJavaOptions": "-Dextra=1"}})
    conf = session_conf(s)
    driver, executor = conf["spark.driver.extraJavaOptions"].split(), conf["spark.executor.extraJavaOptions"].split()
    want = f"-Dlog4j2.configurationFile={(ROOT / 'conf' / 'log4j2.properties').resolve().as_uri()}"
    assert want in driver and want in executor
    assert "-Duser.timezone=UTC" in driver and "-Dextra=1" in driver  # merged, not replaced
    monkeypatch.setenv("VITALWATCH_SPARK_SUBMIT", "1")  # executors read the copy --files shipped
    assert "-Dlog4j2.configurationFile=log4j2.properties" in session_conf(Settings())["spark.executor.extraJavaOptions"]


def test_a_built_session_logs_with_the_shipped_configuration(spark) -> None:
    conf = spark.sparkContext.getConf()
    assert "-Dlog4j2.configurationFile=" in conf.get("spark.driver.extraJavaOptions")
    used = spark.sparkContext._jvm.java.lang.System.getProperty("log4j2.configurationFile")
    assert used and used.endswith("conf/log4j2.properties")  # the driver JVM started with it


def test_the_one_error_handler_turns_known_errors_into_a_message_and_an_exit_code() -> None:
    from vitalwatch.cli._console import Group, fail
    from vitalwatch.infra.process import InfraError

    app = typer.Typer(cls=Group)
    sub = typer.Typer()
    app.add_typer(sub, name="infra")

    @sub.command("up")
    def up() -> None:
        raise InfraError("port 9092 is taken")

    @sub.command("refuse")
    def refuse() -> None:
        fail("no such user", 2)

    @sub.command("crash")
    def crash() -> None:
        raise ValueError("a bug")

    res = CliRunner().invoke(app, ["infra", "up"])
    assert res.exit_code == 1 and "infra up failed: port 9092 is taken" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["infra", "refuse"])
    assert res.exit_code == 2 and "no such user" in res.output
    res = CliRunner().invoke(app, ["infra", "crash"])
    assert isinstance(res.exception, ValueError)  # unknown errors keep their traceback


@pytest.mark.parametrize("flag", ["--verbose", "--quiet"])
def test_root_command_takes_verbose_and_quiet(flag: str) -> None:
    from vitalwatch.cli import app

    res = CliRunner().invoke(app, [flag, "infra", "--help"])
    assert res.exit_code == 0 and "Usage" in res.output
