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
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from whatchanged.engine.model import Anomaly, Cause, Change, Incident, Outage

#: The cause classes the ranker uses, plus ``reaction`` (restarts: what people did).
CAUSE_CLASSES = ("hosting", "application_release", "external_maintenance", "unknown")
CLASS_COLORS = {
    "hosting": "#d62728",
    "application_release": "#1f77b4",
    "external_maintenance": "#9467bd",
    "unknown": "#7f7f7f",
    "reaction": "#b0b0b0",
}
#: Change kind → the class its colour and lane follow.
KIND_CLASS = {
    "deploy": "application_release",
    "config": "application_release",
    "maintenance": "external_maintenance",
    "provider_incident": "external_maintenance",
    "infra_alert": "hosting",
    "restart": "reaction",
}
LANE_ORDER = ("external_maintenance", "application_release", "hosting", "unknown", "reaction")
STATE_COLORS = {
    "OK": "#2ca02c",
    "UP": "#2ca02c",
    "WARNING": "#ff7f0e",
    "CRITICAL": "#d62728",
    "DOWN": "#d62728",
    "UNKNOWN": "#9e9e9e",
}
TOP_CAUSE = "top cause"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class Signal:
    """One metric series to draw: samples, an optional baseline band, its anomalies."""

    service: str
    metric: str
    series: pd.DataFrame  # ts (aware), value
    band: pd.DataFrame | None = None  # ts (aware), expected, lower, upper
    anomalies: tuple[Anomaly, ...] = ()
    #: how many other services' series of this metric moved too (not drawn)
    others: int = 0

    @property
    def label(self) -> str:
        return f"{self.metric} · {self.service}"

    @property
    def title(self) -> str:
        more = f" (and {self.others} more services)" if self.others else ""
        return f"{self.label}{more}"


# -- small helpers ----------------------------------------------------------------
def change_class(kind: str) -> str:
    """The class whose colour and lane a change of ``kind`` uses."""
    return KIND_CLASS.get(kind, "unknown")


def local(ts: datetime, tz: str) -> datetime:
    """An aware datetime as naive wall-clock time in ``tz`` (what the x axes show)."""
    return ts.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def local_series(values: pd.Series, tz: str) -> pd.Series:
    s = pd.to_datetime(values, utc=True)
    return s.dt.tz_convert(tz).dt.tz_localize(None)


def _hhmm(ts: datetime | None, tz: str) -> str:
    return local(ts, tz).strftime("%Y-%m-%d %H:%M") if ts is not None else "open"


def scope_text(change: Change) -> str:
    parts = [f"{k}={', '.join(v)}" for k, v in change.scope.items() if v]
    text = "; ".join(parts) or "no scope"
    return text if len(text) <= 160 else text[:157] + "…"


def change_hover(change: Change, tz: str) -> str:
    """Hover text of a change: id, title, kind and time, scope."""
    when = _hhmm(change.start, tz)
    if change.end is not None:
        when += f" → {_hhmm(change.end, tz)}"
    title = change.title or "(no title)"
    return f"<b>{change.change_id}</b><br>{title}<br>{change.kind} · {when}<br>scope: {scope_text(change)}"


