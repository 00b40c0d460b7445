"""``init``, ``ingest``, ``status``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, TzOpt, settings_from
from whatchanged.api.output import console, emit, progress, styled, table
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import expand, ingest


def cmd_init(home: HomeOpt = None) -> None:
    """Create an empty warehouse."""
    wh = Warehouse(settings_from(home).home)
    created = wh.init()
    console.print(f"{'created' if created else 'already there'}: warehouse at {wh.home}")


def cmd_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    home: HomeOpt = None,
    tz: TzOpt = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Force a reader instead of detecting it.")
    ] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Keep good rows, list rejected ones.")] = False,
    service_label: Annotated[
        str | None, typer.Option("--service-label", help="Prometheus label naming the service.")
    ] = None,
    allow_future: Annotated[
        bool,
        typer.Option(
            "--allow-future",
            help="Accept times more than a day ahead of this machine's clock "
            "[env WHATCHANGED_ALLOW_FUTURE=1].",
        ),
    ] = False,
    as_json: JsonOpt = False,
    analyze: Annotated[
        bool,
        typer.Option(
            "--analyze/--no-analyze",
            help="After new metrics, update the detection state in the background "
            "[env WHATCHANGED_NO_ANALYZE=1: off].",
        ),
    ] = True,
) -> None:
    """Load metrics, check states, inventory and changes into the warehouse."""
    settings = settings_from(home, tz)
    wh = Warehouse(settings.home)
    ctx = ReadContext.from_settings(
        settings, allow_future=allow_future, skip_bad=skip_bad, service_label=service_label
    )
    files = expand(paths)
    with progress("ingest", disable=as_json or len(files) < 2) as bar:
        task = bar.add_task("", total=len(files))
        summary = ingest(
            wh, paths, ctx, fmt=fmt, progress=lambda f: bar.update(task, advance=1, description=f.name)
        )
    result = summary.result
    data = {
        "home": str(wh.home),
        "files": [{"path": p, "format": r} for p, r in summary.files],
        "rows_read": result.rows_in if result else {},
        "rows_added": result.rows_added if result else {},
        "services": summary.services,
        "first": summary.first,
        "last": summary.last,
        "tz": summary.tz,
        "tz_assumed": summary.tz_assumed,
        "rejected": [str(e) for e in summary.rejected],
        "seconds": round(summary.seconds, 3),
    }

    def render(_data: dict[str, object]) -> None:
        rows = [
            (t, n, (result.rows_added if result else {}).get(t, 0))
            for t, n in (result.rows_in if result else {}).items()
        ]
        console.print(table("ingested", ["table", "rows read", "rows added"], rows))
        console.print(
            f"{len(summary.files)} file(s), {summary.services} service(s), "
            f"{summary.first or '-'} → {summary.last or '-'}, {summary.seconds:.2f} s"
        )
        if summary.tz_assumed:
            console.print(f"times without an offset were read in {summary.tz}")
        for e in summary.rejected:
            console.print(styled(("rejected:", "yellow"), f" {e}"), highlight=False)

    emit(data, as_json=as_json, render=render)
    if analyze and result is not None and result.rows_added.get("metrics", 0):
        from whatchanged.api.cli_analyze import start_background

        start_background(wh.home)
    if result is not None and (result.rows_added.get("metrics", 0) or result.rows_added.get("states", 0)):
        from whatchanged.api import cli_compact

        cli_compact.start_background(wh.home)  # when a day partition holds too many files


def cmd_status(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """What the warehouse holds."""
    from whatchanged.api.models import StatusOut
    from whatchanged.api.output import wire
    from whatchanged.engine.live import sources_status
    from whatchanged.present import shapes

    wh = Warehouse(settings_from(home).home)
    st = shapes.status(wh.status(), sources_status(wh), show_home=True)

    def render(_data: dict[str, object]) -> None:
        rows = st["rows"]
        console.print(table(f"warehouse {st['home']}", ["table", "rows"], list(rows.items())))
        console.print(
            f"{st['services']} services in the inventory, {st['services_with_metrics']} with metrics; "
            f"data from {st['first'] or '-'} to {st['last'] or '-'}; {st['commits']} commits, "
            f"{st['bytes'] / 1e6:.1f} MB"
        )
        console.print(
            "files: "
            + ", ".join(f"{t} {n}" for t, n in st["files"].items() if n)
            + "; most in one day: "
            + ", ".join(f"{t} {n}" for t, n in st["most_files_per_day"].items())
            + " ('whatchanged compact' merges days with more than 4)"
        )
        if st["changes_by_kind"]:
            console.print("changes: " + ", ".join(f"{k} {v}" for k, v in st["changes_by_kind"].items()))
        if st["sources"]:
            console.print(
                table(
                    "live sources (whatchanged collect)",
                    ["source", "kind", "state", "last success", "failures", "last error", "next retry"],
                    [
                        (
                            s["source"],
                            s["kind"],
                            s["state"],
                            s["last_success"] or "never",
                            s["consecutive_failures"],
                            s["last_error"] or "",
                            s["next_retry"] or "",
                        )
                        for s in st["sources"]
                    ],
                )
            )

    emit(wire(StatusOut, st), as_json=as_json, render=render)


def register(app: typer.Typer) -> None:
    app.command("init")(cmd_init)
    app.command("ingest")(cmd_ingest)
    app.command("status")(cmd_status)
