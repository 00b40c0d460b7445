"""Plotly figures built from engine results; no I/O, no HTTP, testable without a browser.

Every builder takes engine objects (:mod:`whatchanged.engine.model`
dataclasses, pandas frames from :mod:`whatchanged.engine.series`) and a
display time zone, and returns a :class:`plotly.graph_objects.Figure`.
Times are drawn as naive wall-clock times in ``tz`` (plotly has no zones),
so a shape's ``x0``/``x1`` is the change window converted to ``tz``.

Colours follow the cause classes (:data:`CLASS_COLORS`); a change's class
comes from its kind (:data:`KIND_CLASS`).  Trace names are stable — the
tests and the pages rely on them:

* incident: ``<metric> · <service>``, ``<metric> band`` (lower and upper),
  ``probe outages``, ``check outages``, ``CRITICAL services``, one trace per
  change class present (``hosting``, ``application_release``,
  ``external_maintenance``, ``reaction``), ``top cause``;
* weekly: one trace per cause class;
* service: the metric traces as above, one ``check: <STATE>`` trace per
  state present, the change classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from whatchanged.dashboards.figure_parts import (
    CAUSE_CLASSES,
    CHAR_PX,
    CLASS_COLORS,
    FONT,
    KIND_CLASS,
    LANE_ORDER,
    STATE_COLORS,
    TOP_CAUSE,
    Signal,
    _add_changes,
    _add_heat,
    _add_outages,
    _add_signal,
    _base_layout,
    _duration_ms,
    _fixed_left_margin,
    _hhmm,
    change_class,
    change_hover,
    fold_groups,
    local,
    local_series,
    scope_text,
)
from whatchanged.engine.model import Cause, Change, Incident, Outage

# -- small helpers ----------------------------------------------------------------


# -- pieces shared by the incident and service figures ---------------------------------
#: a signal's lane height (relative to the other lanes)
SIGNAL_HEIGHT = 3.0


def _timeline(
    signals: Sequence[Signal], lanes: Sequence[tuple[str, float]], *, tz: str, spacing: float
) -> tuple[go.Figure, float]:
    """Lanes on one shared time axis, top to bottom: one per signal (drawn here: series,
    baseline band, anomalies), then ``lanes`` (title, height), which the caller draws in
    rows ``len(signals) + 1`` … ; ``spacing`` between lanes, in figure heights.  With the
    lanes' total height."""
    titles = [s.title for s in signals] + [title for title, _ in lanes]
    heights = [SIGNAL_HEIGHT] * len(signals) + [height for _, height in lanes]
    fig = make_subplots(
        rows=len(titles),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=spacing,
        row_heights=heights,
        subplot_titles=titles,
    )
    for i, signal in enumerate(signals, start=1):
        _add_signal(fig, signal, i, tz)
    return fig, sum(heights)


def _on_window(fig: go.Figure, window: tuple[datetime, datetime], tz: str, *, rows: int) -> None:
    """The shared time axis shows ``window``, with its tick labels under the last of ``rows``."""
    start, end = window
    _fixed_left_margin(fig)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(range=[local(start, tz), local(end, tz)], type="date")
    fig.update_xaxes(showticklabels=True, row=rows, col=1)


# -- the incident timeline ------------------------------------------------------------
def incident_figure(
    *,
    window: tuple[datetime, datetime],
    signals: Sequence[Signal] = (),
    outages: Sequence[Outage] = (),
    critical: pd.DataFrame | None = None,
    changes: Sequence[Change] = (),
    causes: Sequence[Cause] = (),
    incident: Incident | None = None,
    tz: str = "UTC",
    max_groups: int = 20,
) -> go.Figure:
    """The incident on one shared time axis, top to bottom:

    the signals that moved against their baseline band; the outages as a
    strip; the CRITICAL services per topology group as a heat strip; every
    change in range on lanes by class, with windows shaded across the whole
    figure and the top-ranked cause starred and outlined.
    """
    heat = critical is not None and not critical.empty
    lanes = [("outages", 1.0)]
    if heat:
        n_groups = min(max_groups, critical["group"].nunique()) if critical is not None else 0
        lanes.append(("CRITICAL services by datacenter / switch", max(1.5, 0.25 * n_groups)))
    lanes.append(("changes (stars: top cause)", 1.8))
    rows = len(signals) + len(lanes)
    fig, units = _timeline(signals, lanes, tz=tz, spacing=0.045 if rows > 3 else 0.08)
    row = len(signals) + 1
    _add_outages(fig, outages, row, tz, window[1])
    if heat and critical is not None:
        row += 1
        _add_heat(fig, critical, row, tz, max_groups)
    row += 1
    top = causes[0] if causes else None
    _add_changes(fig, changes, row, tz, top=top)
    if incident is not None:
        _mark_incident(fig, incident, tz)
    height = int(units * 70 + 160)
    _base_layout(fig, height=max(height, 480))
    fig.update_layout(margin={"t": 50})
    _on_window(fig, window, tz, rows=rows)
    return fig