def _base_layout(fig: go.Figure, *, height: int, title: str | None = None) -> None:
    fig.update_layout(
        template="none",
        height=height,
        title={"text": title, "x": 0.01} if title else None,
        font={"family": FONT, "size": 12, "color": "#222"},
        margin={"l": 60, "r": 30, "t": 50 if title else 30, "b": 40},
        hovermode="closest",
        hoverlabel={"align": "left"},
        legend={"orientation": "h", "y": -0.06, "x": 0, "yanchor": "top"},
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", linecolor="#ccc", automargin=True)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", linecolor="#ccc", automargin=True)
    # subplot titles to the left, clear of the onset label and of the data
    fig.for_each_annotation(
        lambda a: (
            a.update(x=0, xanchor="left", font={"size": 12, "color": "#444"})
            if a.name is None and a.xref == "paper"
            else None
        )
    )


#: Width of one tick-label character at the figures' 12 px font, rounded up (DejaVu Sans, the
#: widest of the fonts :data:`FONT` falls back to on a Linux desktop); used to size the left margin.
CHAR_PX = 7.5


def _fixed_left_margin(fig: go.Figure) -> None:
    """Size the left margin for the longest y tick label and turn the axes' automargin off.

    With ``automargin`` plotly.js draws the figure, measures the labels and draws it
    again, once per pass: on the incident timeline (five rows) that is about a third of
    ``Plotly.newPlot``.  The lane labels are known here (categories: change classes,
    probe and check lanes, topology groups); numeric ticks fit in the 60 px default.
    """
    longest = 0
    for trace in fig.data:
        values = getattr(trace, "y", None)
        if values is None or len(values) == 0:
            continue
        labels = {str(v) for v in values if isinstance(v, str)}
        if labels:
            longest = max(longest, *(len(v) for v in labels))
    left = max(60, int(longest * CHAR_PX) + 20)
    fig.update_layout(margin={"l": left})
    fig.update_xaxes(automargin=False)
    fig.update_yaxes(automargin=False)


def _axis(name: str, row: int) -> str:
    """Axis reference of subplot ``row`` (``x``, ``x2`` …) for shapes."""
    return name if row == 1 else f"{name}{row}"


# -- pieces shared by the incident and service figures ---------------------------------
def _add_signal(fig: go.Figure, signal: Signal, row: int, tz: str) -> None:
    if signal.band is not None and not signal.band.empty:
        bx = local_series(signal.band["ts"], tz)
        fig.add_trace(
            go.Scatter(
                x=bx,
                y=signal.band["lower"],
                name=f"{signal.metric} band",
                mode="lines",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=f"band-{row}",
            ),
            row=row,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=bx,
                y=signal.band["upper"],
                name=f"{signal.metric} band",
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(120,120,120,0.18)",
                customdata=signal.band["expected"],
                hovertemplate="expected %{customdata:.1f}<extra>baseline band</extra>",
                showlegend=row == 1,
                legendgroup=f"band-{row}",
            ),
            row=row,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=local_series(signal.series["ts"], tz),
            y=signal.series["value"],
            name=signal.label,
            mode="lines",
            line={"width": 1.5, "color": "#1f3b73"},
            hovertemplate="%{y:.1f}<extra>" + signal.label + "</extra>",
        ),
        row=row,
        col=1,
    )
    for a in signal.anomalies:
        x1 = a.end if a.end is not None else a.onset
        fig.add_shape(
            type="rect",
            xref=_axis("x", row),
            yref=f"{_axis('y', row)} domain",
            x0=local(a.onset, tz),
            x1=local(x1, tz),
            y0=0,
            y1=1,
            fillcolor="rgba(214,39,40,0.10)",
            line={"width": 0},
            layer="below",
            name=f"anomaly {a.service} {a.metric}",
        )
    fig.update_yaxes(rangemode="tozero", row=row, col=1)


def _add_changes(
    fig: go.Figure,
    changes: Sequence[Change],
    row: int,
    tz: str,
    *,
    top: Cause | None = None,
    windows_span_figure: bool = True,
) -> None:
    """Markers per change class on a lane row, shaded windows, the top cause highlighted."""
    by_class: dict[str, list[Change]] = {}
    for c in changes:
        by_class.setdefault(change_class(c.kind), []).append(c)
    lanes = [k for k in LANE_ORDER if k in by_class or (top is not None and top.category == k)]
    for klass in LANE_ORDER:
        group = by_class.get(klass)
        if not group:
            continue
        fig.add_trace(
            go.Scatter(
                x=[local(c.start, tz) for c in group],
                y=[klass] * len(group),
                name=klass,
                mode="markers",
                marker={
                    "color": CLASS_COLORS[klass],
                    "size": 11,
                    "symbol": ["triangle-right" if c.end is not None else "diamond" for c in group],
                    "line": {"width": 1, "color": "white"},
                },
                customdata=[c.change_id for c in group],
                hovertext=[change_hover(c, tz) for c in group],
                hoverinfo="text",
            ),
            row=row,
            col=1,
        )
        for c in group:
            if c.end is None:
                continue
            is_top = top is not None and top.change_id == c.change_id
            fig.add_shape(
                type="rect",
                xref="x",
                yref="paper" if windows_span_figure else f"{_axis('y', row)} domain",
                x0=local(c.start, tz),
                x1=local(c.end, tz),
                y0=0,
                y1=1,
                fillcolor=CLASS_COLORS[klass],
                opacity=0.16 if is_top else 0.07,
                line={"width": 2 if is_top else 0, "color": CLASS_COLORS[klass]},
                layer="below",
                name=f"window {c.change_id}",
            )
    if top is not None and top.category in CLASS_COLORS:
        x = top.start
        if x is not None:
            fig.add_trace(
                go.Scatter(
                    x=[local(x, tz)],
                    y=[top.category],
                    name=TOP_CAUSE,
                    mode="markers",
                    marker={
                        "symbol": "star",
                        "size": 22,
                        "color": "#ffd700",
                        "line": {"width": 2, "color": CLASS_COLORS[top.category]},
                    },
                    customdata=[top.change_id or top.component or ""],
                    hovertext=[
                        f"<b>top cause: {top.change_id or top.component or top.category}</b><br>"
                        f"{top.title}<br>{top.category} · score {top.score:.2f}"
                    ],
                    hoverinfo="text",
                ),
                row=row,
                col=1,
            )
    fig.update_yaxes(
        type="category",
        categoryorder="array",
        categoryarray=list(reversed(lanes)),
        showgrid=False,
        row=row,
        col=1,
    )


