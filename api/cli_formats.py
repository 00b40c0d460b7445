"""``whatchanged formats``: the input formats ``ingest`` reads, each with one example line."""

from __future__ import annotations

from typing import Any

import typer

from whatchanged.api.cli_common import JsonOpt
from whatchanged.api.output import console, emit, styled


def cmd_formats(as_json: JsonOpt = False) -> None:
    """List the input formats (the names --format takes), most specific first, with an example."""
    from whatchanged.ingest.registry import EXAMPLES, readers

    data = [{"name": r.name, "description": r.description, "example": EXAMPLES[r.name]} for r in readers()]

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            console.print(styled((r["name"], "bold"), f"  {r['description']}"), highlight=False)
            console.print(f"    {r['example']}", highlight=False, soft_wrap=True)
        console.print("Files are recognised by their content; --format NAME forces one reader.")

    emit(data, as_json=as_json, render=render)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("formats")(cmd_formats)
