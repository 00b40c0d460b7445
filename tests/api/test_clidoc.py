"""docs/cli.md is the CLI's own help, regenerated: it cannot drift."""

from __future__ import annotations

from tests.helpers import ROOT
from whatchanged.api.clidoc import render


def test_cli_reference_is_up_to_date() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert doc == render(), "docs/cli.md is stale: run `python -m whatchanged.api.clidoc > docs/cli.md`"


def test_every_command_is_documented() -> None:
    doc = render()
    for command in (
        "init",
        "ingest",
        "status",
        "explain",
        "changes",
        "incidents",
        "availability",
        "detect",
        "fit",
        "demo",
        "serve",
        "batch",
    ):
        assert f"## whatchanged {command}\n" in doc
