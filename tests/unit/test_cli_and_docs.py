"""The operational surface: every command answers --help, latency summaries, the apps cover
every stage. The documentation's own tests are tests/unit/test_docs.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vitalwatch.cli import app
from vitalwatch.config import Settings

COMMANDS = [[], ["infra"], ["infra", "up"], ["infra", "down"], ["infra", "status"], ["infra", "fetch"],
            ["infra", "certs"],
            ["simulate"], ["replay"], ["pipeline"], ["show"], ["run"], ["train"], ["models"],
            ["models", "show"], ["models", "history"], ["models", "seal"], ["models", "alert-policy"], ["models", "compare"], ["triage"], ["triage", "train"], ["triage", "score"],
            ["mongo"], ["mongo", "init"], ["mongo", "script"], ["patients"], ["patients", "register"],
            ["alerts"], ["alerts", "watch"], ["alerts", "ack"], ["search"], ["search", "init"],
            ["search", "kibana-import"], ["notify"], ["api"], ["dashboard"],
            ["bench"], ["bench", "run"], ["bench", "parse"], ["bench", "train-export"], ["bench", "train"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "vitalwatch")
def test_every_command_has_help(cmd: list[str]) -> None:
    res = CliRunner().invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_bench_refuses_an_unknown_measurement_before_starting_anything() -> None:
    """``vitalwatch bench run`` and ``jobs/benchmark.py`` are one command: the same refusal."""
    from vitalwatch.bench.suite import MEASUREMENTS

    res = CliRunner().invoke(app, ["bench", "run", "--only", "parse", "--only", "nope"])
    assert res.exit_code == 2 and "unknown measurement(s): nope" in res.output
    help_text = CliRunner().invoke(app, ["bench", "run", "--help"], terminal_width=200).output
    assert all(m in help_text for m in MEASUREMENTS)


def test_latency_percentiles_and_trigger_intervals() -> None:
    """What `vitalwatch run` and the end-to-end benchmark summarise with."""
    from vitalwatch.alerts.feed import percentiles
    from vitalwatch.pipeline.triggers import interval_seconds, slowest_trigger_s, triggers

    q = percentiles([float(x) for x in range(100, 0, -1)])  # 1..100, unsorted
    assert (q["p50"], q["p95"], q["p99"], q["max"], q["n"]) == (50.0, 95.0, 99.0, 100.0, 100.0)
    assert percentiles([]) == {} and percentiles([3.0])["p99"] == 3.0
    assert [interval_seconds(x) for x in ("500 milliseconds", "15 seconds", "1 minute", "2 hours")] == [0.5, 15, 60, 7200]
    assert slowest_trigger_s(Settings()) == max(interval_seconds(x) for x in (
        Settings().streaming.trigger_interval, *triggers(Settings()).values()))


def test_pipeline_refuses_an_unknown_app_and_apps_cover_every_stage() -> None:
    from vitalwatch.pipeline import APPS, STAGES

    res = CliRunner().invoke(app, ["pipeline", "--app", "everything"])
    assert res.exit_code != 0 and "unknown app" in res.output
    owned = [st for stages in APPS.values() for st in stages]
    assert sorted(owned) == sorted(STAGES)  # each stage in exactly one application
    assert APPS["alerts"] == ("gold",)  # the alert path alone
