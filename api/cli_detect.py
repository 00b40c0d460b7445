"""``incidents``, ``availability`` and ``detect``: the detection step from the command line."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, TzOpt, settings_from
from whatchanged.api.models import AvailabilityOut, IncidentPage
from whatchanged.api.output import console, emit, styled, table, wire
from whatchanged.engine.availability import availability
from whatchanged.engine.changes import aliases_for
from whatchanged.engine.contextual import detect_series_combined
from whatchanged.engine.errors import ConfigError, InputError
from whatchanged.engine.incidents import find_incidents
from whatchanged.engine.settings import Settings
from whatchanged.engine.timeparse import fmt_local, parse_when
from whatchanged.engine.warehouse import Warehouse, latest_day
from whatchanged.present.shapes import anomaly, incident_page
from whatchanged.present.shapes import availability as availability_shape

FromOpt = Annotated[str, typer.Option("--from", help="Start: ISO 8601, 'YYYY-MM-DD HH:MM' or HH:MM.")]
ToOpt = Annotated[str, typer.Option("--to", help="End (exclusive), same formats as --from.")]


def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if s else f"{m}m"


def open_range(settings: Settings, start: str, end: str) -> tuple[Warehouse, Any, tuple[Any, Any]]:
    """The warehouse (which must exist), a connection to it and ``--from``/``--to`` parsed in
    ``settings.tz`` (``HH:MM`` on the latest day with data); the caller closes the connection."""
    wh = Warehouse(settings.home)
    wh.require()
    con = wh.snapshot()
    try:
        day = latest_day(con, settings.tz)
        lo = parse_when(start, tz=settings.tz, default_day=day, option="--from")
        hi = parse_when(end, tz=settings.tz, default_day=day, option="--to")
    except BaseException:
        con.close()
        raise
    if hi <= lo:
        con.close()
        raise ConfigError(f"--to ({end}) must be after --from ({start})")
    return wh, con, (lo, hi)


def cmd_incidents(
    start: FromOpt,
    end: ToOpt,
    home: HomeOpt = None,
    tz: TzOpt = None,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Only what a live detector knew at --to: no onset look-ahead, events cut at --to "
            "(ids may then differ from explain's and the API's).",
        ),
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Page size.")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Index of the first incident shown.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Incidents (anomalies and outages grouped across services) in a time range, oldest first:
    one page of them (--limit, --offset), as `GET /api/v1/incidents` gives it."""
    settings = settings_from(home, tz)
    _, con, (lo, hi) = open_range(settings, start, end)
    try:
        found = find_incidents(con, lo, hi, online=online)
    finally:
        con.close()

    shown = found[offset : offset + limit]

    def render(_: object) -> None:
        rows = [
            (
                i.incident_id,
                fmt_local(i.onset, settings.tz, with_date=True),
                fmt_local(i.end, settings.tz) if i.end else "ongoing",
                len(i.services_affected),
                len(i.critical_services),
                i.outage_count,
                _duration(i.downtime_s),
                ", ".join(i.signals),
            )
            for i in shown
        ]
        console.print(
            table(
                f"incidents {fmt_local(lo, settings.tz, with_date=True)} → "
                f"{fmt_local(hi, settings.tz, with_date=True)} ({settings.tz})",
                ["id", "onset", "end", "services", "critical", "outages", "downtime", "signals"],
                rows,
                drop_first=["signals", "critical", "services"],
            )
        )
        if not found:
            console.print("no incident")
        elif len(shown) < len(found):
            console.print(
                f"incidents {offset + 1}–{offset + len(shown)} of {len(found)} (--offset, --limit for others)"
            )

    page = incident_page(found, tz=settings.tz, limit=limit, offset=offset)
    emit(wire(IncidentPage, page), as_json=as_json, render=render)


def cmd_availability(
    start: FromOpt,
    end: ToOpt,
    service: Annotated[str | None, typer.Option("--service", help="One service.")] = None,
    check: Annotated[str | None, typer.Option("--check", help="One check name (all its services).")] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="Datacenter, app or kind of the inventory, or a comma-separated list of them/services.",
        ),
    ] = None,
    exclude_planned: Annotated[
        bool, typer.Option("--exclude-planned", help="Do not count planned maintenance windows.")
    ] = False,
    home: HomeOpt = None,
    tz: TzOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Percentage of time up, number of outages and cumulated downtime over a range."""
    settings = settings_from(home, tz)
    _, con, (lo, hi) = open_range(settings, start, end)
    try:
        result = availability(
            con,
            lo,
            hi,
            service=service,
            check=check,
            group=group,
            exclude_planned=exclude_planned,
            aliases=aliases_for(settings) if exclude_planned else None,
        )
    finally:
        con.close()

    def render(_: object) -> None:
        planned = (
            f", planned maintenance excluded ({_duration(result.planned_s)})"
            if exclude_planned
            else ", planned maintenance counted"
        )
        console.print(
            styled(
                (str(result.percent), "bold"),
                f" {result.selection} ({result.source}): "
                f"{result.outage_count} outage(s), {_duration(result.downtime_s)} down{planned}",
            ),
            highlight=False,
        )

    emit(wire(AvailabilityOut, availability_shape(result)), as_json=as_json, render=render)


def _read_series(path: Path, tz: str) -> tuple[list[Any], list[float]]:
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    ts: list[Any] = []
    values: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["timestamp", "value"]:
            raise InputError(
                "bad header",
                file=str(path),
                line=1,
                expected="'timestamp,value'",
                found=",".join(header or []),
            )
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                when = parse_when(row[0], tz=tz, option=f"{path.name} line {line}")
            except ConfigError as exc:
                raise InputError(str(exc), file=str(path), line=line, field="timestamp") from None
            try:
                values.append(float(row[1]) if row[1].strip() else float("nan"))
            except (ValueError, IndexError):
                raise InputError(
                    "not a number",
                    file=str(path),
                    line=line,
                    field="value",
                    expected="a number",
                    found=row[1] if len(row) > 1 else "",
                ) from None
            ts.append(when)
    return ts, values


def cmd_detect(
    input_file: Annotated[Path, typer.Option("--input", help="CSV file with 'timestamp,value' rows.")],
    tz: TzOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the online detector (contextual novelty + median baseline) on one series and print its alarms."""
    settings = settings_from(None, tz)
    ts, values = _read_series(input_file, settings.tz)
    found = detect_series_combined(ts, values, service=input_file.stem)

    def render(_: object) -> None:
        rows = [
            (
                fmt_local(a.onset, settings.tz, with_date=True),
                fmt_local(a.detected_at, settings.tz, with_date=True) if a.detected_at else "",
                fmt_local(a.end, settings.tz, with_date=True) if a.end else "ongoing",
                a.direction,
                f"{a.peak_score:.1f}",
                f"{a.baseline:.4g}",
                f"{a.observed:.4g}",
            )
            for a in found
        ]
        console.print(
            table(
                f"{input_file.name}: {len(values)} points, {len(found)} anomalies ({settings.tz})",
                ["onset", "detected", "end", "dir", "peak |z|", "baseline", "observed"],
                rows,
            )
        )

    emit([anomaly(a, settings.tz) for a in found], as_json=as_json, render=render)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("incidents")(cmd_incidents)
    app.command("availability")(cmd_availability)
    app.command("detect")(cmd_detect)
