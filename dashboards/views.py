"""What each page shows, gathered from the engine: one function per page, no HTML.

Each ``*_view`` takes an open DuckDB connection and the settings, calls the
engine (incidents, explain, changes, availability, series) and returns a
frozen view object holding the figure(s) and the engine results the page
prints.  :mod:`whatchanged.dashboards.pages` turns these into HTML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
import plotly.graph_objects as go

from whatchanged.dashboards import figures
from whatchanged.engine import series
from whatchanged.engine.availability import availability
from whatchanged.engine.batch import changes_by_downtime
from whatchanged.engine.catalog import inventory_values
from whatchanged.engine.changes import aliases_for, list_changes
from whatchanged.engine.errors import ConfigError, NotFoundError
from whatchanged.engine.explain import explain_incident
from whatchanged.engine.incidents import find_incidents
from whatchanged.engine.model import Anomaly, Cause, Change, Explanation, Incident
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.timeparse import zone
from whatchanged.engine.timerange import EARLIEST, LATEST

T = TypeVar("T")

#: Time shown before an onset and after an end on the incident page.
BEFORE = timedelta(hours=2)
AFTER = timedelta(hours=1)
#: A top cause starting up to this long before the onset widens the window to show it.
CAUSE_REACH = timedelta(hours=12)
#: At most this many moved signals drawn on the incident page.
MAX_SIGNALS = 3
#: At most this many metrics drawn on the service page.
MAX_SERVICE_METRICS = 6
#: Weeks before the current one in the attribution chart.
PREVIOUS_WEEKS = 4
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


# -- incident -------------------------------------------------------------------------
@dataclass(frozen=True)
class IncidentView:
    explanation: Explanation
    window: tuple[datetime, datetime]
    changes: tuple[Change, ...]
    signals: tuple[figures.Signal, ...]
    figure: go.Figure


def incident_window(
    at: datetime, incident: Incident | None, causes: Sequence[Cause]
) -> tuple[datetime, datetime]:
    """From well before the onset (and the top cause's start, if near) to after the end."""
    onset = incident.onset if incident is not None else at
    last = incident.end if incident is not None and incident.end is not None else onset
    start = onset - BEFORE
    top = causes[0] if causes else None
    if top is not None and top.start is not None and onset - CAUSE_REACH <= top.start < start:
        start = top.start - timedelta(minutes=30)
    return start, last + AFTER


def moved_signals(
    con: Snapshot,
    anomalies: Sequence[Anomaly],
    window: tuple[datetime, datetime],
    *,
    order: Sequence[str] = (),
    limit: int = MAX_SIGNALS,
) -> list[figures.Signal]:
    """One series per metric that moved: the service where it moved most, with its baseline band.

    Metrics follow ``order`` (the incident's ``signals``), then the highest
    peak score; at most ``limit``.  Other services where the same metric
    moved are counted in ``Signal.others``, not drawn.
    """
    by_metric: dict[str, dict[str, list[Anomaly]]] = {}
    for a in anomalies:
        by_metric.setdefault(a.metric, {}).setdefault(a.service, []).append(a)

    def strength(found: list[Anomaly]) -> float:
        return float(max(abs(a.peak_score) for a in found))

    rank = {m: i for i, m in enumerate(order)}
    metrics = sorted(
        by_metric,
        key=lambda m: (rank.get(m, len(rank)), -max(strength(f) for f in by_metric[m].values()), m),
    )[:limit]
    start, end = window
    out = []
    for metric in metrics:
        services = by_metric[metric]
        svc = max(sorted(services), key=lambda s: strength(services[s]))
        out.append(
            figures.Signal(
                service=svc,
                metric=metric,
                series=series.metric_series(con, svc, metric, start, end),
                band=series.baseline_band(con, svc, metric, start, end),
                anomalies=tuple(services[svc]),
                others=len(services) - 1,
            )
        )
    return out


def _step_for(window: tuple[datetime, datetime]) -> int:
    span = (window[1] - window[0]).total_seconds()
    return 60 if span <= 8 * 3600 else 300 if span <= 3 * 86400 else 3600


def incident_view(con: Snapshot, explanation: Explanation, *, settings: Settings, tz: str) -> IncidentView:
    """The timeline of an explanation (with or without an incident)."""
    inc = explanation.incident
    window = incident_window(explanation.at, inc, explanation.causes)
    aliases = aliases_for(settings)
    changes = tuple(list_changes(con, start=window[0], end=window[1], aliases=aliases))
    anomalies = inc.anomalies if inc is not None else explanation.anomalies
    signals = tuple(moved_signals(con, anomalies, window, order=inc.signals if inc is not None else ()))
    critical = series.critical_by_group(con, *window, step_s=_step_for(window))
    fig = figures.incident_figure(
        window=window,
        signals=signals,
        outages=inc.outages if inc is not None else (),
        critical=critical,
        changes=changes,
        causes=explanation.causes,
        incident=inc,
        tz=tz,
    )
    return IncidentView(explanation, window, changes, signals, fig)


# -- weekly -----------------------------------------------------------------------------
def parse_week(text: str) -> tuple[int, int]:
    """``YYYY-Www`` (ISO week of 1970 to 2199: engine.timerange) → (year, week); a ConfigError
    names the bad value."""
    m = _WEEK.match(text.strip())
    if m:
        year, week = int(m.group(1)), int(m.group(2))
        if not EARLIEST.year <= year < LATEST.year:
            raise ConfigError(f"week: expected an ISO week of the years 1970 to 2199, found {text!r}")
        try:
            date.fromisocalendar(year, week, 1)
        except ValueError:
            pass
        else:
            return year, week
    raise ConfigError(f"week: expected an ISO week such as 2010-W46, found {text!r}")


def week_label(year: int, week: int) -> str:
    return f"{year}-W{week:02d}"


def week_of(ts: datetime, tz: str) -> str:
    iso = ts.astimezone(zone(tz)).isocalendar()
    return week_label(iso.year, iso.week)


def week_bounds(label: str, tz: str) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 in ``tz``, as UTC."""
    year, week = parse_week(label)
    monday = date.fromisocalendar(year, week, 1)
    local = zone(tz)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=local)
    nxt = monday + timedelta(days=7)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=local)
    return start.astimezone(UTC), end.astimezone(UTC)


def shift_week(label: str, weeks: int) -> str:
    year, week = parse_week(label)
    iso = (date.fromisocalendar(year, week, 1) + timedelta(weeks=weeks)).isocalendar()
    return week_label(iso.year, iso.week)


@dataclass(frozen=True)
class WeeklyView:
    week: str
    bounds: tuple[datetime, datetime]
    incidents: tuple[Incident, ...]
    top_causes: dict[str, Cause | None]
    attribution: pd.DataFrame  # week, category, downtime_s
    availability: pd.DataFrame  # group, downtime_s, availability
    top_changes: pd.DataFrame  # change_id, title, category, incidents, downtime_s
    incidents_figure: go.Figure
    attribution_figure: go.Figure
    availability_figure: go.Figure


def _top_causes(con: Snapshot, incidents: Sequence[Incident], settings: Settings) -> dict[str, Cause | None]:
    out: dict[str, Cause | None] = {}
    for inc in incidents:
        causes = explain_incident(con, inc, settings=settings).causes
        out[inc.incident_id] = causes[0] if causes else None
    return out


def availability_frame(
    con: Snapshot, start: datetime, end: datetime, *, column: str = "kind"
) -> pd.DataFrame:
    """Outage seconds and availability per value of an inventory column (``kind`` by default).

    One :func:`~whatchanged.engine.availability.availability` per group, as
    an external prober reports it (planned maintenance included); groups
    without any check state are left out.
    """
    if column not in ("kind", "app", "datacenter"):
        raise ConfigError(f"availability groups: expected kind, app or datacenter, found {column!r}")
    values = inventory_values(con, column)
    rows = []
    for value in values:
        try:
            got = availability(con, start, end, group=value)
        except NotFoundError:
            continue
        rows.append((value, got.downtime_s, got.availability))
    return pd.DataFrame(rows, columns=["group", "downtime_s", "availability"])


class Cache:
    """Results reused across pages while the data they come from is unchanged.

    ``memo`` has ``get(key, compute)`` (computes each key once, concurrent askers wait: the
    API's per-process memo); results are keyed by the data versions of ``db``
    (:meth:`Snapshot.data_version`: what detection reads; :attr:`Snapshot.version`: every
    commit).  Without a memo (the dashboards alone) everything is computed each time.
    """

    def __init__(self, memo: Any = None, db: Snapshot | None = None) -> None:
        self.memo = memo
        self.db = db

    def by_data(self, key: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
        """``compute()`` once per detection data version."""
        if self.memo is None or self.db is None:
            return compute()
        found: T = self.memo.get(("dashboards", self.db.data_version(), *key), compute)
        return found

    def by_commit(self, key: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
        """``compute()`` once per commit (for what depends on changes too)."""
        if self.memo is None or self.db is None:
            return compute()
        found: T = self.memo.get(("dashboards", self.db.version, *key), compute)
        return found


def weekly_view(
    con: Snapshot,
    week: str,
    *,
    settings: Settings,
    tz: str,
    group: str = "kind",
    cache: Cache | None = None,
) -> WeeklyView:
    """The week's incidents, downtime by cause class against previous weeks, availability.

    With a ``cache``, each week's incidents and the availability are computed once per
    detection data version, the top causes (which depend on the changes too) once per
    commit and incident; a commit of changes alone then costs only the ranking.
    """
    cache = cache or Cache()
    bounds = week_bounds(week, tz)

    def incidents_of(span: tuple[datetime, datetime]) -> tuple[Incident, ...]:
        return cache.by_data(("incidents", span), lambda: tuple(find_incidents(con, *span)))

    def top_of(found: Sequence[Incident]) -> dict[str, Cause | None]:
        return {
            inc.incident_id: cache.by_commit(
                ("top_cause", inc.incident_id, inc.onset, inc.end),
                lambda inc=inc: _top_causes(con, [inc], settings)[inc.incident_id],  # type: ignore[misc]
            )
            for inc in found
        }

    incidents = incidents_of(bounds)
    top = top_of(incidents)
    rows: list[tuple[str, str, float]] = []
    previous = [shift_week(week, -k) for k in range(PREVIOUS_WEEKS, 0, -1)]
    for label in previous:
        past = incidents_of(week_bounds(label, tz))
        for inc, cause in zip(past, top_of(past).values(), strict=True):
            rows.append((label, cause.category if cause else "unknown", inc.downtime_s))
    for inc in incidents:
        cause = top[inc.incident_id]
        rows.append((week, cause.category if cause else "unknown", inc.downtime_s))
    attribution = pd.DataFrame(rows, columns=["week", "category", "downtime_s"])
    avail = cache.by_data(
        ("availability", bounds, group), lambda: availability_frame(con, *bounds, column=group)
    )
    ranked = changes_by_downtime((inc, top[inc.incident_id]) for inc in incidents)
    top_changes = pd.DataFrame(
        ranked,
        columns=["change_id", "title", "category", "incidents", "downtime_s"],
    )
    return WeeklyView(
        week=week,
        bounds=bounds,
        incidents=incidents,
        top_causes=top,
        attribution=attribution,
        availability=avail,
        top_changes=top_changes,
        incidents_figure=figures.weekly_incidents_figure(incidents, week=bounds, top_causes=top, tz=tz),
        attribution_figure=figures.attribution_figure(attribution, current=week, weeks=previous),
        availability_figure=figures.availability_figure(avail),
    )


# -- service -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceView:
    info: series.ServiceInfo
    window: tuple[datetime, datetime]
    metrics: tuple[str, ...]
    signals: tuple[figures.Signal, ...]
    anomalies: tuple[Anomaly, ...]
    checks: pd.DataFrame
    changes: tuple[Change, ...]
    figure: go.Figure


def service_window(
    con: Snapshot, service: str, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """The asked window, or the last 24 h of the service's data."""
    if start is not None and end is not None:
        return start, end
    seen = series.service_range(con, service)
    last = end or (seen[1] if seen else datetime.now(UTC))
    return (start or last - timedelta(hours=24)), last + timedelta(minutes=1)


def service_view(
    con: Snapshot,
    service: str,
    *,
    settings: Settings,
    tz: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ServiceView:
    """One service's metrics with baselines and anomalies, its checks, the changes touching it."""
    info = series.service_info(con, service)
    window = service_window(con, service, start, end)
    names = series.service_metrics(con, service)
    anomalies: list[Anomaly] = []
    for inc in find_incidents(con, *window):
        anomalies.extend(a for a in inc.anomalies if a.service == service)
    signals = tuple(
        figures.Signal(
            service=service,
            metric=m,
            series=series.metric_series(con, service, m, *window),
            band=series.baseline_band(con, service, m, *window),
            anomalies=tuple(a for a in anomalies if a.metric == m),
        )
        for m in names[:MAX_SERVICE_METRICS]
    )
    checks = series.check_intervals(con, *window, service=service)
    aliases = aliases_for(settings)
    in_range = list_changes(con, start=window[0], end=window[1], aliases=aliases)
    changes = tuple(series.changes_touching(in_range, info))
    fig = figures.service_figure(window=window, signals=signals, checks=checks, changes=changes, tz=tz)
    return ServiceView(info, window, tuple(names), signals, tuple(anomalies), checks, changes, fig)
