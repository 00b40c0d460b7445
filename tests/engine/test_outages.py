"""Check states → outage intervals."""

from __future__ import annotations

from datetime import timedelta

from tests.engine import scenarios as sc
from whatchanged.engine.outages import find_outages, merge_intervals
from whatchanged.engine.warehouse import Warehouse


def test_flapping_probe_gives_one_outage_per_down_interval(warehouse: Warehouse) -> None:
    warehouse.commit({"states": sc.flapping_states().table()})
    con = warehouse.snapshot()
    found = find_outages(con)
    truth = sc.flapping_intervals()
    assert [(o.start, o.end) for o in found] == truth
    assert all(o.external and o.state == "down" and o.source == "pingdom" for o in found)
    assert sum(o.downtime_s for o in found) == 54 * 60


def test_nagios_critical_down_unreachable_are_outages_warning_is_not(warehouse: Warehouse) -> None:
    rows = sc.StateRows()
    t = sc.NIGHT
    for i, state in enumerate(["OK", "CRITICAL", "CRITICAL", "WARNING", "DOWN", "OK", "UNREACHABLE"]):
        rows.add(t + timedelta(minutes=i), "db1", "mysql", state, "nagios")
    warehouse.commit({"states": rows.table()})
    found = find_outages(warehouse.snapshot())
    assert [(o.state, o.start - t, o.end and o.end - t) for o in found] == [
        ("CRITICAL", timedelta(minutes=1), timedelta(minutes=3)),
        ("DOWN", timedelta(minutes=4), timedelta(minutes=5)),
        ("UNREACHABLE", timedelta(minutes=6), None),
    ]
    assert not any(o.external for o in found)


def test_online_cutoff_leaves_outage_open(warehouse: Warehouse) -> None:
    warehouse.commit({"states": sc.flapping_states().table()})
    a, _b = sc.flapping_intervals()[0]
    found = find_outages(warehouse.snapshot(), until=a + timedelta(minutes=1))
    assert [(o.start, o.end) for o in found] == [(a, None)]


def test_range_selects_overlapping_outages(warehouse: Warehouse) -> None:
    warehouse.commit({"states": sc.flapping_states().table()})
    iv = sc.flapping_intervals()
    found = find_outages(warehouse.snapshot(), iv[2][0] + timedelta(seconds=30), iv[4][0])
    assert [(o.start, o.end) for o in found] == iv[2:4]


def test_merge_intervals_with_gap() -> None:
    iv = sc.flapping_intervals()
    assert len(merge_intervals(iv)) == 14
    assert merge_intervals(iv, gap_s=180) == [(iv[0][0], iv[-1][1])]