def _across(fig: go.Figure, at: datetime, tz: str, *, width: float, dash: str, name: str) -> None:
    """A vertical line at ``at`` across every lane."""
    fig.add_shape(
        type="line",
        xref="x",
        yref="paper",
        x0=local(at, tz),
        x1=local(at, tz),
        y0=0,
        y1=1,
        line={"color": "#222", "width": width, "dash": dash},
        name=name,
    )


def _mark_incident(fig: go.Figure, incident: Incident, tz: str) -> None:
    _across(fig, incident.onset, tz, width=1.5, dash="dash", name="onset")
    fig.add_annotation(
        x=local(incident.onset, tz),
        y=1.0,
        xref="x",
        yref="paper",
        text=f"onset {local(incident.onset, tz):%H:%M}",
        showarrow=False,
        yanchor="bottom",
        yshift=16,
        font={"size": 11},
        name="onset",
    )
    if incident.end is not None:
        _across(fig, incident.end, tz, width=1, dash="dot", name="end")


# -- the service page ----------------------------------------------------------------
def service_figure(
    *,
    window: tuple[datetime, datetime],
    signals: Sequence[Signal],
    checks: pd.DataFrame | None = None,
    changes: Sequence[Change] = (),
    tz: str = "UTC",
) -> go.Figure:
    """One service: its metrics with baseline bands and anomalies, its checks, its changes."""
    has_checks = checks is not None and not checks.empty
    lanes = []
    if has_checks and checks is not None:
        lanes.append(("checks", max(1.0, 0.4 * checks["check"].nunique())))
    lanes.append(("changes whose scope includes it", 1.5))
    rows = len(signals) + len(lanes)
    fig, units = _timeline(signals, lanes, tz=tz, spacing=0.05 if rows > 2 else 0.1)
    row = len(signals)
    if has_checks and checks is not None:
        row += 1
        for state, part in checks.groupby("state", sort=True):
            color = STATE_COLORS.get(str(state), "#9e9e9e")
            starts = pd.to_datetime(part["start"], utc=True)
            ends = pd.to_datetime(part["end"], utc=True)
            fig.add_trace(
                go.Bar(
                    orientation="h",
                    base=local_series(starts, tz),
                    x=(ends - starts).dt.total_seconds() * 1000.0,
                    y=part["check"],
                    name=f"check: {state}",
                    marker={"color": color},
                    hovertext=[
                        f"<b>{c}</b> {state}<br>{_hhmm(s, tz)} → {_hhmm(e, tz)}"
                        for c, s, e in zip(part["check"], starts, ends, strict=True)
                    ],
                    hoverinfo="text",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(type="category", showgrid=False, row=row, col=1)
    row += 1
    _add_changes(fig, changes, row, tz)
    _base_layout(fig, height=max(420, int(units * 70 + 140)))
    _on_window(fig, window, tz, rows=rows)
    return fig


# -- the weekly review -----------------------------------------------------------------
def weekly_incidents_figure(
    incidents: Sequence[Incident],
    *,
    week: tuple[datetime, datetime],
    top_causes: Mapping[str, Cause | None],
    tz: str = "UTC",
) -> go.Figure:
    """The week's incidents as bars on a timeline, coloured by the class of their top cause."""
    start, end = week
    fig = go.Figure()
    rows: dict[str, list[tuple[Incident, Cause | None]]] = {}
    for inc in incidents:
        cause = top_causes.get(inc.incident_id)
        rows.setdefault(cause.category if cause else "unknown", []).append((inc, cause))
    min_ms = 20 * 60 * 1000.0  # short incidents stay visible at the scale of a week
    for klass in CAUSE_CLASSES:
        group = rows.get(klass)
        if not group:
            continue
        fig.add_trace(
            go.Bar(
                orientation="h",
                base=[local(i.onset, tz) for i, _ in group],
                x=[max(min_ms, _duration_ms(i.onset, i.end, i.onset)) for i, _ in group],
                y=[f"{local(i.onset, tz):%a %H:%M} · {i.incident_id}" for i, _ in group],
                name=klass,
                marker={"color": CLASS_COLORS[klass]},
                customdata=[i.incident_id for i, _ in group],
                hovertext=[
                    f"<b>{i.incident_id}</b><br>{_hhmm(i.onset, tz)} → {_hhmm(i.end, tz)}<br>"
                    f"{i.outage_count} outages, {i.downtime_s / 60:.0f} min down, "
                    f"{len(i.critical_services)} CRITICAL of {len(i.services_affected)} affected<br>"
                    f"cause: {c.title if c else 'unknown'}"
                    for i, c in group
                ],
                hoverinfo="text",
            )
        )
    _base_layout(fig, height=max(260, 60 + 32 * max(1, len(incidents))))
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(range=[local(start, tz), local(end, tz)], type="date")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def attribution_figure(frame: pd.DataFrame, *, current: str, weeks: Sequence[str] = ()) -> go.Figure:
    """Outage minutes per week stacked by cause class; ``current`` (``YYYY-Www``) outlined.

    ``frame`` has columns ``week, category, downtime_s``; ``weeks`` are the
    weeks to show even without incidents (0 minutes).  One bar trace per
    cause class, always all four.
    """
    weeks = sorted(set(frame["week"]) | {current} | set(weeks))
    fig = go.Figure()
    for klass in CAUSE_CLASSES:
        part = frame[frame["category"] == klass].groupby("week")["downtime_s"].sum()
        fig.add_trace(
            go.Bar(
                x=weeks,
                y=[float(part.get(w, 0.0)) / 60 for w in weeks],
                name=klass,
                marker={"color": CLASS_COLORS[klass]},
                hovertemplate="%{x}: %{y:.0f} min<extra>" + klass + "</extra>",
            )
        )
    fig.add_shape(
        type="rect",
        xref="x",
        yref="paper",
        x0=weeks.index(current) - 0.45,
        x1=weeks.index(current) + 0.45,
        y0=0,
        y1=1,
        line={"color": "#222", "width": 1.5, "dash": "dot"},
        fillcolor="rgba(0,0,0,0)",
        name=f"current {current}",
    )
    _base_layout(fig, height=320)
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=weeks)
    fig.update_yaxes(title_text="minutes", rangemode="tozero")
    return fig


def availability_figure(frame: pd.DataFrame) -> go.Figure:
    """Outage minutes per service group, labelled with the group's availability.

    ``frame`` has columns ``group, downtime_s, availability`` (a fraction in [0, 1]).
    """
    data = frame.sort_values("downtime_s", kind="stable")
    fig = go.Figure(
        go.Bar(
            orientation="h",
            y=data["group"].astype(str),
            x=data["downtime_s"] / 60,
            name="outage minutes",
            marker={"color": "#d62728"},
            text=[f"{a * 100:.3f}%" if pd.notna(a) else "" for a in data["availability"]],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.0f} min down, availability %{text}<extra></extra>",
        )
    )
    _base_layout(fig, height=max(220, 70 + 28 * len(data)))
    fig.update_layout(margin={"r": 80})
    fig.update_xaxes(title_text="minutes", rangemode="tozero")
    fig.update_yaxes(type="category")
    return fig


