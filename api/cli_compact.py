"""``compact``: merge the small files of crowded day partitions (engine/compact.py).

Live collection commits a minute at a time; ``collect`` and ``ingest`` start this command
detached (``start_background``) when a day partition they wrote to holds more than
:data:`BACKGROUND_MAX_FILES` files, and it can be run by hand (``--max-files``, default 4).  One runs at a time: a second one started
meanwhile finds the ``_compact/`` lock taken and does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, settings_from, spawn_detached
from whatchanged.api.output import console, emit, table
from whatchanged.engine.compact import GRACE_S, MAX_FILES, compact, crowded
from whatchanged.engine.storage import dir_lock, held_by_other
from whatchanged.engine.warehouse import Warehouse

NO_COMPACT_ENV = "WHATCHANGED_NO_COMPACT"
#: a commit starts a background compaction when a day partition holds more files than this:
#: with a commit a minute, one every dozen minutes or so rather than after almost every commit,
#: so a question right after a commit seldom shares the CPU with one (``whatchanged compact``
#: by hand: :data:`~whatchanged.engine.compact.MAX_FILES`)
BACKGROUND_MAX_FILES = 12


def cmd_compact(
    home: HomeOpt = None,
    max_files: Annotated[
        int, typer.Option("--max-files", min=1, help="Compact day partitions with more files than this.")
    ] = MAX_FILES,
    grace: Annotated[
        float,
        typer.Option(
            "--grace", min=0.0, help="Seconds a replaced file stays on disk for readers that still list it."
        ),
    ] = GRACE_S,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print nothing (background use).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Merge the small files of day partitions holding more than --max-files files (safe while
    ingest, collect and serve run), and remove the replaced files once --grace old."""
    wh = Warehouse(settings_from(home).home)
    wh.require()
    lock = wh.home / "_compact"
    with wh.storage_faults():
        lock.mkdir(exist_ok=True)
    with dir_lock(lock, blocking=False) as taken:
        if not taken:
            if not quiet:
                emit(
                    {"running": True},
                    as_json=as_json,
                    render=lambda _: console.print("a compaction is running"),
                )
            return
        report = compact(wh, max_files=max_files, grace_s=grace)
    if quiet:
        return
    data = report.to_dict()

    def render(d: dict[str, object]) -> None:
        rows = [
            (p.table, p.day, p.files_in, p.files_out if p.txid else "(merged by another run)", p.rows)
            for p in report.partitions
        ]
        if rows:
            console.print(table("compacted", ["table", "day", "files in", "files out", "rows"], rows))
        console.print(
            f"{d['compacted']} partition(s) compacted; {d['removed_files']} replaced file(s) and "
            f"{d['removed_manifests']} manifest(s) removed; {d['seconds']} s"
        )

    emit(data, as_json=as_json, render=render)


def start_background(home: Path, *, max_files: int = BACKGROUND_MAX_FILES) -> bool:
    """Start ``whatchanged compact --quiet`` detached when a day partition of the warehouse
    holds more than ``max_files`` files and none runs; False when none does, when one runs, when disabled by
    ``WHATCHANGED_NO_COMPACT``, or when it cannot be started."""
    if os.environ.get(NO_COMPACT_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    if held_by_other(home / "_compact"):
        return False  # one is running: it, or the next commit's, will see these files
    if not crowded(Warehouse(home), max_files=max_files):
        return False
    return spawn_detached("compact", "--quiet", "--max-files", str(max_files), "--home", str(home))


def register(app: typer.Typer) -> None:
    app.command("compact")(cmd_compact)
