"""Incident segmentation and identity, end to end (files in their real formats → ingest →
explain / incidents / batch).

* Two waves in one datacenter are two incidents: a host failure at 18:43 and a network
  capacity drop at 19:23, bridged by a soft anomaly left over from the first wave (a
  front's request rate staying at ~70 % for 50 minutes).  The world is built here, in
  test code, from the raw writers (inventory CSV, metrics Parquet, ``nagios.log``, a works
  page), not from the scenario suite.
* The reference night: explain at 18:43 / 18:46 and 19:23 / 19:26 answers about each wave.
* One incident, one identity: the same id and onset from ``incidents`` over the day and the
  week, from ``explain`` at several times inside it, from ``get_incident`` and from
  ``batch``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from whatchanged.data.inputs import (
    MetricBuffer,
    NagiosLog,
    Service,
    WorksNotice,
    load_shape,
    local_clock,
    local_epoch,
    minute_grid,
    write_services,
    write_works,
)
from whatchanged.data.night_sources import checks_of
from whatchanged.data.reference_night import generate
from whatchanged.engine.batch import BatchParams, run_batch
from whatchanged.engine.detect import prepare_states
from whatchanged.engine.explain import explain_at
from whatchanged.engine.incidents import (
    clear_cache,
    find_incidents,
    get_incident,
    group_events,
    inventory,
    overlapping,
)
from whatchanged.engine.model import Explanation, Incident
from whatchanged.engine.outages import find_outages
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest
from whatchanged.present.explanation import explanation

TZ = "Europe/Paris"
ZONE = ZoneInfo(TZ)
MIN = timedelta(minutes=1)


def paris(day: str, hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    y, mo, d = (int(x) for x in day.split("-"))
    return datetime(y, mo, d, h, m, tzinfo=ZONE)


def explain(home: Path, at: datetime) -> Explanation:
    wh = Warehouse(home)
    con = wh.snapshot()
    try:
        return explain_at(con, at, settings=Settings(home=home, tz=TZ))
    finally:
        con.close()


# -- a small world: two waves in one datacenter, bridged by a soft anomaly ---------------------

DAY = "2012-03-14"
DAYS = 3
WORKS_ID = "ovh:FS#5001"


def _world(out: Path) -> None:
    """P19: a back-office host (bo-host: bo-db, backoffice), a front with its request rate,
    a load balancer and two switches carrying the bandwidth, twelve sites on three hosts."""
    services = [
        Service("p19-sw-a", "switch", "P19", "R01", "p19-sw-a", "p19-sw-a", "network", True),
        Service("p19-sw-b", "switch", "P19", "R02", "p19-sw-b", "p19-sw-b", "network", True),
        Service("lb-01", "loadbalancer", "P19", "R01", "p19-sw-a", "lb-01", "edge", True),
        Service("front-01", "app", "P19", "R01", "p19-sw-a", "front-host", "front", True),
        Service("bo-db", "database", "P19", "R02", "p19-sw-b", "bo-host", "backoffice", True),
        Service("backoffice", "backoffice", "P19", "R02", "p19-sw-b", "bo-host", "backoffice", True),
        Service("mail-01", "email", "RBX", "X01", "rbx-sw-01", "rbx-mx-01", "mail"),
    ]
    sites = [f"www-{i:02d}" for i in range(1, 13)]
    for i, name in enumerate(sites):
        sw = "p19-sw-a" if i % 2 == 0 else "p19-sw-b"
        services.append(
            Service(name, "site", "P19", "R01" if i % 2 == 0 else "R02", sw, f"web-{i % 3}", "sites")
        )
    write_services(out / "services.csv", services)

    def at(hhmm: str) -> int:
        return local_epoch(DAY, hhmm, TZ)

    first_day = (datetime.fromisoformat(DAY) - timedelta(days=DAYS - 1)).date().isoformat()
    ts = minute_grid(first_day, DAYS, TZ)
    hours, _, _ = local_clock(ts, TZ)
    shape = load_shape(hours)
    rng = np.random.default_rng(20120314)
    n = ts.size
    buf = MetricBuffer()
    wave1 = (ts >= at("18:43")) & (ts < at("18:58"))
    soft = (ts >= at("18:45")) & (ts < at("19:35"))  # the front's request rate stays low
    wave2 = (ts >= at("19:23")) & (ts < at("20:30"))
    for name, share in (("lb-01", 1.0), ("p19-sw-a", 0.5), ("p19-sw-b", 0.5)):
        v = 200.0 * share * shape * (1 + rng.normal(0, 0.02, n))
        v[wave2] = 50.0 * share * (1 + rng.normal(0, 0.01, int(wave2.sum())))
        buf.add(name, "bandwidth_mbps", ts, v)
    req = 800.0 * shape * (1 + rng.normal(0, 0.02, n))
    req[soft] *= 0.7
    buf.add("front-01", "requests_per_s", ts, req)
    for name in ["backoffice", *sites]:
        v = 150.0 * (1 + 0.35 * shape) * np.exp(rng.normal(0, 0.05, n))
        if name == "backoffice":
            v[wave1] = 10000.0
        elif name in sites[:8]:
            v[wave2] = 4000.0 * np.exp(rng.normal(0, 0.2, int(wave2.sum())))
        buf.add(name, "latency_ms", ts, v)
    buf.write_parquet(out / "metrics.parquet")

    log = NagiosLog(start=at("00:00") - 86400 * (DAYS - 1))
    for s in services:
        for c in checks_of(s):
            log.current(s.service, c)
    log.simulate("bo-db", "MYSQL", [(at("18:43"), at("18:58"), "CRITICAL")], offset_s=5)
    log.simulate("backoffice", "PING", [(at("18:43"), at("18:58"), "CRITICAL")], offset_s=7)
    log.simulate("backoffice", "HTTP", [(at("18:43") + 20, at("18:58"), "CRITICAL")], offset_s=20)
    for k, name in enumerate(sites[:8]):
        log.simulate(name, "HTTP", [(at("19:23") + 10 * k, at("20:10"), "CRITICAL")], offset_s=11 + k)
    log.write(out / "nagios.log")
    notice = WorksNotice(
        5001,
        "Network",
        "P19 switches maintenance",
        "Closed",
        at("19:00"),
        at("21:00"),
        at("19:00") - 86400,
        "P19",
        "Maintenance of the switches of room Paris 19; capacity reduced during the works.",
    )
    write_works(out / "provider.works.txt", [notice], TZ)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("waves")
    (root / "in").mkdir()
    _world(root / "in")
    wh = Warehouse(root / "wh")
    ingest(wh, [root / "in"], ReadContext(tz=TZ))
    return root / "wh"


def test_two_waves_bridged_by_a_soft_anomaly_are_two_incidents(world: Path) -> None:
    con = Warehouse(world).snapshot()
    try:
        found = find_incidents(con, paris(DAY, "18:00"), paris(DAY, "22:00"))
    finally:
        con.close()
    big = [i for i in found if len(i.services_affected) > 1]
    assert len(big) == 2, [(i.incident_id, i.onset, i.end, i.services_affected) for i in found]
    first, second = big
    assert abs(first.onset - paris(DAY, "18:43")) <= 2 * MIN
    assert abs(second.onset - paris(DAY, "19:23")) <= 2 * MIN
    assert {"bo-db", "backoffice"} <= set(first.critical_services)
    assert "front-01" in first.services_affected  # the soft anomaly stays with the wave it started in
    assert not {"bo-db", "backoffice", "front-01"} & set(second.services_affected)
    assert set(second.critical_services) == {f"www-{i:02d}" for i in range(1, 9)}


def test_with_every_anomaly_hard_the_waves_merge(world: Path) -> None:
    """The contrast: when the front's request rate counts as a hard failure (the old rule,
    every event links), it chains the two waves into one group."""
    con = Warehouse(world).snapshot()
    try:
        from whatchanged.engine.detect import detect_anomalies

        lo, hi = paris(DAY, "17:00"), paris(DAY, "22:00")
        anomalies = detect_anomalies(con, lo, hi, online=False)
        outages = find_outages(con, lo, hi)
        inv = inventory(con)
    finally:
        con.close()
    front = [a for a in anomalies if a.service == "front-01"]
    assert front
    assert all(0.6 <= a.observed / a.baseline <= 0.8 for a in front)
    cutoff = paris(DAY, "23:59")
    merged = [g for g in group_events(anomalies, outages, inv, cutoff=cutoff, hard_factor=1.0) if g.outages]
    split = [g for g in group_events(anomalies, outages, inv, cutoff=cutoff) if g.outages]
    assert len(merged) == 1
    assert len(split) == 2


def test_explain_each_wave_of_the_small_world(world: Path) -> None:
    late = explain(world, paris(DAY, "19:26"))
    assert late.incident is not None
    assert abs(late.incident.onset - paris(DAY, "19:23")) <= 2 * MIN
    assert late.causes[0].change_id == WORKS_ID
    early = explain(world, paris(DAY, "18:46"))
    assert early.incident is not None
    assert abs(early.incident.onset - paris(DAY, "18:43")) <= 2 * MIN
    assert early.causes[0].category == "hosting"
    assert early.causes[0].component in ("bo-host", "backoffice", "bo-db")
    # the first wave lingers (the front's request rate) while the second starts: said, by id
    d = explanation(late, tz=TZ)
    assert [o["id"] for o in d["overlapping"]] == [early.incident.incident_id]
    # and from the first wave's side (GET /incidents/{id} names it too)
    con = Warehouse(world).snapshot()
    try:
        first = get_incident(con, early.incident.incident_id)
        assert [i.incident_id for i in overlapping(con, first)] == [late.incident.incident_id]
    finally:
        con.close()


# -- the reference night ----------------------------------------------------------------------

NIGHT = "2010-11-17"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("night-waves")
    generate(root / "in")  # the week, as the demo builds it
    wh = Warehouse(root / "wh")
    ingest(wh, [root / "in"], ReadContext(tz=TZ))
    con = wh.snapshot()
    try:
        prepare_states(con)  # what `analyze` does after an ingest
    finally:
        con.close()
    return root / "wh"


@pytest.mark.parametrize("hhmm", ["19:23", "19:26"])
def test_reference_night_second_wave(night: Path, hhmm: str) -> None:
    expl = explain(night, paris(NIGHT, hhmm))
    inc = expl.incident
    assert inc is not None
    assert inc.onset == paris(NIGHT, "19:23")
    assert inc.outage_count == 14
    assert inc.downtime_s == pytest.approx(54 * 60, abs=60)
    assert not {"bo-primary", "mail-out"} & set(inc.services_affected)
    top = expl.causes[0]
    assert (top.category, top.change_id) == ("external_maintenance", "ovh:FS#4321")


@pytest.mark.parametrize("hhmm", ["18:43", "18:46"])
def test_reference_night_first_wave(night: Path, hhmm: str) -> None:
    expl = explain(night, paris(NIGHT, hhmm))
    inc = expl.incident
    assert inc is not None
    assert inc.onset == paris(NIGHT, "18:43")
    assert {"bo-primary", "backoffice", "mail-out"} <= set(inc.services_affected)
    assert not any(o.external for o in inc.outages)  # none of the 19:23 probe outages
    assert inc.end is not None
    assert inc.end < paris(NIGHT, "19:23")
    top = expl.causes[0]
    assert top.category == "hosting"
    assert top.component in ("bo-primary", "bo-host-01")


def _general(found: list[Incident]) -> Incident:
    [inc] = [i for i in found if i.outage_count == 14]
    return inc


def test_one_incident_one_identity(night: Path, tmp_path: Path) -> None:
    """The 19:23 incident has one id and one onset whatever the range it was computed over."""
    seen: dict[str, tuple[str, datetime, int]] = {}
    for label, lo, hi in (
        ("day", paris(NIGHT, "00:00"), paris(NIGHT, "00:00") + timedelta(days=1)),
        ("week", paris(NIGHT, "00:00") - timedelta(days=6), paris(NIGHT, "00:00") + timedelta(days=1)),
        ("evening", paris(NIGHT, "19:30"), paris(NIGHT, "19:40")),
    ):
        clear_cache()  # computed afresh, not served from another range's cache
        con = Warehouse(night).snapshot()
        try:
            inc = _general(find_incidents(con, lo, hi))
        finally:
            con.close()
        seen[f"incidents/{label}"] = (inc.incident_id, inc.onset, len(inc.services_affected))
    for hhmm in ("19:24", "19:40", "20:30"):
        clear_cache()
        got = explain(night, paris(NIGHT, hhmm)).incident
        assert got is not None
        seen[f"explain/{hhmm}"] = (got.incident_id, got.onset, len(got.services_affected))
    ident = seen["incidents/day"][0]
    con = Warehouse(night).snapshot()
    try:
        again = get_incident(con, ident)
    finally:
        con.close()
    seen["get_incident"] = (again.incident_id, again.onset, len(again.services_affected))
    result = run_batch(
        BatchParams(home=night, start=paris(NIGHT, "00:00"), end=paris(NIGHT, "00:00") + timedelta(days=1)),
        tmp_path / "batch",
        settings=Settings(home=night, tz=TZ),
    )
    inc = _general(list(result.incidents))
    seen["batch"] = (inc.incident_id, inc.onset, len(inc.services_affected))
    assert len(set(seen.values())) == 1, seen
    assert seen["incidents/day"][1] == paris(NIGHT, "19:23").astimezone(UTC)
