"""``analyze``: bring the warehouse's day-by-day detection state up to date.

Questions (``explain``, the API, the dashboards) read the cached state of the
days they ask about (:mod:`whatchanged.engine.daystate`); this command computes
what is missing, in day order.  ``ingest`` starts it in the background after a
commit that added metrics (``--no-analyze`` or ``WHATCHANGED_NO_ANALYZE=1`` to
skip), and ``serve`` runs it when it starts, so that the first question after
new data does not pay for the history.  ``collect`` starts it after each pass
that added metrics: a question then finds the day being written analysed (the
contextual detector's results of it among them) instead of computing it.  One runs
at a time; one started meanwhile asks it to run again and returns.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, settings_from, spawn_detached
from whatchanged.api.output import console, emit
from whatchanged.engine.detect import prepare_states
from whatchanged.engine.storage import dir_lock, held_by_other
from whatchanged.engine.warehouse import Warehouse

NO_ANALYZE_ENV = "WHATCHANGED_NO_ANALYZE"


def analyze(home: Path, *, background: bool = False) -> dict[str, object]:
    """Compute the missing day states of the warehouse at ``home``.

    One analysis at a time: another waits for the running one, or, ``background``, leaves it a
    note to run again once done (its snapshot may predate the commit that started this one)
    and returns at once (``busy``): the collector starts one after every pass, a minute apart
    or closer, and they do not pile up."""
    started = time.perf_counter()
    wh = Warehouse(home)
    wh.require()
    folder = wh.home / "_cache" / "analyze"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only warehouse: the states live in memory, nothing to share
        return _analyze_once(wh, started)
    again = folder / "again"
    while True:
        with dir_lock(folder, blocking=not background) as taken:
            if not taken:
                again.touch()
                return {"home": str(wh.home), "busy": True, "days": 0, "computed": 0, "seconds": 0.0}
            out = _analyze_once(wh, started)
            while again.exists():  # a commit came in meanwhile
                again.unlink(missing_ok=True)
                out = _analyze_once(wh, started)
        if not (background and again.exists()):  # a note left just as the lock went
            return out


def _analyze_once(wh: Warehouse, started: float) -> dict[str, object]:
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
    background: Annotated[
        bool, typer.Option("--background", hidden=True, help="Return at once when one is running.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compute the detection state of the days that have none yet (ingest and collect start it in the background)."""
    data = analyze(settings_from(home).home, background=background)
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
    folder = home / "_cache" / "analyze"
    with contextlib.suppress(OSError):
        if held_by_other(folder):  # one is running: a note asks it to run again (no process)
            (folder / "again").touch()
            return True
    return spawn_detached("analyze", "--quiet", "--background", "--home", str(home))


def register(app: typer.Typer) -> None:
    app.command("analyze")(cmd_analyze)
