"""``analyze``: bring the warehouse's day-by-day detection state up to date.

Questions (``explain``, the API, the dashboards) read the cached state of the
days they ask about (:mod:`whatchanged.engine.daystate`); this command computes
what is missing, in day order.  ``ingest`` starts it in the background after a
commit that added metrics (``--no-analyze`` or ``WHATCHANGED_NO_ANALYZE=1`` to
skip), and ``serve`` runs it when it starts, so that the first question after
new data does not pay for the history.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, settings_from, spawn_detached
from whatchanged.api.output import console, emit
from whatchanged.engine.detect import prepare_states
from whatchanged.engine.warehouse import Warehouse

NO_ANALYZE_ENV = "WHATCHANGED_NO_ANALYZE"


def analyze(home: Path) -> dict[str, object]:
    """Compute the missing day states of the warehouse at ``home``."""
    started = time.perf_counter()
    wh = Warehouse(home)
    wh.require()
    con = wh.snapshot()
    try:
        days, computed = prepare_states(con)
    finally:
        con.close()
    return {
        "home": str(wh.home),
        "days": days,
        "computed": computed,
        "seconds": round(time.perf_counter() - started, 3),
    }


def cmd_analyze(
    home: HomeOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing (background use).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compute the detection state of the days that have none yet (ingest does it in the background)."""
    data = analyze(settings_from(home).home)
    if quiet:
        return

    def render(d: dict[str, object]) -> None:
        console.print(f"{d['days']} day(s) of metrics; {d['computed']} analysed now in {d['seconds']} s")

    emit(data, as_json=as_json, render=render)


def start_background(home: Path) -> bool:
    """Start ``whatchanged analyze --quiet`` detached (it outlives this process); False when
    disabled by ``WHATCHANGED_NO_ANALYZE`` or when it cannot be started."""
    if os.environ.get(NO_ANALYZE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    return spawn_detached("analyze", "--quiet", "--home", str(home))


def register(app: typer.Typer) -> None:
    app.command("analyze")(cmd_analyze)
