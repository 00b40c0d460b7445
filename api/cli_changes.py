"""``changes``: what changed around a time (deploys, maintenance, provider incidents).

The JSON shape is documented in ``docs/changes.md``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, TzOpt, settings_from
from whatchanged.api.models import ChangeList
from whatchanged.api.output import console, emit, table, wire
from whatchanged.engine.changes import aliases_path, list_changes, load_aliases
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.model import Change
from whatchanged.engine.schema import CHANGE_KINDS
from whatchanged.engine.timeparse import fmt_local, parse_duration, parse_when, zone
from whatchanged.engine.warehouse import Warehouse, latest_day
from whatchanged.present.shapes import change_list


def _window(c: Change, tz: str) -> str:
    start = str(fmt_local(c.start, tz, with_date=True))
    if c.end is None:
        return start
    same_day = c.end.astimezone(zone(tz)).date() == c.start.astimezone(zone(tz)).date()
    return f"{start} → {fmt_local(c.end, tz, with_date=not same_day)}"


def _scope_summary(c: Change) -> str:
    named = [f"{k} {', '.join(v)}" for k, v in c.scope.items() if v]
    n = len(c.resolved_services)
    shown = ", ".join(c.resolved_services[:4]) + ("…" if n > 4 else "")
    resolved = f"{n} service{'s' if n != 1 else ''}" + (f": {shown}" if n else "")
    return "; ".join([*named, resolved])


def cmd_changes(
    at: Annotated[
        str, typer.Option("--at", help="The time asked about: HH:MM (latest day with data), ISO 8601, epoch.")
    ],
    before: Annotated[str, typer.Option("--before", help="How far before --at to look.")] = "2h",
    after: Annotated[str, typer.Option("--after", help="How far after --at to look.")] = "30m",
    kind: Annotated[
        str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(CHANGE_KINDS)}.")
    ] = None,
    tz: TzOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Changes whose time or window meets [--at - --before, --at + --after], oldest first."""
    settings = settings_from(home, tz)
    if kind is not None and kind not in CHANGE_KINDS:
        raise ConfigError(f"--kind: expected one of {', '.join(CHANGE_KINDS)}, found {kind!r}")
    lookback = parse_duration(before, option="--before")
    lookahead = parse_duration(after, option="--after")
    wh = Warehouse(settings.home)
    wh.require()
    aliases_file = aliases_path(settings)
    aliases = load_aliases(aliases_file)
    con = wh.snapshot()
    try:
        when = parse_when(at, tz=settings.tz, default_day=latest_day(con, settings.tz), option="--at")
        found = list_changes(con, start=when - lookback, end=when + lookahead, kind=kind, aliases=aliases)
    finally:
        con.close()
    data = change_list(found, at=when, start=when - lookback, end=when + lookahead, kind=kind, tz=settings.tz)

    def render(_: dict[str, Any]) -> None:
        rows = [
            (c.kind, c.change_id, c.title or "", _window(c, settings.tz), c.status or "", _scope_summary(c))
            for c in found
        ]
        title = (
            f"changes from {fmt_local(when - lookback, settings.tz, with_date=True)} "
            f"to {fmt_local(when + lookahead, settings.tz, with_date=True)} ({settings.tz})"
        )
        console.print(table(title, ["kind", "id", "title", "window", "status", "scope"], rows))
        if not found:
            console.print("no change recorded in this range")
        if aliases_file:
            console.print(f"scopes resolved with the aliases of {aliases_file}", soft_wrap=True)

    emit(wire(ChangeList, data), as_json=as_json, render=render)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("changes")(cmd_changes)
