"""``explain`` (what changed at T?); ``fit`` is in :mod:`whatchanged.api.cli_fit`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.panel import Panel

from whatchanged.api.cli_common import HomeOpt, JsonOpt, TzOpt, settings_from
from whatchanged.api.cli_fast import explain_json_at, explain_json_incident
from whatchanged.api.output import console, emit, err_console, styled, table
from whatchanged.engine.errors import ConfigError


def _hm(iso: str | None) -> str:
    return iso[11:16] if iso else "-"


def render_explanation(d: dict[str, Any], tz: str) -> None:
    """Rich tables for one explanation's JSON (shared with ``demo``)."""
    inc = d["incident"]
    if inc is None:
        console.print(styled((d["at"], "bold"), ": no incident at this time."))
        for r in d["ruled_out"]:
            console.print(f"  {r['reason']}")
        return
    console.print(
        Panel.fit(
            styled(
                "incident ",
                (inc["id"], "bold"),
                f"  onset {_hm(inc['onset'])}  end {_hm(inc['end'])} ({tz})\n"
                f"{inc['services_affected']} services affected, {inc['critical_services']} CRITICAL; "
                f"{inc['outage_count']} outages, {inc['downtime_s'] / 60:.0f} min down"
                + (f"; signals: {', '.join(inc['signals'])}" if inc["signals"] else ""),
            ),
            title=f"what changed at {d['at'][:16].replace('T', ' ')}",
        )
    )
    for o in d.get("overlapping", []):
        console.print(
            styled(
                "also under way: incident ",
                (o["id"], "bold"),
                f" (onset {_hm(o['onset'])}, end {_hm(o['end'])}, {o['services_affected']} services): "
                "a separate incident, not part of this answer",
            ),
            highlight=False,
        )
    rows = [
        (c["rank"], c["category"], c["change_id"] or c["component"] or "", c["title"], f"{c['score']:.2f}")
        for c in d["causes"]
    ]
    console.print(table("ranked causes", ["#", "class", "id / component", "title", "score"], rows))
    for c in d["causes"][:3]:
        console.print(
            styled((f"#{c['rank']} {c['change_id'] or c['component'] or c['category']}", "bold")),
            highlight=False,
        )
        for e in c["evidence_for"]:
            console.print(styled("  ", ("+", "green"), f" {e}"), highlight=False)
        for e in c["evidence_against"]:
            console.print(styled("  ", ("-", "red"), f" {e}"), highlight=False)
    w = d.get("weights") or {"source": "default"}
    console.print(
        f"weights: {w['source']}" + (f" (fitted {w['fitted_at']})" if w.get("fitted_at") else ""),
        soft_wrap=True,  # a path: never cut
        highlight=False,
    )
    if d["ruled_out"]:
        console.print(
            table("ruled out", ["class", "why"], [(r["category"], r["reason"]) for r in d["ruled_out"]])
        )
    if d["reactions"]:
        console.print(
            table(
                f"reactions during the incident ({len(d['reactions'])})",
                ["time", "kind", "id", "title"],
                [(_hm(r["start"]), r["kind"], r["change_id"], r["title"]) for r in d["reactions"]],
            )
        )


def cmd_explain(
    at: Annotated[
        str | None, typer.Option("--at", help="When: ISO 8601, 'YYYY-MM-DD HH:MM' or 'HH:MM' in --tz.")
    ] = None,
    home: HomeOpt = None,
    tz: TzOpt = None,
    as_json: JsonOpt = False,
    incident: Annotated[
        str | None, typer.Option("--incident", help="Or one incident by its id (whatchanged incidents).")
    ] = None,
) -> None:
    """What changed at T: the incident, ranked causes, ruled-out classes, reactions."""
    if (at is None) == (incident is None):
        found = "neither" if at is None else f"both (--at {at!r}, --incident {incident!r})"
        raise ConfigError(f"explain: give exactly one of --at T or --incident ID, found {found}")
    settings = settings_from(home, tz)
    # detection can take seconds on a large warehouse the first time: say what is going on
    # (on stderr, and only on a terminal: --json output stays clean)
    asked = f"the incident at {at}" if at is not None else f"incident {incident}"
    with err_console.status(f"looking for {asked} and what changed before it…"):
        data = (
            explain_json_at(settings, at)
            if at is not None
            else explain_json_incident(settings, str(incident))
        )
    emit(data, as_json=as_json, render=lambda d: render_explanation(d, settings.tz))


def register(app: typer.Typer) -> None:
    app.command("explain")(cmd_explain)
    from whatchanged.api import cli_fit  # fit lives in its own module; registered here as before

    cli_fit.register(app)
