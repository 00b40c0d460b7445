"""The ``whatchanged`` command line (typer + rich).

Commands live in ``cli_*`` modules, each exposing ``register(app)``; they
call engine or ingest functions and hold no logic of their own.  Every
:class:`~whatchanged.engine.errors.WhatchangedError` becomes one line on
stderr and exit code 2 — never a traceback.

A run imports only the module of the command it runs (``explain`` does not
load the batch, server or ingest code): a responder's first answer starts
about 0.2 s sooner.  ``--help`` and an unknown command load them all.
"""

from __future__ import annotations

import importlib
import sys

import typer

from whatchanged.api.output import err_console, styled
from whatchanged.engine.errors import WhatchangedError

#: command → the module registering it, in the order ``--help`` lists them
COMMANDS = {
    "init": "cli_core",
    "ingest": "cli_core",
    "status": "cli_core",
    "formats": "cli_formats",
    "changes": "cli_changes",
    "incidents": "cli_detect",
    "availability": "cli_detect",
    "detect": "cli_detect",
    "fit": "cli_explain",
    "explain": "cli_explain",
    "analyze": "cli_analyze",
    "serve": "cli_serve",
    "batch": "cli_batch",
    "demo": "cli_demo",
}


def build(command: str | None = None) -> typer.Typer:
    """The app with every command, or only with the module registering ``command``."""
    app = typer.Typer(
        name="whatchanged",
        help="What changed at 19:23? Root-cause correlation over monitoring data.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # help texts hold literal brackets ("[env WHATCHANGED_TZ; default UTC]"): not markup
        rich_markup_mode=None,
    )

    @app.callback()
    def _group() -> None:
        """What changed at 19:23? Root-cause correlation over monitoring data."""

    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"whatchanged.api.{name}").register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole app (docs, tests)
        return build()
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    try:
        build(args[0] if args else None)(args=args, standalone_mode=True)
    except WhatchangedError as exc:
        err_console.print(styled(("error:", "bold red"), f" {exc}"), highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print(styled(("interrupted", "bold red")))
        sys.exit(130)


if __name__ == "__main__":
    main()
