"""The pieces the dashboard figures are drawn from: colours and lanes per cause class, the shared
layout, and the traces of one metric, the changes, the outages and the heat map of critical
services (the incident and service figures of :mod:`whatchanged.dashboards.figures` stack them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import plotly.graph_objects as go

from whatchanged.engine.model import CAUSE_CATEGORIES, Anomaly, Cause, Change, Outage
from whatchanged.engine.timeparse import fmt_local, zone

#: The cause classes the ranker uses, plus ``reaction`` (restarts: what people did).
CAUSE_CLASSES = CAUSE_CATEGORIES  # the engine's one list, in its order


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


def change_class(kind: str) -> str:
    """The class whose colour and lane a change of ``kind`` uses."""
    return KIND_CLASS.get(kind, "unknown")


def local(ts: datetime, tz: str) -> datetime:
    """An aware datetime as naive wall-clock time in ``tz`` (what the x axes show)."""
    return ts.astimezone(zone(tz)).replace(tzinfo=None)


def local_series(values: pd.Series, tz: str) -> pd.Series:
    s = pd.to_datetime(values, utc=True)
    return s.dt.tz_convert(tz).dt.tz_localize(None)


def _hhmm(ts: datetime | None, tz: str) -> str:
    return fmt_local(ts, tz, with_date=True) if ts is not None else "open"


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
