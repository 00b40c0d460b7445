"""The dashboard pages: a FastAPI ``APIRouter`` mounted by the API app.

Routes (all ``GET``, HTML unless said)::

    /dashboards/                          index: incidents, weeks, services
    /dashboards/incidents/{incident_id}   incident timeline, ranked causes, ruled-out classes
    /dashboards/explain?at=…&tz=…         the same for "what changed at T?"
    /dashboards/weekly?week=YYYY-Www      weekly review (default: the week of the latest data)
    /dashboards/services/{service}        one service: metrics, baselines, anomalies, checks, changes
    /dashboards/services?service=…        redirect to the above (the index's form)
    /dashboards/static/plotly.min.js      plotly.js, partial bundle or the plotly package's (cached a year)

Every page accepts ``tz`` (IANA name; default the configured ``tz``).

Wiring: ``app.include_router(pages.router)`` and hand the pages a
:class:`~whatchanged.dashboards.wiring.Wiring` by overriding ``wiring.get_wiring``; they never
read the app's ``state``.  Each page is a ``build`` handed to
:func:`~whatchanged.dashboards.respond.respond` (the page cache, the error page).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, cast

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from whatchanged.dashboards import assets, html, views
from whatchanged.dashboards.figures import figure_block
from whatchanged.dashboards.respond import (
    PREFIX,
    TzQuery,
    incident_href,
    respond,
    root_of,
    service_links,
)
from whatchanged.dashboards.wiring import SettingsDep, Source, WiringDep
from whatchanged.engine import catalog, extent, series
from whatchanged.engine.explain import explain_at, explain_incident
from whatchanged.engine.incidents import find_incidents, get_incident
from whatchanged.engine.timeparse import fmt_local, incident_onset, parse_when
from whatchanged.engine.warehouse import latest_day

router = APIRouter(prefix=PREFIX, tags=["dashboards"], include_in_schema=False)

#: How far back the index lists incidents, from the latest data.
INDEX_SPAN = timedelta(days=28)


def _rows(frame: pd.DataFrame) -> Iterator[Any]:
    """Rows as named tuples, typed loosely (pandas-stubs types each cell as every scalar kind)."""
    return cast(Iterator[Any], frame.itertuples())


# -- routes --------------------------------------------------------------------------------
@router.get("/static/plotly.min.js", name="dashboards_plotly_js")
def plotly_js(request: Request) -> Response:
    """plotly.js (:mod:`whatchanged.dashboards.assets` chooses the bundle), gzipped when accepted.

    Page URLs carry ``?v=<digest of the bytes>``, so an upgrade or a switch of
    bundle changes the URL: the response is cacheable for a year, immutable,
    with a strong ETag (``If-None-Match`` gets a 304).
    """
    b = assets.bundle()
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "Vary": "Accept-Encoding",
        "ETag": b.etag,
        "X-Plotly-Bundle": f"{b.kind} {b.version}",
    }
    if b.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(assets.gzipped(b), media_type="text/javascript", headers=headers)
    return Response(b.path.read_bytes(), media_type="text/javascript", headers=headers)


@router.get("/", response_class=HTMLResponse, name="dashboards_index")
def index(request: Request, settings: SettingsDep, wiring: WiringDep, tz: TzQuery = None) -> HTMLResponse:
    root = root_of(request)

    def build(src: Source, tzname: str) -> str:
        con = src.con
        span = extent.data_range(con)
        if span is None:
            body: str = html.render(
                "index.html",
                home=html.esc(Path(settings.home).name),
                first="—",
                last="—",
                tz=html.esc(tzname),
                incidents='<p class="muted">The warehouse is empty: run whatchanged ingest.</p>',
                weeks="",
                service_options="",
                incident_services="",
                root=root,
            )
            return body
        first, last = span
        incidents = find_incidents(con, max(first, last - INDEX_SPAN), last + timedelta(minutes=1))
        rows = [
            (
                html.link(incident_href(root, i.incident_id, tzname), i.incident_id),
                html.when(i.onset, tzname),
                html.when(i.end, tzname),
                f'<span class="num">{i.outage_count}</span>',
                f"{i.downtime_s / 60:.0f} min",
                f"{len(i.critical_services)} / {len(i.services_affected)}",
            )
            for i in reversed(incidents)
        ]
        week_last = views.week_of(last, tzname)
        labels = [views.shift_week(week_last, -k) for k in range(views.PREVIOUS_WEEKS + 1)]
        weeks = (
            "<ul>"
            + "".join(f"<li>{html.link(f'{root}/weekly?week={w}&tz={tzname}', w)}</li>" for w in labels)
            + "</ul>"
        )
        names = catalog.service_names(con)
        affected = sorted({s for i in incidents for s in i.critical_services})
        return html.render(
            "index.html",
            home=html.esc(Path(settings.home).name),
            first=html.when(first, tzname),
            last=html.when(last, tzname),
            tz=html.esc(tzname),
            incidents=html.table(
                ("incident", "onset", "end", "outages", "downtime", "CRITICAL / affected"),
                rows,
                empty="No incident in the last four weeks of data.",
                cls="incidents",
            ),
            weeks=weeks,
            service_options="".join(f'<option value="{html.esc(n)}">' for n in names),
            incident_services=service_links(root, tuple(affected), limit=40),
            root=root,
        )

    return respond(request, wiring, tz, title="dashboards", build=build, figures=False)


def _incident_body(request: Request, view: views.IncidentView, tz: str) -> str:
    root = root_of(request)
    expl = view.explanation
    inc = expl.incident
    top = expl.causes[0] if expl.causes else None
    if inc is not None:
        heading = f"Incident {inc.incident_id}"
        sub = f"{fmt_local(inc.onset, tz, with_date=True)} → " + (
            fmt_local(inc.end, tz, with_date=True) if inc.end else "ongoing"
        )
        summary = [
            (f"{inc.outage_count}", "outages"),
            (f"{inc.downtime_s / 60:.0f} min", "downtime"),
            (f"{len(inc.critical_services)}", "services CRITICAL"),
            (f"{len(inc.services_affected)}", "services affected"),
            (", ".join(inc.signals) or "—", "signals that moved"),
        ]
        services_html = "<h3>CRITICAL</h3>" + service_links(root, inc.critical_services)
    else:
        heading = f"What changed at {fmt_local(expl.at, tz, with_date=True)}?"
        sub = "No incident or outage at that time; the timeline shows the two hours around it."
        summary = []
        services_html = '<p class="muted">none</p>'
    if top is not None:
        summary.insert(0, (html.esc(top.title), f"top cause ({top.category}, score {top.score:.2f})"))
    summary_html = "".join(f"<div><b>{html.esc(v)}</b>{html.esc(k)}</div>" for v, k in summary)
    reactions = html.changes_table(expl.reactions, tz, empty="No reaction recorded (restarts, rollbacks).")
    drafts = ""
    if inc is not None:
        from whatchanged.present.postmortem import languages

        drafts = (
            '<p class="postmortem-links">postmortem draft: '
            + " · ".join(
                html.link(f"{root}/incidents/{inc.incident_id}/postmortem?lang={lg}&tz={tz}", lg)
                for lg in languages()
            )
            + "</p>"
        )
    body: str = html.render(
        "incident.html",
        heading=html.esc(heading),
        subheading=html.esc(f"{sub} · times in {tz}"),
        postmortem=drafts,
        summary=summary_html,
        figure=figure_block(view.figure, "incident-timeline"),
        causes=html.causes_table(expl.causes, tz),
        ruled_out=html.ruled_out_list(expl.ruled_out),
        reactions=reactions,
        services=services_html,
    )
    return body


@router.get("/incidents/{incident_id}", response_class=HTMLResponse, name="dashboards_incident")
def incident_page(
    request: Request, incident_id: str, settings: SettingsDep, wiring: WiringDep, tz: TzQuery = None
) -> HTMLResponse:

    def build(src: Source, tzname: str) -> str:
        incident_onset(incident_id)  # an id naming no possible time is a NotFoundError (404 page)
        con = src.con
        incident = get_incident(con, incident_id)
        expl = explain_incident(con, incident, settings=settings)
        return _incident_body(request, views.incident_view(con, expl, settings=settings, tz=tzname), tzname)

    return respond(request, wiring, tz, title=f"incident {incident_id}", build=build)


@router.get("/explain", response_class=HTMLResponse, name="dashboards_explain")
def explain_page(
    request: Request,
    settings: SettingsDep,
    wiring: WiringDep,
    at: Annotated[str, Query(description="ISO 8601, 'YYYY-MM-DD HH:MM' or 'HH:MM' (latest day with data)")],
    tz: TzQuery = None,
) -> HTMLResponse:

    def build(src: Source, tzname: str) -> str:
        con = src.con
        when = parse_when(at, tz=tzname, default_day=latest_day(con, tzname), option="at")
        expl = explain_at(con, when, settings=settings)
        return _incident_body(request, views.incident_view(con, expl, settings=settings, tz=tzname), tzname)

    return respond(request, wiring, tz, title=f"what changed at {at}", build=build)


@router.get("/weekly", response_class=HTMLResponse, name="dashboards_weekly")
def weekly_page(
    request: Request,
    settings: SettingsDep,
    wiring: WiringDep,
    week: Annotated[
        str | None, Query(description="ISO week YYYY-Www; default the latest week with data")
    ] = None,
    tz: TzQuery = None,
) -> HTMLResponse:
    root = root_of(request)

    def build(src: Source, tzname: str) -> str:
        con = src.con
        label = week
        if label is None:
            span = extent.data_range(con)
            label = views.week_of(span[1] if span else datetime.now().astimezone(), tzname)
        v = views.weekly_view(con, label, settings=settings, tz=tzname, cache=src.cache)
        prev_w, next_w = views.shift_week(v.week, -1), views.shift_week(v.week, 1)
        downtime = sum(i.downtime_s for i in v.incidents)
        inc_rows = [
            (
                html.link(incident_href(root, i.incident_id, tzname), i.incident_id),
                html.when(i.onset, tzname),
                f"{i.downtime_s / 60:.0f} min",
                str(i.outage_count),
                html.chip(c.category) + " " + html.esc(c.title)
                if (c := v.top_causes[i.incident_id])
                else "—",
            )
            for i in v.incidents
        ]
        av_rows = [
            (html.esc(r.group), f"{r.downtime_s / 60:.0f} min", f"{r.availability * 100:.3f}%")
            for r in _rows(v.availability)
        ]
        ch_rows = [
            (
                f"<code>{html.esc(r.change_id)}</code>",
                html.chip(str(r.category)),
                html.esc(r.title),
                str(r.incidents),
                f"{r.downtime_s / 60:.0f} min",
            )
            for r in _rows(v.top_changes)
        ]
        start, end = v.bounds
        body: str = html.render(
            "weekly.html",
            week=html.esc(v.week),
            range=html.esc(
                f"{fmt_local(start, tzname, with_date=True)} → {fmt_local(end, tzname, with_date=True)} ({tzname})"
            ),
            prev=html.esc(prev_w),
            next=html.esc(next_w),
            prev_href=html.esc(f"{root}/weekly?week={prev_w}&tz={tzname}"),
            next_href=html.esc(f"{root}/weekly?week={next_w}&tz={tzname}"),
            summary=(
                f"<div><b>{len(v.incidents)}</b>incidents</div>"
                f"<div><b>{downtime / 60:.0f} min</b>outage minutes</div>"
            ),
            incidents_figure=figure_block(v.incidents_figure, "weekly-incidents"),
            incidents_table=html.table(
                ("incident", "onset", "downtime", "outages", "top cause"),
                inc_rows,
                empty="No incident this week.",
                cls="incidents",
            ),
            attribution_figure=figure_block(v.attribution_figure, "weekly-attribution"),
            availability_figure=figure_block(v.availability_figure, "weekly-availability"),
            availability_table=html.table(
                ("group", "outage", "availability"),
                av_rows,
                empty="No availability data.",
                cls="availability",
            ),
            changes_table=html.table(
                ("change", "class", "title", "incidents", "attributed downtime"),
                ch_rows,
                empty="No incident this week was attributed to a change.",
                cls="top-changes",
            ),
        )
        return body

    return respond(request, wiring, tz, title=f"weekly review {week or ''}".strip(), build=build)


@router.get("/services", name="dashboards_service_search")
def service_search(request: Request, service: str) -> RedirectResponse:
    return RedirectResponse(f"{root_of(request)}/services/{service}", status_code=303)


@router.get("/services/{service}", response_class=HTMLResponse, name="dashboards_service")
def service_page(
    request: Request,
    service: str,
    settings: SettingsDep,
    wiring: WiringDep,
    start: Annotated[
        str | None, Query(description="window start (default: 24 h before the last data)")
    ] = None,
    end: Annotated[str | None, Query(description="window end (default: the last data)")] = None,
    tz: TzQuery = None,
) -> HTMLResponse:

    def build(src: Source, tzname: str) -> str:
        con = src.con
        day = latest_day(con, tzname)
        t0 = parse_when(start, tz=tzname, default_day=day, option="start") if start else None
        t1 = parse_when(end, tz=tzname, default_day=day, option="end") if end else None
        v = views.service_view(con, service, settings=settings, tz=tzname, start=t0, end=t1)
        info = v.info
        where = (
            " · ".join(
                f"{k} {html.esc(val)}"
                for k, val in (
                    ("kind", info.kind),
                    ("datacenter", info.datacenter),
                    ("rack", info.rack),
                    ("switch", info.switch),
                    ("host", info.host),
                    ("app", info.app),
                )
                if val
            )
            or "not in the inventory"
        )
        an_rows = [
            (
                html.esc(a.metric),
                html.when(a.onset, tzname),
                html.when(a.end, tzname),
                html.esc(a.direction),
                f"{a.baseline:.1f} → {a.observed:.1f}",
                f"{a.peak_score:.1f}",
            )
            for a in v.anomalies
        ]
        bad = v.checks[v.checks["state"].isin(series.BAD_STATES)] if not v.checks.empty else v.checks
        ck_rows = [
            (
                html.esc(r.check),
                html.esc(r.state),
                html.esc(r.source),
                html.when(r.start.to_pydatetime(), tzname),
                html.when(None if pd.isna(r.end) else r.end.to_pydatetime(), tzname),
            )
            for r in _rows(bad)
        ]
        body: str = html.render(
            "service.html",
            service=html.esc(info.service),
            where=where,
            range=html.esc(
                f"{fmt_local(v.window[0], tzname, with_date=True)} → {fmt_local(v.window[1], tzname, with_date=True)}"
                f" ({tzname}) · metrics: {', '.join(v.metrics) or 'none'}"
            ),
            figure=figure_block(v.figure, "service-timeline"),
            anomalies=html.table(
                ("metric", "onset", "end", "direction", "baseline → observed", "peak score"),
                an_rows,
                empty="No anomaly in this window.",
            ),
            checks=html.table(
                ("check", "state", "source", "from", "to"), ck_rows, empty="No check was down in this window."
            ),
            changes=html.changes_table(
                v.changes, tzname, empty="No change in this window names this service."
            ),
        )
        return body

    return respond(request, wiring, tz, title=f"service {service}", build=build)
