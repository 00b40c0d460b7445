"""``whatchanged demo``: the reference night, end to end.

Generates the night's inputs in their real formats (inventory, metrics,
Nagios log, Pingdom export, deploy log, restarts, works notices), ingests
them into the warehouse, then asks "what changed?" at 18:43 and 19:23
(Europe/Paris) and prints both answers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from whatchanged.api.cli_analyze import analyze
from whatchanged.api.cli_common import HomeOpt, settings_from
from whatchanged.api.cli_explain import render_explanation
from whatchanged.api.cli_fast import explain_json_at
from whatchanged.api.output import console, styled
from whatchanged.engine.availability import availability
from whatchanged.engine.timeparse import parse_when
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

DEMO_TZ = "Europe/Paris"
QUESTIONS = ("18:43", "19:23")


def cmd_demo(
    home: HomeOpt = None,
    inputs: Annotated[
        Path, typer.Option("--inputs", help="Where to write the night's raw input files.")
    ] = Path("data/reference-night"),
    serve: Annotated[bool, typer.Option("--serve", help="Then serve the API and dashboards.")] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --serve.")] = 8080,
) -> None:
    """Generate the reference night, ingest it and explain 18:43 and 19:23."""
    from whatchanged.data.reference_night import generate

    settings = settings_from(home, DEMO_TZ)
    started = time.perf_counter()
    console.print(styled(("1.", "bold"), f" generating the reference night's inputs in {inputs}"))
    truth = generate(inputs)
    console.print(
        styled(
            ("2.", "bold"), f" ingesting them into {settings.home} (times without offset read in {DEMO_TZ})"
        )
    )
    summary = ingest(Warehouse(settings.home), [inputs], ReadContext(tz=DEMO_TZ))
    added = summary.result.rows_added if summary.result else {}
    console.print(
        "   rows added: " + ", ".join(f"{k} {v:,}" for k, v in added.items()) + f" in {summary.seconds:.1f} s"
    )
    console.print(
        styled(
            ("3.", "bold"),
            " analysing the week (the detection state of each day, as ingest does in the background)",
        )
    )
    analysed = analyze(settings.home)
    console.print(f"   {analysed['computed']} day(s) analysed in {analysed['seconds']} s")
    for when in QUESTIONS:
        console.rule(f"whatchanged explain --at {when} --tz {DEMO_TZ}")
        render_explanation(explain_json_at(settings, when), DEMO_TZ)
    console.rule(f"whatchanged availability --service {truth.probe_service} (year to date, external probe)")
    con = Warehouse(settings.home).snapshot()
    try:
        ytd = availability(
            con, parse_when(truth.ytd_from_utc), parse_when(truth.ytd_to_utc), service=truth.probe_service
        )
    finally:
        con.close()
    down_min = ytd.downtime_s / 60
    console.print(
        f"{ytd.percent} up: {ytd.outage_count} outages, {down_min:.0f} min down, planned maintenance counted"
    )
    console.print(
        f"done in {time.perf_counter() - started:.1f} s; try: whatchanged explain --at 19:23 --tz {DEMO_TZ}"
    )
    if serve:
        from whatchanged.api.cli_serve import run_server

        data = explain_json_at(settings, "19:23")
        incident = data["incident"]["id"] if data["incident"] else None
        if incident:
            console.print(
                f"incident page: http://127.0.0.1:{port}/dashboards/incidents/{incident}", soft_wrap=True
            )
        run_server(settings, host="127.0.0.1", port=port)


def register(app: typer.Typer) -> None:
    app.command("demo")(cmd_demo)
