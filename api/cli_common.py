"""Options every command shares, in a module of their own: a command that does not ingest
(``explain`` above all) does not import the ingest pipeline and its Arrow compute kernels."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from whatchanged.engine.settings import Settings, load_settings

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Warehouse folder [env WHATCHANGED_HOME; default ./data/warehouse]."),
]
TzOpt = Annotated[
    str | None,
    typer.Option("--tz", help="Zone for times without an offset [env WHATCHANGED_TZ; default UTC]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def settings_from(home: Path | None = None, tz: str | None = None) -> Settings:
    return load_settings(home=home, tz=tz)


#: Niceness of the background work (``analyze``, ``compact``): a responder's question in
#: another process gets the CPU first.
BACKGROUND_NICE = 10


def spawn_detached(*args: str) -> bool:
    """Start ``whatchanged ARGS…`` detached from this process (its own session, no terminal,
    output discarded: it outlives the command that started it), at :data:`BACKGROUND_NICE`;
    False when it cannot start."""
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "whatchanged.api.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return False
    with contextlib.suppress(OSError, AttributeError):  # not POSIX, or already gone
        os.setpriority(os.PRIO_PROCESS, child.pid, BACKGROUND_NICE)
    # Linux with autogroups: its own session is its own scheduling group, and the CPU is shared
    # between groups first (a nice counts only within its group): the group gets the nice too,
    # else a compaction takes a core from an explain as if not niced
    with contextlib.suppress(OSError):  # no autogroups, or already gone
        Path(f"/proc/{child.pid}/autogroup").write_text(f"{BACKGROUND_NICE}\n")
    return True
