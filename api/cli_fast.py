"""The fast path of the command line: ``explain --at T [--home H] [--tz Z] --json``, a
responder's question in a new process, runs without typer and rich (about 0.1 s of imports);
the full ``explain`` command (:mod:`whatchanged.api.cli_explain`) answers with the same
functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from whatchanged.engine.settings import Settings, load_settings
from whatchanged.engine.timeparse import parse_when
from whatchanged.engine.warehouse import Warehouse, latest_day


def explain_json_at(settings: Settings, at_text: str) -> dict[str, Any]:
    from whatchanged.engine.explain import explain_at  # heavy: loaded on use
    from whatchanged.present.explanation import explanation

    wh = Warehouse(settings.home)
    wh.require()
    con = wh.snapshot()
    try:
        at = parse_when(at_text, tz=settings.tz, default_day=latest_day(con, settings.tz), option="--at")
        return explanation(explain_at(con, at, settings=settings), tz=settings.tz)
    finally:
        con.close()


def explain_json_incident(settings: Settings, incident_id: str) -> dict[str, Any]:
    """One incident by id, explained as ``GET /incidents/{id}`` does (no question time)."""
    from whatchanged.engine.explain import explain_incident
    from whatchanged.engine.incidents import get_incident, overlapping
    from whatchanged.present.explanation import explanation

    wh = Warehouse(settings.home)
    wh.require()
    con = wh.snapshot()
    try:
        incident = get_incident(con, incident_id)
        found = explain_incident(con, incident, settings=settings, overlapping=overlapping(con, incident))
        return explanation(found, tz=settings.tz)
    finally:
        con.close()


def explain_json(at: str, home: Path | None, tz: str | None) -> None:
    """Print the JSON answer of ``explain --at`` (what ``explain --json`` prints)."""
    from whatchanged.api.jsonout import to_json

    print(to_json(explain_json_at(load_settings(home=home, tz=tz), at)))
