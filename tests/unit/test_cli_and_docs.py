"""The operational surface: every command answers --help; the README documents every
quarantine reason the parser can give and the pinned versions."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT
from vitalwatch.cli import app
from vitalwatch.fhir.parse import REASONS
from vitalwatch.packages import load_packages

COMMANDS = [[], ["infra"], ["infra", "up"], ["infra", "down"], ["infra", "status"], ["infra", "fetch"],
            ["simulate"], ["replay"], ["pipeline"], ["show"], ["run"], ["train"], ["models"],
            ["models", "show"], ["triage"], ["triage", "train"], ["triage", "score"],
            ["mongo"], ["mongo", "init"], ["mongo", "script"], ["patients"], ["patients", "register"],
            ["alerts"], ["alerts", "watch"], ["alerts", "ack"], ["search"], ["search", "init"],
            ["search", "kibana-import"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "vitalwatch")
def test_every_command_has_help(cmd: list[str]) -> None:
    res = CliRunner().invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_readme_documents_every_quarantine_reason_and_the_pins() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [r for r in REASONS if f"`{r}`" not in readme]
    assert not missing, f"README lacks reasons {missing}"
    for coord in load_packages().packages:
        _, artifact, version = coord.split(":")
        assert artifact in readme and version in readme, coord
