"""The ``whatchanged`` command line (typer + rich).

Commands live in ``cli_*`` modules, each exposing ``register(app)``; they
call engine or ingest functions and hold no logic of their own.  Every
:class:`~whatchanged.engine.errors.WhatchangedError` becomes one line on
stderr and exit code 2 — never a traceback.
"""

from __future__ import annotations

import sys

import typer

from whatchanged.api import (
    cli_analyze,
    cli_batch,
    cli_changes,
    cli_core,
    cli_demo,
    cli_detect,
    cli_explain,
    cli_serve,
)
from whatchanged.api.output import err_console
from whatchanged.engine.errors import WhatchangedError

app = typer.Typer(
    name="whatchanged",
    help="What changed at 19:23? Root-cause correlation over monitoring data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (cli_core, cli_changes, cli_detect, cli_explain, cli_analyze, cli_serve, cli_batch, cli_demo):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        app(args=argv, standalone_mode=True)
    except WhatchangedError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
