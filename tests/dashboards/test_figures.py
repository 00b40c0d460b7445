"""Figure builders on hand-built engine objects: the right traces, shapes where the data says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from whatchanged.dashboards import figures as F
from whatchanged.engine.model import Anomaly, Cause, Change, Incident, Outage

TZ = "Europe/Paris"
ONSET = datetime(2010, 11, 17, 18, 23, tzinfo=UTC)  # 19:23 Paris
END = datetime(2010, 11, 17, 19, 46, tzinfo=UTC)
WINDOW = (ONSET - timedelta(hours=2), END + timedelta(hours=1))
MAINT = Change(
    "OVH-P19-SW",
    "maintenance",
    datetime(2010, 11, 17, 18, 0, tzinfo=UTC),
    datetime(2010, 11, 17, 20, 0, tzinfo=UTC),
    title="Maintenance switches P19",
    scope={"datacenters": ("P19",), "switches": ("sw-p19-a", "sw-p19-b")},
)
DEPLOY = Change(
    "deploy-site-2",
    "deploy",
    datetime(2010, 11, 17, 16, 50, tzinfo=UTC),
    None,
    title="sites renderer 2.8.2",
    scope={"apps": ("sites",)},
)
PROVIDER = Change(
    "PROV-1", "provider_incident", ONSET + timedelta(minutes=5), ONSET + timedelta(minutes=35), title="x"
)
RESTARTS = tuple(
    Change(f"restart-{i:02d}", "restart", ONSET + timedelta(minutes=12 + 5 * i), None, title=f"restart {i}")
    for i in range(1, 15)
)
ALERT = Change("alert-bo", "infra_alert", ONSET - timedelta(minutes=40), None, title="bo down")
TOP = Cause(
    rank=1,
    category="external_maintenance",
    change_id="OVH-P19-SW",
    component=None,
    title="Maintenance switches P19",
    start=MAINT.start,
    end=MAINT.end,
    score=0.91,
    evidence_for=("window covers the onset",),
)
SECOND = Cause(
    2, "application_release", "deploy-site-2", None, "sites renderer 2.8.2", DEPLOY.start, None, 0.12
)


def local(ts: datetime) -> datetime:
    return F.local(ts, TZ)


def _series(values: list[float], start: datetime, step: timedelta) -> pd.DataFrame:
    return pd.DataFrame({"ts": [start + i * step for i in range(len(values))], "value": values})


def _signal() -> F.Signal:
    n = 60
    s = _series([200.0] * 20 + [50.0] * 40, WINDOW[0], timedelta(minutes=5))
    band = pd.DataFrame(
        {"ts": s["ts"], "expected": [200.0] * n, "lower": [180.0] * n, "upper": [220.0] * n}
    ).iloc[: len(s)]
    anomaly = Anomaly("lb-p19-1", "bandwidth_mbps", ONSET, ONSET, END, "down", -12.0, 200.0, 50.0)
    return F.Signal("lb-p19-1", "bandwidth_mbps", s, band, (anomaly,))


def _critical(groups: int = 6) -> pd.DataFrame:
    steps = pd.date_range(WINDOW[0], WINDOW[1], freq="5min")
    rows = []
    for g in range(groups):
        for t in steps:
            hit = g < 2 and ONSET <= t.to_pydatetime() < END
            rows.append((t, f"P19 / sw-{g:02d}", 15 if hit else 0, 167))
    return pd.DataFrame(rows, columns=["ts", "group", "critical", "total"])


def _outages() -> tuple[Outage, ...]:
    probe = tuple(
        Outage(
            "www-public",
            "pingdom:home",
            ONSET + timedelta(minutes=6 * i),
            ONSET + timedelta(minutes=6 * i + 4),
            "down",
            "pingdom",
            True,
        )
        for i in range(14)
    )
    checks = (
        Outage("site-0001", "http", ONSET, END, "CRITICAL", "nagios", False),
        Outage(
            "site-0002",
            "http",
            ONSET + timedelta(minutes=10),
            END + timedelta(minutes=5),
            "CRITICAL",
            "nagios",
            False,
        ),
    )
    return probe + checks


def _incident() -> Incident:
    return Incident(
        incident_id="inc-20101117-1923",
        onset=ONSET,
        end=END,
        services_affected=("site-0001", "site-0002", "www-public"),
        critical_services=("site-0001", "site-0002"),
        outage_count=14,
        downtime_s=54 * 60.0,
        outages=_outages(),
        signals=("bandwidth_mbps",),
    )


@pytest.fixture
def incident_fig():
    return F.incident_figure(
        window=WINDOW,
        signals=[_signal()],
        outages=_outages(),
        critical=_critical(),
        changes=[MAINT, DEPLOY, PROVIDER, ALERT, *RESTARTS],
        causes=[TOP, SECOND],
        incident=_incident(),
        tz=TZ,
    )


def _trace(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, f"expected one trace named {name!r}, found {[t.name for t in fig.data]}"
    return found[0]


def test_incident_figure_has_one_trace_per_layer(incident_fig) -> None:
    names = [(t.type, t.name) for t in incident_fig.data]
    assert names == [
        ("scatter", "bandwidth_mbps band"),
        ("scatter", "bandwidth_mbps band"),
        ("scatter", "bandwidth_mbps · lb-p19-1"),
        ("bar", "probe outages"),
        ("bar", "check outages"),
        ("heatmap", "CRITICAL services"),
        ("scatter", "external_maintenance"),
        ("scatter", "application_release"),
        ("scatter", "hosting"),
        ("scatter", "reaction"),
        ("scatter", F.TOP_CAUSE),
    ]
    # one shared time axis over the whole window, in the display zone
    assert list(incident_fig.layout.xaxis.range) == [local(WINDOW[0]), local(WINDOW[1])]


def test_band_fills_between_lower_and_upper(incident_fig) -> None:
    lower, upper = [t for t in incident_fig.data if t.name == "bandwidth_mbps band"]
    assert upper.fill == "tonexty"
    assert lower.fill is None
    assert list(lower.y)[:1] == [180.0]
    assert list(upper.y)[:1] == [220.0]


def test_maintenance_window_is_shaded_where_the_data_says(incident_fig) -> None:
    windows = {s.name: s for s in incident_fig.layout.shapes if (s.name or "").startswith("window ")}
    assert set(windows) == {"window OVH-P19-SW", "window PROV-1"}
    maint = windows["window OVH-P19-SW"]
    assert maint.x0 == local(MAINT.start) == datetime(2010, 11, 17, 19, 0)
    assert maint.x1 == local(MAINT.end) == datetime(2010, 11, 17, 21, 0)
    assert (maint.xref, maint.yref, maint.y0, maint.y1) == ("x", "paper", 0, 1)  # across every row
    assert maint.fillcolor == F.CLASS_COLORS["external_maintenance"]
    prov = windows["window PROV-1"]
    assert (prov.x0, prov.x1) == (local(PROVIDER.start), local(PROVIDER.end))


def test_top_cause_is_highlighted(incident_fig) -> None:
    star = _trace(incident_fig, F.TOP_CAUSE)
    assert list(star.x) == [local(TOP.start)]
    assert list(star.y) == ["external_maintenance"]
    assert star.marker.symbol == "star"
    assert "OVH-P19-SW" in star.hovertext[0]
    windows = {s.name: s for s in incident_fig.layout.shapes if (s.name or "").startswith("window ")}
    assert windows["window OVH-P19-SW"].line.width == 2  # outlined
    assert windows["window PROV-1"].line.width == 0
    assert windows["window OVH-P19-SW"].opacity > windows["window PROV-1"].opacity


def test_change_markers_are_coloured_by_class_with_id_title_scope_on_hover(incident_fig) -> None:
    release = _trace(incident_fig, "application_release")
    assert release.marker.color == F.CLASS_COLORS["application_release"]
    assert list(release.x) == [local(DEPLOY.start)]
    assert list(release.customdata) == ["deploy-site-2"]
    text = release.hovertext[0]
    assert "deploy-site-2" in text
    assert "sites renderer 2.8.2" in text
    assert "apps=sites" in text
    maint = _trace(incident_fig, "external_maintenance")
    assert list(maint.customdata) == ["OVH-P19-SW", "PROV-1"]
    assert "switches=sw-p19-a, sw-p19-b" in maint.hovertext[0]
    assert len(_trace(incident_fig, "reaction").x) == 14
    assert _trace(incident_fig, "hosting").marker.color == F.CLASS_COLORS["hosting"]


def test_outages_strip(incident_fig) -> None:
    probe = _trace(incident_fig, "probe outages")
    assert len(probe.base) == 14
    assert set(probe.y) == {"www-public · pingdom:home"}
    assert probe.base[0] == local(ONSET)
    assert probe.x[0] == 4 * 60 * 1000
    merged = _trace(incident_fig, "check outages")
    # two overlapping CRITICAL intervals merge into one bar
    assert list(merged.base) == [local(ONSET)]
    assert list(merged.x) == [(END + timedelta(minutes=5) - ONSET).total_seconds() * 1000]


def test_heat_strip_aggregates_groups_not_services(incident_fig) -> None:
    heat = _trace(incident_fig, "CRITICAL services")
    assert len(heat.y) == 6
    assert heat.y[-1] in ("P19 / sw-00", "P19 / sw-01")  # most affected on top
    assert heat.z.max() == 15


def test_fold_groups_keeps_the_strip_legible() -> None:
    crit = _critical(groups=60)
    folded = F.fold_groups(crit, 20)
    assert folded["group"].nunique() == 20
    assert "other (41 groups)" in set(folded["group"])
    assert folded["critical"].sum() == crit["critical"].sum()
    assert folded["total"].sum() == crit["total"].sum()


def test_anomaly_is_shaded_in_its_signal_row(incident_fig) -> None:
    shapes = [s for s in incident_fig.layout.shapes if (s.name or "").startswith("anomaly ")]
    assert len(shapes) == 1
    assert (shapes[0].x0, shapes[0].x1) == (local(ONSET), local(END))
    assert shapes[0].yref == "y domain"


def test_onset_line(incident_fig) -> None:
    onset = [s for s in incident_fig.layout.shapes if s.name == "onset"]
    assert len(onset) == 1
    assert onset[0].x0 == datetime(2010, 11, 17, 19, 23)


def test_incident_figure_without_signals_or_incident() -> None:
    fig = F.incident_figure(window=WINDOW, changes=[DEPLOY], tz="UTC")
    assert [t.name for t in fig.data] == ["application_release"]
    assert list(fig.data[0].x) == [DEPLOY.start.replace(tzinfo=None)]


def test_hosting_cause_without_change_is_starred_on_its_lane() -> None:
    cause = Cause(1, "hosting", None, "bo-p19-1", "bo-p19-1 failed first", ONSET, None, 0.8)
    fig = F.incident_figure(window=WINDOW, changes=[], causes=[cause], tz=TZ)
    star = _trace(fig, F.TOP_CAUSE)
    assert list(star.y) == ["hosting"]
    assert "bo-p19-1" in star.hovertext[0]


def test_service_figure() -> None:
    checks = pd.DataFrame(
        {
            "service": ["site-0001"] * 3,
            "check": ["http"] * 3,
            "state": ["OK", "CRITICAL", "OK"],
            "source": ["nagios"] * 3,
            "start": [WINDOW[0], ONSET, END],
            "end": [ONSET, END, WINDOW[1]],
        }
    )
    fig = F.service_figure(window=WINDOW, signals=[_signal()], checks=checks, changes=[MAINT], tz=TZ)
    assert [t.name for t in fig.data] == [
        "bandwidth_mbps band",
        "bandwidth_mbps band",
        "bandwidth_mbps · lb-p19-1",
        "check: CRITICAL",
        "check: OK",
        "external_maintenance",
    ]
    crit = _trace(fig, "check: CRITICAL")
    assert list(crit.base) == [local(ONSET)]
    assert list(crit.x) == [(END - ONSET).total_seconds() * 1000]
    shape = next(s for s in fig.layout.shapes if s.name == "window OVH-P19-SW")
    assert (shape.x0, shape.x1) == (local(MAINT.start), local(MAINT.end))


def test_attribution_figure_has_every_class_and_outlines_the_current_week() -> None:
    frame = pd.DataFrame(
        [
            ("2010-W45", "application_release", 25 * 60.0),
            ("2010-W46", "external_maintenance", 54 * 60.0),
            ("2010-W46", "hosting", 22 * 60.0),
        ],
        columns=["week", "category", "downtime_s"],
    )
    fig = F.attribution_figure(frame, current="2010-W46")
    assert [t.name for t in fig.data] == list(F.CAUSE_CLASSES)
    assert list(fig.data[0].x) == ["2010-W45", "2010-W46"]
    assert list(_trace(fig, "external_maintenance").y) == [0.0, 54.0]
    assert list(_trace(fig, "application_release").y) == [25.0, 0.0]
    assert list(_trace(fig, "unknown").y) == [0.0, 0.0]
    assert fig.layout.barmode == "stack"
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.x1) == (0.55, 1.45)


def test_weekly_incidents_coloured_by_top_cause() -> None:
    inc = _incident()
    hosting = Incident(
        "inc-2",
        ONSET - timedelta(minutes=40),
        ONSET - timedelta(minutes=18),
        ("bo-p19-1",),
        ("bo-p19-1",),
        1,
        22 * 60.0,
    )
    week = (datetime(2010, 11, 14, 23, tzinfo=UTC), datetime(2010, 11, 21, 23, tzinfo=UTC))
    fig = F.weekly_incidents_figure(
        [hosting, inc], week=week, top_causes={inc.incident_id: TOP, "inc-2": None}, tz=TZ
    )
    assert [t.name for t in fig.data] == ["external_maintenance", "unknown"]
    assert list(_trace(fig, "external_maintenance").customdata) == [inc.incident_id]
    assert list(fig.layout.xaxis.range) == [datetime(2010, 11, 15), datetime(2010, 11, 22)]


def test_availability_figure() -> None:
    frame = pd.DataFrame(
        {
            "group": ["site", "backoffice"],
            "downtime_s": [54 * 60.0, 22 * 60.0],
            "availability": [0.99464, 0.99782],
        }
    )
    fig = F.availability_figure(frame)
    (bar,) = fig.data
    assert list(bar.y) == ["backoffice", "site"]
    assert list(bar.x) == [22.0, 54.0]
    assert list(bar.text) == ["99.782%", "99.464%"]


def test_figure_html_loads_no_plotly_and_nothing_remote(incident_fig) -> None:
    out = F.figure_html(incident_fig, "incident-timeline")
    assert 'id="incident-timeline"' in out
    assert "performance.mark('plotted:' + 'incident-timeline')" in out
    assert "cdn" not in out.lower()
    assert "<script src" not in out
    assert len(out) < 200_000  # plotly.js is not inlined


def test_left_margin_fits_the_longest_lane_label_without_automargin(incident_fig) -> None:
    """plotly.js redraws once per automargin pass: the timeline sizes its left margin itself."""
    labels = [str(v) for t in incident_fig.data if t.y is not None for v in t.y if isinstance(v, str)]
    longest = max(len(v) for v in labels)
    assert incident_fig.layout.margin.l >= longest * F.CHAR_PX + 20
    assert all(ax.automargin is False for ax in incident_fig.select_yaxes())
    assert all(ax.automargin is False for ax in incident_fig.select_xaxes())
