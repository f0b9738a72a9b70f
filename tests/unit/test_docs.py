"""The documentation: generated pages equal what the code renders, every command, quarantine
reason and pin is documented, every relative link resolves, and the README stays a front door."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from vitalwatch import docgen
from vitalwatch.fhir.reasons import REASONS
from vitalwatch.packages import load_packages

ROOT = docgen.ROOT
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


@pytest.fixture(scope="module")
def rendered() -> dict[Path, str]:
    return docgen.rendered()


@pytest.mark.parametrize("page", [docgen.CLI_PAGE, docgen.CONFIG_PAGE, docgen.RULES_PAGE], ids=lambda p: p.name)
def test_generated_pages_are_up_to_date(page: Path, rendered: dict[Path, str]) -> None:
    assert page.read_text() == rendered[page], "run python -m vitalwatch.docgen"


def _command_paths(cmd, ctx) -> list[str]:
    paths = [ctx.command_path]
    if hasattr(cmd, "list_commands"):  # a group
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            paths += _command_paths(sub, sub.context_class(sub, info_name=name, parent=ctx))
    return paths


def test_every_command_is_in_the_cli_reference() -> None:
    from vitalwatch.cli import app

    root = typer.main.get_command(app)
    paths = _command_paths(root, root.context_class(root, info_name="vitalwatch"))
    assert len(paths) > 20
    page = (DOCS / "cli.md").read_text()
    missing = [p for p in paths if f"## `{p}`" not in page]
    assert not missing, f"not in docs/cli.md (run python -m vitalwatch.docgen): {missing}"


def test_silver_rules_document_every_quarantine_reason() -> None:
    page = (DOCS / "silver-rules.md").read_text()
    rows = re.findall(r"^\| (?:message|resource|value|dedupe) \| .+ \| `([a-z_]+)` \|$", page, re.M)
    assert set(rows) == set(REASONS), f"the silver rules table and the code's reasons differ: {set(rows) ^ set(REASONS)}"
    generated = page[page.index(docgen.BEGIN):page.index(docgen.END)]
    assert set(re.findall(r"^\| `([a-z_]+)` \|", generated, re.M)) == set(REASONS)


def test_operations_lists_every_pin() -> None:
    page = (DOCS / "operations.md").read_text()
    for coord in load_packages().packages:
        _, artifact, version = coord.split(":")
        assert artifact in page and version in page, coord


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = FENCE.sub("", page.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # an absolute URL (http:, mailto:) or an anchor on the same page
        if not (page.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for stale in ("previous session", "next issue", "(next)", "until 2026-11-23", "PRODUCT §"):
        assert stale not in readme, stale
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README's docs index lacks {page.name}"


def test_readme_shows_the_topology_and_streaming_each_outage() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "```mermaid" in readme
    for app_name in ("alerts", "lake", "serving", "notifier"):
        assert f"| `{app_name}` |" in readme, app_name
    streaming = (DOCS / "streaming.md").read_text()
    for outage in ("Elasticsearch down", "MongoDB down", "Kafka broker down", "webhook receiver black-holed",
                   "alert app killed", "lake or serving app stopped"):
        assert f"| {outage} |" in streaming, outage
