"""The ``whatchanged`` command line (typer + rich).

Commands live in ``cli_*`` modules, each exposing ``register(app)``; they
call engine or ingest functions and hold no logic of their own.  Every
:class:`~whatchanged.engine.errors.WhatchangedError` becomes one line on
stderr and exit code 2 — never a traceback.  Anything else (a bug, or an
input we failed to foresee) becomes one line naming the exception, "run with
--debug for the traceback", and exit code 1; ``--debug`` (anywhere on the
command line) lets the traceback through.

A run imports only the module of the command it runs (``explain`` does not
load the batch, server or ingest code): a responder's first answer starts
about 0.2 s sooner.  ``--help`` and an unknown command load them all.  A plain
``explain --at T [--home H] [--tz Z] [--json]`` is called without typer's
parsing (:func:`explain_args`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whatchanged.engine.errors import WhatchangedError

if TYPE_CHECKING:
    import typer

#: command → the module registering it, in the order ``--help`` lists them
COMMANDS = {
    "init": "cli_core",
    "ingest": "cli_core",
    "status": "cli_core",
    "collect": "cli_collect",
    "silences": "cli_collect",
    "formats": "cli_formats",
    "doctor": "cli_doctor",
    "compact": "cli_compact",
    "changes": "cli_changes",
    "incidents": "cli_detect",
    "availability": "cli_detect",
    "detect": "cli_detect",
    "fit": "cli_explain",
    "explain": "cli_explain",
    "postmortem": "cli_postmortem",
    "fate": "cli_fate",
    "analyze": "cli_analyze",
    "serve": "cli_serve",
    "batch": "cli_batch",
    "demo": "cli_demo",
}


def build(command: str | None = None) -> typer.Typer:
    """The app with every command, or only with the module registering ``command``."""
    import typer

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
    def _group(
        debug: bool = typer.Option(
            False, "--debug", help="Show the traceback of an unexpected error instead of one line."
        ),
    ) -> None:
        """What changed at 19:23? Root-cause correlation over monitoring data."""

    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"whatchanged.api.{name}").register(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole app (docs, tests)
        return build()
    raise AttributeError(name)


def one_line(text: object, limit: int = 2000) -> str:
    """``text`` on one line (newlines folded), cut at ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


#: ``explain``'s options taking a value → its parameter
_EXPLAIN_OPTIONS = {"--at": "at", "--home": "home", "--tz": "tz"}


def explain_args(args: list[str]) -> dict[str, Any] | None:
    """``cmd_explain``'s arguments when ``args`` is ``explain`` with only ``--at``, ``--home``,
    ``--tz`` (``--x V`` or ``--x=V``) and ``--json``; else None (typer parses it).

    A responder's ``explain`` in a new process then skips typer's parsing, whose coercion
    of values imports pydantic (about 0.1 s); the arguments and the call are the same
    (``tests/api/test_cli_parity.py``)."""
    if not args or args[0] != "explain":
        return None
    found: dict[str, Any] = {"at": None, "home": None, "tz": None, "as_json": False}
    rest = iter(args[1:])
    for arg in rest:
        if arg == "--json":
            found["as_json"] = True
            continue
        name, eq, value = arg.partition("=")
        if name not in _EXPLAIN_OPTIONS:
            return None
        if not eq:
            value = next(rest, "")
        if not value:
            return None  # typer says what is missing
        found[_EXPLAIN_OPTIONS[name]] = value
    if found["at"] is None:
        return None
    if found["home"] is not None:
        found["home"] = Path(found["home"])
    return found


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        direct = explain_args(args)
        if direct is not None and direct["as_json"]:  # neither typer nor rich: JSON on stdout
            from whatchanged.api.cli_fast import explain_json

            explain_json(direct["at"], direct["home"], direct["tz"])
            return
        if direct is not None:
            from whatchanged.api.cli_explain import cmd_explain

            cmd_explain(**direct)
            return
        build(args[0] if args else None)(args=args, standalone_mode=True)
    except WhatchangedError as exc:
        if debug:
            raise
        from whatchanged.api.output import err_console, styled

        err_console.print(
            styled(("error:", "bold red"), f" {one_line(exc)}"), highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        from whatchanged.api.output import err_console, styled

        err_console.print(styled(("interrupted", "bold red")))
        sys.exit(130)
    except Exception as exc:  # the last resort: one line, never a traceback
        if debug:
            raise
        from whatchanged.api.output import err_console, styled

        err_console.print(
            styled(
                ("error:", "bold red"),
                f" unexpected {type(exc).__name__}: {one_line(exc, 500)} (run with --debug for the traceback)",
            ),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
