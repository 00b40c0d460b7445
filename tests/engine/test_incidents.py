"""Incidents: grouping, the reference night, stable ids, lookups."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from tests.engine import scenarios as sc
from whatchanged.engine.errors import NotFoundError
from whatchanged.engine.incidents import (
    find_incidents,
    get_incident,
    group_events,
    incident_at,
    is_hard,
    wave_onset,
)
from whatchanged.engine.model import Anomaly, Outage
from whatchanged.engine.warehouse import Warehouse

HOUR = timedelta(hours=1)


@pytest.fixture
def night(warehouse: Warehouse) -> sc.Night:
    n = sc.reference_night(0)
    warehouse.commit(n.tables)
    return n


@pytest.mark.parametrize("online", [True, False])
def test_reference_night_is_one_incident(warehouse: Warehouse, night: sc.Night, online: bool) -> None:
    con = warehouse.snapshot()
    found = find_incidents(con, night.onset - 3 * HOUR, night.onset + 3 * HOUR, online=online)
    assert len(found) == 1
    inc = found[0]
    assert inc.outage_count == 14
    assert inc.downtime_s == pytest.approx(3240, abs=60)
    assert abs(inc.onset - night.onset) <= timedelta(minutes=2)
    assert inc.critical_services == night.critical
    assert {"www", "lb-p19", *night.critical} == set(inc.services_affected)
    assert inc.signals == ("bandwidth_mbps",)
    assert inc.incident_id.startswith("inc-20101117T1923Z-")
    assert inc.end is not None
    assert inc.end >= night.onset + timedelta(minutes=83)


def test_incident_id_is_stable_and_found_again(warehouse: Warehouse, night: sc.Night) -> None:
    con = warehouse.snapshot()
    [a] = find_incidents(con, night.onset - 3 * HOUR, night.onset + 3 * HOUR, online=False)
    [b] = find_incidents(warehouse.snapshot(), night.onset - 2 * HOUR, night.onset + 4 * HOUR, online=False)
    assert a.incident_id == b.incident_id
    assert get_incident(con, a.incident_id).incident_id == a.incident_id
    with pytest.raises(NotFoundError):
        get_incident(con, "inc-20101117T1923Z-000000")
    with pytest.raises(NotFoundError):
        get_incident(con, "nonsense")


def test_incident_at(warehouse: Warehouse, night: sc.Night) -> None:
    con = warehouse.snapshot()
    inside = incident_at(con, night.onset + timedelta(minutes=40))
    assert inside is not None
    assert inside.outage_count == 14
    just_before = incident_at(con, night.onset - timedelta(minutes=3))
    assert just_before is not None
    assert just_before.incident_id == inside.incident_id
    assert incident_at(con, night.onset - 5 * HOUR) is None


def test_quiet_warehouse_has_no_incident(warehouse: Warehouse) -> None:
    q = sc.seasonal_quiet(5, days=3)
    n = q.ts.size
    warehouse.commit(
        {
            "metrics": pa.table(
                {
                    "ts": pa.array(q.ts, pa.timestamp("us", tz="UTC")),
                    "service": ["web1"] * n,
                    "metric": ["requests_per_s"] * n,
                    "value": q.values,
                }
            )
        }
    )
    con = warehouse.snapshot()
    assert find_incidents(con, sc.DAY0, sc.DAY0 + timedelta(days=3)) == []


def test_unrelated_services_at_the_same_time_are_separate(warehouse: Warehouse) -> None:
    rows = sc.StateRows()
    t = sc.NIGHT
    rows.intervals(
        "a", "http", [(t, t + 10 * timedelta(minutes=1))], bad="CRITICAL", good="OK", source="nagios"
    )
    rows.intervals(
        "b", "http", [(t, t + 10 * timedelta(minutes=1))], bad="CRITICAL", good="OK", source="nagios"
    )
    inv = pa.table({"service": ["a", "b"], "datacenter": ["P19", "AMS1"], "host": ["h1", "h2"]})
    warehouse.commit({"services": inv, "states": rows.table()})
    found = find_incidents(warehouse.snapshot(), t - HOUR, t + HOUR)
    assert sorted(i.services_affected for i in found) == [("a",), ("b",)]
    assert all(i.outage_count == 1 and i.downtime_s == 600 for i in found)


def test_find_incidents_is_cached_until_a_new_commit(warehouse: Warehouse, night: sc.Night) -> None:
    from whatchanged.engine import incidents as mod

    mod.clear_cache()
    con = warehouse.snapshot()
    lo, hi = night.onset - 3 * HOUR, night.onset + 3 * HOUR
    first = find_incidents(con, lo, hi)
    assert len(mod._CACHE) == 1
    again = find_incidents(con, lo, hi)
    assert again == first
    assert len(mod._CACHE) == 1
    # a new commit: a fresh connection sees new files, so the cached answer is not served
    rows = sc.StateRows()
    t = night.onset + timedelta(minutes=150)
    rows.intervals(
        "zz-new", "http", [(t, t + timedelta(minutes=20))], bad="CRITICAL", good="OK", source="nagios"
    )
    warehouse.commit({"states": rows.table()})
    fresh = find_incidents(warehouse.snapshot(), lo, hi)
    assert len(mod._CACHE) == 2
    assert any("zz-new" in i.services_affected for i in fresh)
    assert not any("zz-new" in i.services_affected for i in find_incidents(con, lo, hi))


# -- waves: group_events on events built by hand ------------------------------------------------

T0 = sc.NIGHT
INV: dict[str, dict[str, str | None]] = {
    s: {"kind": "site", "datacenter": "P19", "rack": None, "switch": sw, "host": h, "app": None}
    for s, sw, h in (
        ("bo", "sw-b", "bo-host"),
        ("bo-db", "sw-b", "bo-host"),
        ("front", "sw-a", "front-host"),
        ("www-1", "sw-a", "web-1"),
        ("www-2", "sw-a", "web-2"),
        ("www-3", "sw-b", "web-3"),
    )
}


def _m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _out(service: str, a: float, b: float) -> Outage:
    return Outage(service, "HTTP", _m(a), _m(b), "CRITICAL", "nagios", False)


def _anom(service: str, a: float, b: float, ratio: float, metric: str = "latency_ms") -> Anomaly:
    return Anomaly(
        service, metric, _m(a), _m(a), _m(b), "up" if ratio > 1 else "down", 9.0, 100.0, 100.0 * ratio
    )


def _groups(anomalies: list[Anomaly], outages: list[Outage]) -> list[set[str]]:
    found = group_events(anomalies, outages, INV, cutoff=_m(600))
    return sorted((set(g.service_end) for g in found), key=sorted)


def test_is_hard() -> None:
    assert is_hard(_anom("x", 0, 10, 2.0))
    assert is_hard(_anom("x", 0, 10, 0.5))
    assert not is_hard(_anom("x", 0, 10, 1.4))
    assert not is_hard(_anom("x", 0, 10, 0.7))
    assert is_hard(Anomaly("x", "m", _m(0), _m(0), _m(5), "up", 9.0, 0.0, 3.0))  # off zero


def test_a_lingering_soft_anomaly_does_not_chain_two_waves() -> None:
    outages = [_out("bo", 0, 15), _out("bo-db", 0, 15), _out("www-1", 40, 90), _out("www-2", 40, 90)]
    lingering = _anom("front", 2, 52, 0.7, "requests_per_s")  # starts in wave 1, overlaps wave 2
    groups = _groups([lingering], outages)
    assert groups == [{"bo", "bo-db", "front"}, {"www-1", "www-2"}]
    # counted hard, the same anomaly is one more failure overlapping both: one incident
    hard = _anom("front", 2, 52, 0.2, "requests_per_s")
    assert _groups([hard], outages) == [{"bo", "bo-db", "front", "www-1", "www-2"}]


def test_soft_anomalies_join_the_wave_they_start_in() -> None:
    outages = [_out("bo", 0, 15), _out("www-1", 40, 90), _out("www-2", 40, 90)]
    soft = [_anom("www-3", 45, 80, 1.4), _anom("front", 38, 60, 1.4)]  # a precursor, then a follower
    assert _groups(soft, outages) == [{"bo"}, {"front", "www-1", "www-2", "www-3"}]


def test_recurrence_joins_the_same_hard_failures_only() -> None:
    # works overrunning their window: the same services fail again 40 min later → one incident
    same = [_out("www-1", 0, 25), _out("www-2", 0, 25), _out("www-1", 65, 140), _out("www-2", 65, 140)]
    assert _groups([], same) == [{"www-1", "www-2"}]
    # a different set of hard failures 40 min later is a new incident, even with a soft
    # anomaly of the first set's services in between
    other = [_out("www-1", 0, 25), _out("www-2", 0, 25), _out("bo", 65, 140), _out("bo-db", 65, 140)]
    soft = [_anom("www-1", 20, 70, 1.3)]
    assert _groups(soft, other) == [{"bo", "bo-db"}, {"www-1", "www-2"}]


# two things going wrong in one datacenter at once: a host dies, then a rack loses its switch
RACKS: dict[str, dict[str, str | None]] = {
    **{
        f"db-{k}": {
            "kind": "db",
            "datacenter": "WAW",
            "rack": "b00",
            "switch": "b00-sw",
            "host": "h-3",
            "app": None,
        }
        for k in range(3)
    },
    **{
        f"web-{k}": {
            "kind": "site",
            "datacenter": "WAW",
            "rack": "b07",
            "switch": "b07-sw",
            "host": f"h-7{k}",
            "app": None,
        }
        for k in range(5)
    },
    **{
        f"api-{k}": {
            "kind": "site",
            "datacenter": "WAW",
            "rack": f"b1{k}",
            "switch": f"b1{k}-sw",
            "host": f"h-1{k}",
            "app": None,
        }
        for k in range(4)
    },
}


def _rack_groups(outages: list[Outage]) -> list[set[str]]:
    found = group_events([], outages, RACKS, cutoff=_m(600))
    return sorted((set(g.service_end) for g in found), key=sorted)


def test_a_rack_failing_while_a_host_is_down_is_an_incident_of_its_own() -> None:
    host = [_out(f"db-{k}", 0, 30) for k in range(3)]
    rack = [_out(f"web-{k}", 12 + k * 0.5, 40) for k in range(5)]
    assert _rack_groups(host + rack) == [{f"db-{k}" for k in range(3)}, {f"web-{k}" for k in range(5)}]


def test_a_wave_spread_over_the_datacenter_takes_in_what_fails_there_later() -> None:
    spread = [_out(f"api-{k}", 0, 30) for k in range(4)]  # four switches: the datacenter itself
    rack = [_out(f"web-{k}", 12 + k * 0.5, 40) for k in range(5)]
    assert _rack_groups(spread + rack) == [{f"api-{k}" for k in range(4)} | {f"web-{k}" for k in range(5)}]


def test_single_failures_elsewhere_in_the_datacenter_still_join_a_local_wave() -> None:
    # a host's services fail, then two callers on other switches (no burst of their own)
    host = [_out(f"db-{k}", 0, 30) for k in range(3)]
    callers = [_out("api-0", 8, 25), _out("api-1", 9, 25)]
    assert _rack_groups(host + callers) == [{"db-0", "db-1", "db-2", "api-0", "api-1"}]


def test_a_burst_right_at_the_start_of_a_local_wave_is_the_same_failure() -> None:
    host = [_out(f"db-{k}", 0, 30) for k in range(3)]
    rack = [_out(f"web-{k}", 2 + k * 0.3, 40) for k in range(5)]  # within SPLIT_AFTER_S
    assert _rack_groups(host + rack) == [{f"db-{k}" for k in range(3)} | {f"web-{k}" for k in range(5)}]


def _wide(n: int, early: int) -> list[Anomaly]:
    """``n`` services stepping at minute 10, ``early`` of them estimated to start at minute 0."""
    return [_anom(f"s{k:03d}", 0 if k < early else 10, 60, 8.0) for k in range(n)]


def _onset(anomalies: list[Anomaly], outages: list[Outage] | None = None) -> datetime:
    """The onset of the one incident the events make (services in one datacenter)."""
    names = {a.service for a in anomalies} | {o.service for o in outages or []}
    inv: dict[str, dict[str, str | None]] = {
        s: {"kind": "site", "datacenter": "DC", "rack": None, "switch": None, "host": None, "app": None}
        for s in names
    }
    [g] = group_events(anomalies, outages or [], inv, cutoff=_m(600))
    return wave_onset(g)


def test_a_few_early_estimates_do_not_move_the_onset_of_a_wide_incident() -> None:
    # 200 services step at minute 10; the onset estimates of 4 (noise) land at minute 0
    assert _onset(_wide(200, 4)) == _m(10)
    # 30 of 200 starting earlier is a real precursor: the onset follows them
    assert _onset(_wide(200, 30)) == _m(0)


def test_a_small_incident_starts_at_its_earliest_failure() -> None:
    assert _onset(_wide(12, 1)) == _m(0)


def test_an_outage_keeps_its_exact_start() -> None:
    anomalies = _wide(200, 4)
    assert _onset(anomalies, [_out("s150", 7, 30)]) == _m(7)


def _weak(service: str, a: float, b: float, peak: float, *, contextual: bool = True) -> Anomaly:
    """An anomaly from minute ``a`` to ``b`` whose series went ``peak`` spreads away (a contextual
    one can stay below the median detector's threshold)."""
    return Anomaly(
        service, "latency_ms", _m(a), _m(a), _m(b), "up", peak, 100.0, 104.0, contextual=contextual
    )


def test_only_sustained_contextual_anomalies_make_an_incident() -> None:
    """A contextual anomaly makes an incident only when it went the median detector's threshold
    away and lasted ``min_anomaly_s``; the median detector's anomalies as before."""
    from whatchanged.engine.incident_grouping import MATERIAL_Z, _incident

    below = MATERIAL_Z - 0.9

    def made(anomalies: list[Anomaly], outages: list[Outage] = ()) -> list[set[str]]:
        groups = group_events(anomalies, list(outages), INV, cutoff=_m(600))
        return [set(i.services_affected) for g in groups if (i := _incident(g, _m(600), False, 600.0))]

    # two services a little away, or one a little away for long: no incident
    assert made([_weak("www-1", 0, 30, below), _weak("www-2", 1, 30, below)]) == []
    assert made([_weak("www-1", 0, 60, below)]) == []
    # blips far away on two services at once (a fleet's heavy-tailed latency): no incident
    assert made([_weak("www-1", 0, 2, MATERIAL_Z + 3), _weak("www-2", 1, 3, MATERIAL_Z + 3)]) == []
    # one of them far enough for long, or an outage beside them: an incident, the weak ones in it
    assert made([_weak("www-1", 0, 30, MATERIAL_Z), _weak("www-2", 1, 30, below)]) == [{"www-1", "www-2"}]
    assert made([_weak("www-1", 0, 60, MATERIAL_Z)]) == [{"www-1"}]
    assert made([_weak("www-1", 0, 30, below)], [_out("www-2", 2, 20)]) == [{"www-1", "www-2"}]
    # the median detector's: two services at once make one, however short
    blips = [
        _weak("www-1", 0, 2, MATERIAL_Z, contextual=False),
        _weak("www-2", 1, 3, MATERIAL_Z, contextual=False),
    ]
    assert made(blips) == [{"www-1", "www-2"}]
