"""``fate``: the inventory's failure domains and the redundancy groups that share one."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, settings_from
from whatchanged.api.models import FateOut
from whatchanged.api.output import console, emit, styled, table, wire
from whatchanged.engine.warehouse import Warehouse

#: domains listed per level in the tables (--json has them all)
SHOWN = 10


def _where(d: dict[str, Any]) -> str:
    return f"{d['level']} {d['name']}"


def render_fate(d: dict[str, Any]) -> None:
    total = d["services"]
    largest = d["largest"]
    if largest is None:
        console.print("The inventory is empty: run whatchanged ingest with a services CSV.")
        return
    line: list[str | tuple[str, str]] = [
        "largest failure domain: ",
        (_where(largest), "bold"),
        f", {largest['services']} of {total} services ({largest['share_pct']}%)",
    ]
    if largest["level"] == "datacenter":
        line.append(
            f"; a maintenance on its {largest['switches']} switches reaches "
            f"{largest['behind_switches']} of {total} services"
        )
    console.print(styled(*line), highlight=False)
    for level, domains in d["domains"].items():
        rows = [(x["name"], x["services"], f"{x['share_pct']}%") for x in domains[:SHOWN]]
        more = f", {len(domains) - SHOWN} more in --json" if len(domains) > SHOWN else ""
        console.print(table(f"{level} ({len(domains)}{more})", [level, "services", "share"], rows))
    if not d["groups"]:
        console.print("No redundancy group: add a redundancy_group column to the inventory CSV.")
        return
    rows = []
    for g in d["groups"]:
        members = ", ".join(m["service"] for m in g["members"])
        shared = "; ".join(f"{_where(s)} ({s['services']} services)" for s in g["shared"])
        rows.append((g["name"], members, shared or "none: spread"))
    console.print(
        table("redundancy groups: where all members sit together", ["group", "members", "shared"], rows)
    )


def cmd_fate(
    group: Annotated[str | None, typer.Option("--group", help="Only this redundancy group.")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Failure domains (datacenter, switch, rack, host) and the redundancy groups whose members share one."""
    from whatchanged.engine.fate import fate_report
    from whatchanged.present.shapes import fate as fate_json

    settings = settings_from(home)
    wh = Warehouse(settings.home)
    wh.require()
    con = wh.snapshot()
    try:
        data = fate_json(fate_report(con, group=group))
    finally:
        con.close()
    emit(wire(FateOut, data), as_json=as_json, render=render_fate)


def register(app: typer.Typer) -> None:
    app.command("fate")(cmd_fate)
