"""``batch``: the whole analysis over a date range, in-process, on a process pool or on Dask.

The logic is :mod:`whatchanged.engine.batch`; this module parses the
options, draws the progress bar, builds ``report.html`` (the weekly-review
figures of :mod:`whatchanged.dashboards.figures` over the range, plotly.js
inlined: the file works offline) and prints the summary.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, TzOpt, settings_from
from whatchanged.api.cli_detect import FromOpt, ToOpt, _duration, open_range
from whatchanged.api.output import console, emit, progress, styled, table
from whatchanged.engine.timeparse import fmt_local, zone

if TYPE_CHECKING:  # the engine's batch module and pandas load on use: `whatchanged --help` stays fast
    from whatchanged.engine import batch

#: Services drawn in the availability chart of report.html (the least available).
MAX_SERVICES = 30


def cmd_batch(
    start: FromOpt,
    end: ToOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder (created; re-runs resume in it).")],
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler tcp://host:8786, or local:N for a local cluster of N worker processes.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Run partitions on a local pool of N processes.")
    ] = None,
    partition_days: Annotated[
        int, typer.Option("--partition-days", help="Days per time partition (cut at UTC midnight).")
    ] = 15,
    shards: Annotated[int, typer.Option("--shards", help="Service shards per time partition.")] = 1,
    home: HomeOpt = None,
    tz: TzOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Detect, stitch, rank and report over a date range; writes Parquet files and reports into --out."""
    from whatchanged.engine import batch
    from whatchanged.present import report
    from whatchanged.present.shapes import batch_summary

    settings = settings_from(home, tz)
    wh, con, (lo, hi) = open_range(settings, start, end)
    con.close()
    params = batch.BatchParams(home=wh.home, start=lo, end=hi, partition_days=partition_days, shards=shards)
    executor = batch.executor_for(scheduler=scheduler, workers=workers)
    with progress("batch", disable=as_json) as bar:
        task = bar.add_task("planning", total=None)

        def planned(total: int, cached: int) -> None:
            note = f", {cached} already done" if cached else ""
            bar.update(task, total=total, description=f"{executor.name}{note}")

        def advance(p: batch.Progress) -> None:
            bar.update(task, completed=p.done, description=f"{p.key}{' (done before)' if p.cached else ''}")

        result = batch.run_batch(
            params, out, settings=settings, executor=executor, progress=advance, on_plan=planned
        )
        bar.update(task, description="ranking and writing reports")
        page = report_html(result).encode()
        written = batch.write_outputs(result, out, extra={**report.files(result), "report.html": page})
    data = {**batch_summary(result), "out": str(Path(out).resolve()), "files": [p.name for p in written]}

    def render(_: object) -> None:
        tzname = settings.tz
        console.print(
            styled(
                (f"{len(result.incidents)} incidents", "bold"),
                f" {fmt_local(lo, tzname, with_date=True)} → "
                f"{fmt_local(hi, tzname, with_date=True)} ({tzname}): {result.anomalies} anomalies, "
                f"{result.outages} outages; {result.partitions} partitions on {result.executor}"
                + (f", {result.cached} reused" if result.cached else ""),
            ),
            highlight=False,
        )
        per = batch.attribution(result)
        if per:
            console.print(
                table(
                    "outage minutes per cause class",
                    ["class", "minutes"],
                    [(k, f"{v / 60:.0f}") for k, v in sorted(per.items(), key=lambda kv: -kv[1])],
                )
            )
        tops = batch.top_changes(result)[:5]
        if tops:
            console.print(
                table(
                    "top changes by attributed downtime",
                    ["change", "title", "class", "incidents", "downtime"],
                    [
                        (
                            t["change_id"],
                            t["title"],
                            t["category"],
                            t["incidents"],
                            _duration(t["downtime_s"]),
                        )
                        for t in tops
                    ],
                )
            )
        console.print(f"wrote {', '.join(p.name for p in written)} in {Path(out).resolve()}")

    emit(data, as_json=as_json, render=render)


# -- report.html ---------------------------------------------------------------------------------


def _week(ts: datetime, tz: str) -> str:
    iso = ts.astimezone(zone(tz)).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def report_html(result: batch.BatchResult) -> str:
    """One self-contained page: incidents over the range, outage minutes per week and cause
    class, least available services; plotly.js inlined from the installed package."""
    import pandas as pd
    from plotly.offline import get_plotlyjs

    from whatchanged.dashboards import figures
    from whatchanged.engine import batch

    tz = result.tz
    p = result.params
    top = {i.incident_id: result.top_cause(i.incident_id) for i in result.incidents}
    timeline = figures.weekly_incidents_figure(result.incidents, week=(p.start, p.end), top_causes=top, tz=tz)
    weeks = sorted({_week(p.start, tz), _week(p.end, tz)})
    rows = [
        (_week(i.onset, tz), c.category if (c := top[i.incident_id]) else "unknown", i.downtime_s)
        for i in result.incidents
    ]
    frame = pd.DataFrame(rows, columns=["week", "category", "downtime_s"])
    current = max([*weeks, *frame["week"]]) if len(frame) else weeks[-1]
    attribution = figures.attribution_figure(frame, current=current, weeks=weeks)
    worst = sorted(result.availability, key=lambda a: (a.availability, a.selection))[:MAX_SERVICES]
    avail = figures.availability_figure(
        pd.DataFrame(
            [(a.selection.removeprefix("service="), a.downtime_s, a.availability) for a in worst],
            columns=["group", "downtime_s", "availability"],
        )
    )
    title = f"whatchanged batch: {fmt_local(p.start, tz, with_date=True)} → {fmt_local(p.end, tz, with_date=True)} ({tz})"
    per = batch.attribution(result)
    summary_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v / 60:.0f}</td></tr>"
        for k, v in sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    change_rows = "".join(
        f"<tr><td>{html.escape(str(t['change_id']))}</td><td>{html.escape(str(t['title']))}</td>"
        f"<td>{html.escape(str(t['category']))}</td><td>{t['incidents']}</td><td>{t['downtime_s'] / 60:.0f}</td></tr>"
        for t in batch.top_changes(result)[:20]
    )
    parts: list[Any] = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(result.incidents)} incidents, {sum(i.downtime_s for i in result.incidents) / 60:.0f} outage "
        f"minutes, {result.anomalies} anomalies, {result.outages} outages.</p>",
        "<h2>Outage minutes per cause class</h2>",
        f"<table><tr><th>class</th><th>minutes</th></tr>{summary_rows}</table>",
        "<h2>Top changes by attributed downtime</h2>",
        "<table><tr><th>change</th><th>title</th><th>class</th><th>incidents</th><th>minutes</th></tr>"
        f"{change_rows}</table>",
        "<h2>Incidents</h2>",
        figures.figure_html(timeline, "batch-incidents"),
        "<h2>Outage minutes per week and cause class</h2>",
        figures.figure_html(attribution, "batch-attribution"),
        f"<h2>Least available services (up to {MAX_SERVICES})</h2>",
        figures.figure_html(avail, "batch-availability"),
        "</body></html>",
    ]
    return "\n".join(parts)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("batch")(cmd_batch)