def _duration_ms(start: datetime, end: datetime | None, fallback: datetime) -> float:
    return ((end or fallback) - start).total_seconds() * 1000.0


def _merge(intervals: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _add_outages(fig: go.Figure, outages: Sequence[Outage], row: int, tz: str, window_end: datetime) -> None:
    """External probe outages one lane per probe; internal checks merged into one lane."""
    external = [o for o in outages if o.external]
    internal = [o for o in outages if not o.external]
    if external:
        lanes = [f"{o.service} · {o.check}" for o in external]
        fig.add_trace(
            go.Bar(
                orientation="h",
                base=[local(o.start, tz) for o in external],
                x=[_duration_ms(o.start, o.end, window_end) for o in external],
                y=lanes,
                name="probe outages",
                marker={"color": "#d62728"},
                hovertext=[
                    f"<b>{lane}</b><br>down {_hhmm(o.start, tz)} → {_hhmm(o.end, tz)}"
                    f" ({o.downtime_s / 60:.0f} min)"
                    for lane, o in zip(lanes, external, strict=True)
                ],
                hoverinfo="text",
            ),
            row=row,
            col=1,
        )
    if internal:
        merged = _merge([(o.start, o.end or window_end) for o in internal])
        services = len({o.service for o in internal})
        fig.add_trace(
            go.Bar(
                orientation="h",
                base=[local(s, tz) for s, _ in merged],
                x=[(e - s).total_seconds() * 1000.0 for s, e in merged],
                y=[f"checks CRITICAL ({services} services)"] * len(merged),
                name="check outages",
                marker={"color": "#ff9896"},
                hovertext=[
                    f"any check CRITICAL {_hhmm(s, tz)} → {_hhmm(e, tz)} ({(e - s).total_seconds() / 60:.0f} min)"
                    for s, e in merged
                ],
                hoverinfo="text",
            ),
            row=row,
            col=1,
        )
    fig.update_yaxes(type="category", showgrid=False, row=row, col=1)


def fold_groups(critical: pd.DataFrame, max_groups: int) -> pd.DataFrame:
    """Keep the ``max_groups - 1`` groups with the most CRITICAL service-minutes; sum the rest."""
    groups = critical.groupby("group")["critical"].sum().sort_values(ascending=False, kind="stable")
    if len(groups) <= max_groups:
        return critical
    keep = set(groups.index[: max_groups - 1])
    rest = critical[~critical["group"].isin(keep)]
    other = rest.groupby("ts", as_index=False)[["critical", "total"]].sum()
    other["group"] = f"other ({len(groups) - len(keep)} groups)"
    return pd.concat([critical[critical["group"].isin(keep)], other], ignore_index=True)


def _add_heat(fig: go.Figure, critical: pd.DataFrame, row: int, tz: str, max_groups: int) -> int:
    """Heat strip of CRITICAL services per topology group; returns how many groups it shows."""
    data = fold_groups(critical, max_groups)
    z = data.pivot_table(index="group", columns="ts", values="critical", aggfunc="sum", fill_value=0)
    totals = data.groupby("group")["total"].max().reindex(z.index)
    order = z.sum(axis=1).sort_values(kind="stable").index  # most affected on top
    z = z.loc[order]
    totals = totals.loc[order]
    x = local_series(pd.Series(z.columns), tz)
    span = fig.layout[_axis("yaxis", row)].domain or (0.0, 1.0)
    custom = [[int(t)] * z.shape[1] for t in totals]
    fig.add_trace(
        go.Heatmap(
            x=x,
            y=list(z.index),
            z=z.to_numpy(),
            name="CRITICAL services",
            colorscale=[[0.0, "#ffffff"], [0.02, "#fde0dd"], [1.0, "#a50f15"]],
            zmin=0,
            zmax=max(1, int(z.to_numpy().max()) if z.size else 1),
            customdata=custom,
            hovertemplate="%{y}<br>%{x|%H:%M}: %{z} of %{customdata} services CRITICAL<extra></extra>",
            colorbar={
                "title": {"text": "CRIT"},
                "len": span[1] - span[0],
                "y": span[1],
                "yanchor": "top",
                "thickness": 10,
            },
            xgap=0,
            ygap=1,
        ),
        row=row,
        col=1,
    )
    fig.update_yaxes(showgrid=False, title_text="", row=row, col=1)
    return len(order)


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
    start, end = window
    heat = critical is not None and not critical.empty
    titles = [s.title for s in signals] + ["outages"]
    heights = [3.0] * len(signals) + [1.0]
    if heat:
        titles.append("CRITICAL services by datacenter / switch")
        n_groups = min(max_groups, critical["group"].nunique()) if critical is not None else 0
        heights.append(max(1.5, 0.25 * n_groups))
    titles.append("changes (stars: top cause)")
    heights.append(1.8)
    rows = len(titles)
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.045 if rows > 3 else 0.08,
        row_heights=heights,
        subplot_titles=titles,
    )
    for i, signal in enumerate(signals, start=1):
        _add_signal(fig, signal, i, tz)
    row = len(signals) + 1
    _add_outages(fig, outages, row, tz, end)
    if heat and critical is not None:
        row += 1
        _add_heat(fig, critical, row, tz, max_groups)
    row += 1
    top = causes[0] if causes else None
    _add_changes(fig, changes, row, tz, top=top)
    if incident is not None:
        _mark_incident(fig, incident, tz)
    height = int(sum(heights) * 70 + 160)
    _base_layout(fig, height=max(height, 480))
    fig.update_layout(margin={"t": 50})
    _fixed_left_margin(fig)
    fig.update_xaxes(range=[local(start, tz), local(end, tz)], type="date")
    fig.update_xaxes(showticklabels=True, row=rows, col=1)
    fig.update_layout(barmode="overlay")
    return fig