#: The figures' plotly.js config (mode bar without the logo, PNG download, resize with the window).
PLOT_CONFIG: dict[str, Any] = {
    "responsive": True,
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png"},
}


def figure_html(fig: go.Figure, div_id: str) -> str:
    """The figure as a ``<div>`` + script that draws it at once, plotly.js NOT included.

    For documents that load plotly.js before the figure (the batch report
    inlines it); the dashboard pages use :func:`figure_block`.

    When the plot is drawn the script records a ``performance.mark`` named
    ``plotted:<div_id>`` and counts it in ``window.__plotsDone``; the browser
    tests and the render benchmark wait on those.
    """
    post = "performance.mark('plotted:' + '{plot_id}');window.__plotsDone = (window.__plotsDone || 0) + 1;"
    config = dict(PLOT_CONFIG)
    html: str = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        config=config,
        post_script=post,
        default_height=f"{fig.layout.height or 450}px",
    )
    return html


def figure_block(fig: go.Figure, div_id: str) -> str:
    """The figure as an empty ``<div>`` and its JSON in a ``<script type="application/json">``.

    Nothing runs here: the page's loader (:data:`whatchanged.dashboards.html.PLOT_LOADER`)
    draws every block after the text is parsed and plotly.js (loaded ``defer``)
    has run, one figure per task, and records ``performance.mark('plotted:<div_id>')``
    and ``window.__plotsDone`` as each one is drawn.  The JSON writer escapes
    ``<``, ``>`` and ``/`` (``\\u003c`` …), so no data can close the script element.
    """
    from plotly.io.json import to_json_plotly

    spec = fig.to_dict()
    text = to_json_plotly(
        {"data": spec.get("data", []), "layout": spec.get("layout", {}), "config": PLOT_CONFIG}
    )
    height = int(fig.layout.height or 450)
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{height}px; width:100%;"></div>'
        f'<script type="application/json" class="plotly-figure" data-div="{div_id}">{text}</script>'
    )


#: this module's names, with those of the modules it was split into (one import for callers)
__all__ = [
    "CAUSE_CLASSES",
    "CHAR_PX",
    "CLASS_COLORS",
    "FONT",
    "KIND_CLASS",
    "LANE_ORDER",
    "PLOT_CONFIG",
    "STATE_COLORS",
    "TOP_CAUSE",
    "Signal",
    "attribution_figure",
    "availability_figure",
    "change_class",
    "change_hover",
    "figure_block",
    "figure_html",
    "fold_groups",
    "incident_figure",
    "local",
    "local_series",
    "scope_text",
    "service_figure",
    "weekly_incidents_figure",
]
