"""``doctor``: check the warehouse, repair what can be repaired, say what cannot."""

from __future__ import annotations

from typing import Annotated

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, settings_from
from whatchanged.api.output import console, emit, table
from whatchanged.engine.doctor import diagnose
from whatchanged.engine.warehouse import Warehouse

_STYLE = {"ok": "green", "repaired": "yellow", "problem": "bold red"}


def cmd_doctor(
    home: HomeOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; remove and rewrite nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the warehouse (manifests, files, views, space); remove dead writers' leftovers.

    Exit code 0 when nothing is left to fix, 1 when a problem remains (each one says what to do).
    """
    wh = Warehouse(settings_from(home).home)
    with wh.storage_faults():
        found = diagnose(wh, repair=not dry_run)
    problems = [f for f in found if f.outcome == "problem"]

    def render(_: object) -> None:
        rows = [(f.check, f"[{_STYLE[f.outcome]}]{f.outcome}[/]", f.detail) for f in found]
        console.print(table(f"doctor {wh.home}", ["check", "outcome", "detail"], rows))
        console.print(f"{len(problems)} problem(s) left" if problems else "nothing left to fix")

    emit(
        {"home": str(wh.home), "findings": [f.to_dict() for f in found], "problems": len(problems)},
        as_json=as_json,
        render=render,
    )
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(cmd_doctor)