def _mark_incident(fig: go.Figure, incident: Incident, tz: str) -> None:
    fig.add_shape(
        type="line",
        xref="x",
        yref="paper",
        x0=local(incident.onset, tz),
        x1=local(incident.onset, tz),
        y0=0,
        y1=1,
        line={"color": "#222", "width": 1.5, "dash": "dash"},
        name="onset",
    )
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
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=local(incident.end, tz),
            x1=local(incident.end, tz),
            y0=0,
            y1=1,
            line={"color": "#222", "width": 1, "dash": "dot"},
            name="end",
        )


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
    start, end = window
    has_checks = checks is not None and not checks.empty
    titles = [s.title for s in signals]
    heights = [3.0] * len(signals)
    if has_checks and checks is not None:
        titles.append("checks")
        heights.append(max(1.0, 0.4 * checks["check"].nunique()))
    titles.append("changes whose scope includes it")
    heights.append(1.5)
    rows = len(titles)
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05 if rows > 2 else 0.1,
        row_heights=heights,
        subplot_titles=titles,
    )
    for i, signal in enumerate(signals, start=1):
        _add_signal(fig, signal, i, tz)
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
    _base_layout(fig, height=max(420, int(sum(heights) * 70 + 140)))
    _fixed_left_margin(fig)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(range=[local(start, tz), local(end, tz)], type="date")
    fig.update_xaxes(showticklabels=True, row=rows, col=1)
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
