"""Availability over a range, with and without planned maintenance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from tests.engine import scenarios as sc
from whatchanged.engine.availability import availability
from whatchanged.engine.errors import ConfigError, NotFoundError
from whatchanged.engine.schema import CHANGES
from whatchanged.engine.warehouse import Warehouse

YEAR0 = datetime(2010, 1, 1, tzinfo=UTC)
YEAR1 = datetime(2011, 1, 1, tzinfo=UTC)


@pytest.fixture
def year(warehouse: Warehouse) -> Warehouse:
    """A year of an external probe: the night's 14 outages (54 min) plus 38 min in spring: 92 min."""
    rows = sc.StateRows()
    spring = datetime(2010, 4, 2, 3, 0, tzinfo=UTC)
    extra = [
        (spring, spring + timedelta(minutes=30)),
        (spring + timedelta(days=9), spring + timedelta(days=9, minutes=8)),
    ]
    rows.intervals(
        "www",
        "pingdom-home",
        extra + sc.flapping_intervals(),
        bad="down",
        good="up",
        source="pingdom",
        first=YEAR0,
    )
    rows.intervals(
        "www",
        "http",
        [(sc.NIGHT, sc.NIGHT + timedelta(minutes=83))],
        bad="CRITICAL",
        good="OK",
        source="nagios",
        first=YEAR0,
    )
    rows.intervals(
        "db1",
        "mysql",
        [(spring, spring + timedelta(hours=2))],
        bad="CRITICAL",
        good="OK",
        source="nagios",
        first=YEAR0,
    )
    inv = pa.table(
        {
            "service": ["www", "db1"],
            "datacenter": ["P19", "P19"],
            "switch": ["sw1", "sw2"],
            "app": ["sites", "db"],
        }
    )
    warehouse.commit({"services": inv, "states": rows.table()})
    return warehouse


def test_year_with_92_minutes_down_is_99_98_percent(year: Warehouse) -> None:
    a = availability(year.snapshot(), YEAR0, YEAR1, service="www")
    assert a.source == "external"
    assert a.checks == ("www/pingdom-home",)
    assert a.outage_count == 16
    assert a.downtime_s == 92 * 60
    assert a.availability == pytest.approx(1 - 92 / 525600)
    assert a.percent == "99.98%"
    assert a.to_dict()["downtime_s"] == 5520


def test_check_and_nagios_fallback(year: Warehouse) -> None:
    con = year.snapshot()
    assert availability(con, YEAR0, YEAR1, check="pingdom-home").downtime_s == 92 * 60
    db = availability(con, YEAR0, YEAR1, service="db1")
    assert db.source == "nagios"
    assert db.outage_count == 1
    assert db.downtime_s == 7200


def test_group_is_down_when_any_member_is(year: Warehouse) -> None:
    g = availability(year.snapshot(), YEAR0, YEAR1, group="P19")
    # external probes exist in the group, so they are the measure
    assert g.source == "external"
    assert g.downtime_s == 92 * 60
    g2 = availability(year.snapshot(), YEAR0, YEAR1, group="db")
    assert g2.downtime_s == 7200


def _maintenance(
    scope: dict[str, list[str]] | None = None, *, change_id: str = "m1", title: str | None = None
) -> pa.Table:
    """A maintenance window of 02:30 around the night's outages (``scope``: what it names)."""
    return pa.Table.from_pylist(
        [
            {
                "change_id": change_id,
                "kind": "maintenance",
                "start": sc.NIGHT - timedelta(minutes=30),
                "end": sc.NIGHT + timedelta(hours=2),
                "title": title,
                "scope": scope or {},
            }
        ],
        schema=CHANGES,
    )


def test_exclude_planned_maintenance_covering_the_service(year: Warehouse) -> None:
    year.commit({"changes": _maintenance({"switches": ["sw1"]})})
    con = year.snapshot()
    a = availability(con, YEAR0, YEAR1, service="www", exclude_planned=True)
    assert a.planned_s == 150 * 60
    assert a.downtime_s == 38 * 60
    assert a.outage_count == 16
    assert a.availability == pytest.approx(1 - 38 / (525600 - 150))
    assert availability(con, YEAR0, YEAR1, service="www").downtime_s == 92 * 60


def test_cancelled_or_unrelated_maintenance_is_not_excluded(year: Warehouse) -> None:
    year.commit({"changes": _maintenance({"switches": ["sw2"]})})
    assert availability(year.snapshot(), YEAR0, YEAR1, service="www", exclude_planned=True).planned_s == 0


def test_planned_maintenance_scope_is_the_explain_matcher(year: Warehouse) -> None:
    """Aliases and names in the text count, as in explain (availability once matched raw scope only)."""
    year.commit(
        {"changes": _maintenance({"switches": ["core-a"]}, change_id="m2", title="Core switch replacement")}
    )
    con = year.snapshot()
    assert availability(con, YEAR0, YEAR1, service="www", exclude_planned=True).planned_s == 0
    aliased = availability(
        con, YEAR0, YEAR1, service="www", exclude_planned=True, aliases={"switches": {"core-a": ("sw1",)}}
    )
    assert aliased.planned_s == 150 * 60
    year.commit({"changes": _maintenance(change_id="m2", title="Power works in p19 — no component listed")})
    by_text = availability(year.snapshot(), YEAR0, YEAR1, service="www", exclude_planned=True)
    assert by_text.planned_s == 150 * 60


def test_bad_selection(year: Warehouse) -> None:
    con = year.snapshot()
    with pytest.raises(ConfigError):
        availability(con, YEAR0, YEAR1)
    with pytest.raises(NotFoundError):
        availability(con, YEAR0, YEAR1, group="nowhere")
    with pytest.raises(ConfigError):
        availability(con, YEAR1, YEAR0, service="www")
