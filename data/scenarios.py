"""Seeded scenarios with known truth, beyond the reference night.

The scenarios below are declarative: each is written with the builder of
:mod:`~whatchanged.data.scenario_kit`.

Each scenario writes a small input folder in the same raw formats as the
reference night (inventory CSV, 1-minute metrics as Parquet or CSV, a Nagios
log, deploy CSV, works notices or a BCOP iCalendar, optionally a Pingdom
export) and returns what ``whatchanged explain --at <at_local> --tz <tz>``
must answer: a :class:`ScenarioTruth`, or a list of them when one folder holds
two incidents.  The truth is also written as ``.truth.json`` (hidden, so that
``whatchanged ingest FOLDER`` skips it).

Change ids are those the readers store: the CSV ``id`` for releases
(``REL-<n>``), ``<X-MAINTNOTE-PROVIDER>:<X-MAINTNOTE-MAINTENANCE-ID>`` for
iCalendar notices and ``ovh:FS#<n>`` for works-page notices.

Command line: ``python -m whatchanged.data.scenarios OUT_ROOT [NAME …]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from whatchanged.data.inputs import (
    ChangeRow,
    IcalNotice,
    ProbeCheck,
)
from whatchanged.data.scenario_kit import ScenarioTruth, baseline_series, new_scenario

# ------------------------------------------------------------------------------------------------
# the scenarios


def bad_release(out: Path) -> ScenarioTruth:
    """A release of ``checkout`` makes its four services fail; a hotfix follows."""
    s = new_scenario(out, "bad_release", 101, "2011-03-08", metrics_format="csv")
    rel, onset, fixed = s.at("14:02"), s.at("14:06"), s.at("14:50")
    checkout = [f"checkout-{i:02d}" for i in range(1, 5)]
    baseline_series(s, [*checkout, "shop-01", "shop-02", "api-01"], "error_rate")
    s.metric("p19-lb-01", "latency_ms", 90.0)
    for c in checkout:
        s.effect(c, "error_rate", onset, fixed, value=12.0)
        s.fail(c, onset + 60, fixed)
    s.release("REL-2001", rel, "checkout", "5.2.0", "bob")
    s.release("REL-2002", s.at("14:47"), "checkout", "5.2.1", "bob", "hotfix: revert payment client")
    s.background_releases(6, avoid=(rel, fixed))
    return s.write(
        s.truth(
            "14:06",
            "application_release",
            "REL-2001",
            None,
            "checkout 5.2.0 at 14:02 breaks the four checkout services (error rate 0.4% -> 12%)",
        )
    )


def maintenance_vs_nearby_release(out: Path) -> ScenarioTruth:
    """Provider works in RBX at 22:00; a release in P19 ten minutes before the RBX services fail."""
    s = new_scenario(out, "maintenance_vs_nearby_release", 102, "2011-04-12")
    onset, end = s.at("22:08"), s.at("22:40")
    rbx = [x.service for x in s.services if x.datacenter == "RBX" and x.kind != "switch"]
    for sw in ("rbx-sw-01", "rbx-sw-02"):
        s.metric(sw, "bandwidth_mbps", 80.0)
        s.effect(sw, "bandwidth_mbps", onset, end, factor=0.1)
    baseline_series(s, ["www-101", "www-106", "mail-01", "shop-01", "shop-02"])
    for x in rbx:
        s.fail(x, onset + int(s.rng.integers(0, 90)), end + int(s.rng.integers(0, 120)))
    cid = s.notice(
        5102,
        "Network",
        "Router upgrade rbx-g1 (RBX)",
        "Scheduled",
        s.at("22:00"),
        s.at("23:30"),
        "RBX",
        "We will upgrade the router rbx-g1 in Roubaix. Interruptions of a few minutes expected.",
    )
    s.release("REL-2101", s.at("21:58"), "shop", "8.0.0", "carol")
    s.background_releases(5, avoid=(s.at("21:00"), end))
    return s.write(
        s.truth(
            "22:08",
            "external_maintenance",
            cid,
            None,
            "RBX router works; the shop release in P19 ten minutes before touches nothing in RBX",
        )
    )


def host_failure_no_change(out: Path) -> ScenarioTruth:
    """Web host p19-web-05 dies at night: its five sites go down; nothing changed."""
    s = new_scenario(out, "host_failure_no_change", 103, "2011-05-03")
    a, b = s.at("03:17"), s.at("03:52")
    sites = s.hosts_of("p19-web-05")
    baseline_series(s, [*sites, "www-030", "www-031"])
    for x in sites:
        s.effect(x, "latency_ms", a, b, gap=True)
        s.fail(x, a + 30, b)
    s.fail("p19-web-05", a + 5, b - 60)
    s.background_releases(6, avoid=(s.at("00:00"), s.at("09:00")))
    return s.write(
        s.truth("03:17", "hosting", None, "p19-web-05", "host p19-web-05 fails; no release, no works")
    )


def delayed_release_effect(out: Path) -> ScenarioTruth:
    """search 3.0.0 leaks memory: latency climbs 40 minutes after the release, while GRA works start."""
    s = new_scenario(out, "delayed_release_effect", 104, "2011-06-07")
    rel, onset, peak, fixed = s.at("10:00"), s.at("10:40"), s.at("11:10"), s.at("11:40")
    search = ["search-01", "search-02", "search-03"]
    baseline_series(s, [*search, "stats-01", "api-01"])
    for x in search:
        s.effect(x, "latency_ms", onset, peak, ramp_to=15.0, hold_until=fixed)
        s.fail(x, s.at("10:50"), s.at("11:05"), "WARNING")
        s.fail(x, s.at("11:05"), fixed)
    s.release("REL-2301", rel, "search", "3.0.0", "dan")
    s.changes.append(
        ChangeRow("REL-2302", s.at("11:36"), "search", "2.9.4", "dan", "rollback search", end=s.at("11:39"))
    )
    cid = s.notice(
        5340,
        "Storage",
        "GRA storage bay maintenance",
        "Closed",
        s.at("10:35"),
        s.at("11:30"),
        "GRA",
        "Replacement of a disk shelf in Gravelines. No impact expected.",
    )
    s.background_releases(5, avoid=(s.at("08:00"), fixed))
    return s.write(
        s.truth(
            "10:40",
            "application_release",
            "REL-2301",
            None,
            f"the search release at 10:00 leaks memory; {cid} in GRA lines up better in time but "
            "covers nothing search runs on",
        )
    )


def unexplained_anomaly(out: Path) -> ScenarioTruth:
    """api latency quadruples for 25 minutes; no release, no works, no host down."""
    s = new_scenario(out, "unexplained_anomaly", 105, "2011-07-19", metrics_format="csv")
    a, b = s.at("16:20"), s.at("16:45")
    api = ["api-01", "api-02", "api-03"]
    baseline_series(s, [*api, "shop-01", "www-001"])
    for x in api:
        s.effect(x, "latency_ms", a, b, factor=4.0)
    s.fail("api-02", a + 120, b, "WARNING")
    s.release("REL-2401", s.at("11:05", -1), "api", "6.3.0", "carol")
    s.background_releases(5, avoid=(s.at("13:00"), s.at("20:00")))
    s.notice(
        5411,
        "Network",
        "SBG router upgrade",
        "Closed",
        s.at("02:00", -1),
        s.at("03:00", -1),
        "SBG",
        "Upgrade of a router in Strasbourg.",
    )
    return s.write(s.truth("16:20", "unknown", None, None, "api slows down with no change anywhere"))


def utc_notice_local_deploys(out: Path) -> ScenarioTruth:
    """A BCOP iCalendar notice in UTC (Z) while the deploy log is in local summer time (+02:00)."""
    s = new_scenario(out, "utc_notice_local_deploys", 106, "2011-08-23")
    onset, end = s.at("14:06"), s.at("14:45")  # 12:06Z: inside 12:00Z-14:00Z
    baseline_series(s, ["storage-01", "storage-02", "backup-01", "www-301"])
    for x in ("storage-01", "storage-02"):
        s.effect(x, "latency_ms", onset, end, value=5000.0)
        s.fail(x, onset + 20, end)
    s.fail("www-301", onset + 90, end - 300)
    mid = "SBG-MNT-20110823"  # stored by the iCalendar reader as "<provider>:<maintenance id>"
    s.icals.append(
        IcalNotice(
            uid="sbg-mnt-20110823@storage.example",
            maintenance_id=mid,
            provider="storage.example",
            account="acct-4412",
            summary="SBG storage array firmware upgrade",
            start=s.at("14:00"),
            end=s.at("16:00"),
            stamp=s.at("09:30", -6),
            objects=("sbg-nas-01", "sbg-nas-02"),
            impact="OUTAGE",
            status="CONFIRMED",
            sequence=1,
        )
    )
    # the trap: a storage release at 12:10 local (= 10:10Z); read as UTC it would sit inside the window
    s.release("REL-2601", s.at("12:10"), "storage", "1.4.0", "bob")
    s.background_releases(4, avoid=(s.at("11:00"), end))
    return s.write(
        s.truth(
            "14:06",
            "external_maintenance",
            f"storage.example:{mid}",
            None,
            "SBG storage firmware 12:00Z-14:00Z (14:00-16:00 local); the 12:10 local storage "
            "release is two hours earlier",
        )
    )


def cancelled_maintenance(out: Path) -> ScenarioTruth:
    """P19 works announced then cancelled; the shop release inside its window is the cause."""
    s = new_scenario(out, "cancelled_maintenance", 107, "2011-09-13")
    rel, onset, end = s.at("15:10"), s.at("15:12"), s.at("15:40")
    shop = ["shop-01", "shop-02", "shop-03"]
    baseline_series(s, [*shop, "checkout-01"], "error_rate")
    for x in shop:
        s.effect(x, "error_rate", onset, end, value=9.0)
        s.fail(x, onset + 60, end)
    s.notice(
        5610,
        "Network",
        "P19 switches firmware upgrade",
        "Cancelled",
        s.at("15:00"),
        s.at("17:00"),
        "P19",
        "Firmware upgrade of the switches of room Paris 19. Cancelled.",
        updated=s.at("10:02"),
    )
    s.release("REL-2701", rel, "shop", "8.1.0", "carol")
    s.background_releases(5, avoid=(s.at("13:00"), end))
    return s.write(
        s.truth(
            "15:12",
            "application_release",
            "REL-2701",
            None,
            "shop 8.1.0 at 15:10; the P19 works covering 15:12 were cancelled",
        )
    )


def maintenance_overrun(out: Path) -> ScenarioTruth:
    """Works on p19-sw-02 announced 01:00-02:00 go on until 03:40: the second wave is still theirs."""
    s = new_scenario(out, "maintenance_overrun", 108, "2011-10-04")
    waves = [(s.at("01:20"), s.at("01:45")), (s.at("02:25"), s.at("03:40"))]
    behind = [x for x in s.behind("p19-sw-02") if x.startswith("www-")]
    s.metric("p19-sw-02", "bandwidth_mbps", 40.0)
    s.metric("p19-sw-01", "bandwidth_mbps", 40.0)
    baseline_series(s, behind[:4])
    for a, b in waves:
        s.effect("p19-sw-02", "bandwidth_mbps", a, b, factor=0.05)
        for x in behind:
            s.fail(x, a + int(s.rng.integers(0, 60)), b)
        for x in behind[:4]:
            s.effect(x, "latency_ms", a, b, value=9000.0)
    cid = s.notice(
        5777,
        "Network",
        "P19 switch p19-sw-02 replacement",
        "Closed",
        s.at("01:00"),
        s.at("02:00"),
        "P19",
        "Replacement of the switch p19-sw-02 in room Paris 19. Interruption of about 20 minutes.",
        updated=s.at("02:05"),
    )
    s.background_releases(5, avoid=(s.at("00:00"), s.at("08:00")))
    return s.write(
        s.truth(
            "02:25",
            "external_maintenance",
            cid,
            None,
            "the p19-sw-02 replacement announced to end at 02:00 overruns until 03:40",
            onset="01:20",  # the overrun is the same incident as the first wave
        )
    )


def two_incidents(out: Path) -> list[ScenarioTruth]:
    """At 20:10 GRA works take GRA down; at 20:14 web host p19-web-07 fails in P19."""
    s = new_scenario(out, "two_incidents", 109, "2011-11-08")
    g0, g1 = s.at("20:10"), s.at("20:35")
    h0, h1 = s.at("20:14"), s.at("20:50")
    gra = [x.service for x in s.services if x.datacenter == "GRA" and x.kind != "switch"]
    sites = s.hosts_of("p19-web-07")
    s.metric("gra-sw-01", "bandwidth_mbps", 30.0)
    s.effect("gra-sw-01", "bandwidth_mbps", g0, g1, factor=0.0)
    baseline_series(s, ["stats-01", "www-201", *sites[:3]])
    for x in gra:
        s.fail(x, g0 + int(s.rng.integers(0, 60)), g1)
    s.fail("p19-web-07", h0 + 5, h1)
    for x in sites:
        s.fail(x, h0 + 40, h1)
    for x in sites[:3]:
        s.effect(x, "latency_ms", h0, h1, gap=True)
    cid = s.notice(
        5901,
        "Datacenter",
        "GRA power maintenance",
        "Closed",
        s.at("20:00"),
        s.at("21:00"),
        "GRA",
        "Maintenance of the power distribution of Gravelines room 2.",
    )
    s.background_releases(6, avoid=(s.at("18:00"), h1))
    return s.write(
        [
            s.truth("20:10", "external_maintenance", cid, None, "GRA power works", name="two_incidents_gra"),
            s.truth(
                "20:14", "hosting", None, "p19-web-07", "P19 host p19-web-07 fails", name="two_incidents_p19"
            ),
        ]
    )


def switch_failure(out: Path) -> ScenarioTruth:
    """Switch p19-sw-03 dies: everything on racks P19-R05/R06 goes down; a release 30 min before elsewhere."""
    s = new_scenario(out, "switch_failure", 110, "2011-12-06")
    a, b = s.at("11:31"), s.at("12:02")
    behind = s.behind("p19-sw-03")
    s.metric("p19-sw-03", "bandwidth_mbps", 45.0)
    s.metric("p19-sw-02", "bandwidth_mbps", 45.0)
    s.effect("p19-sw-03", "bandwidth_mbps", a, b, gap=True)
    baseline_series(s, [x for x in behind if x.startswith(("www-", "shop-"))][:5])
    s.fail("p19-sw-03", a + 10, b - 60, check="SNMP")
    for x in behind:
        s.fail(x, a + 40 + int(s.rng.integers(0, 40)), b)
    s.release("REL-3001", s.at("11:00"), "api", "6.4.0", "bob")
    s.background_releases(5, avoid=(s.at("10:00"), b))
    return s.write(
        s.truth(
            "11:31", "hosting", None, "p19-sw-03", "switch p19-sw-03 fails; the api release runs elsewhere"
        )
    )


def wide_release_host_failure(out: Path) -> ScenarioTruth:
    """sites 13.0.0 reaches 360 services; 3 break — all on host p19-rt-042, which failed."""
    s = new_scenario(out, "wide_release_host_failure", 111, "2012-01-17")
    for h in range(1, 101):
        rack = f"P19-R{(h - 1) % 8 + 1:02d}"
        sw = f"p19-sw-{(h - 1) % 8 // 2 + 1:02d}"
        s.add(f"p19-rt-{h:03d}", "server", "P19", rack, sw, f"p19-rt-{h:03d}", "hosting")
        for j in range(3):
            s.add(f"www-{1000 + 3 * (h - 1) + j}", "site", "P19", rack, sw, f"p19-rt-{h:03d}", "sites")
    rel, a, b = s.at("16:00"), s.at("16:02"), s.at("16:40")
    broken = s.hosts_of("p19-rt-042")
    baseline_series(s, [*broken, "www-1000", "www-1200", "www-001"])
    s.release("REL-3101", rel, "sites", "13.0.0", "carol", "release sites 13.0.0 (all shared-hosting sites)")
    s.fail("p19-rt-042", a + 10, b)
    for x in broken:
        s.fail(x, a + 45, b)
        s.effect(x, "latency_ms", a, b, gap=True)
    s.background_releases(5, avoid=(s.at("14:00"), b))
    reached = sum(1 for x in s.services if x.app == "sites")
    return s.write(
        s.truth(
            "16:02",
            "hosting",
            None,
            "p19-rt-042",
            f"the release reached {reached} services; only the 3 on the failed host p19-rt-042 broke",
        )
    )


def maintenance_other_datacenter(out: Path) -> ScenarioTruth:
    """RBX works at 09:00 while P19 api errors at 09:10: the works are not the cause; nothing is known."""
    s = new_scenario(out, "maintenance_other_datacenter", 112, "2012-02-14")
    a, b = s.at("09:10"), s.at("09:30")
    api = ["api-01", "api-02", "api-03"]
    baseline_series(s, api, "error_rate")
    baseline_series(s, ["www-101", "mail-01"])
    for x in api:
        s.effect(x, "error_rate", a, b, value=6.0)
    s.fail("api-01", a + 60, b)
    s.fail("api-03", a + 120, b, "WARNING")
    cid = s.notice(
        6020,
        "Network",
        "RBX router reboot rbx-g3",
        "Closed",
        s.at("09:00"),
        s.at("10:00"),
        "RBX",
        "We will reboot the router rbx-g3 in Roubaix.",
    )
    s.background_releases(5, avoid=(s.at("06:00"), s.at("12:00")))
    return s.write(
        s.truth(
            "09:10", "unknown", None, None, f"api errors in P19; {cid} is in RBX and changed nothing there"
        )
    )


def release_then_rollback(out: Path) -> ScenarioTruth:
    """api 4.0.0 raises errors at 10:17; the rollback at 10:35 is a reaction, not a cause."""
    s = new_scenario(out, "release_then_rollback", 113, "2012-03-13", metrics_format="csv")
    rel, a, rb, b = s.at("10:15"), s.at("10:17"), s.at("10:35"), s.at("10:37")
    api = ["api-01", "api-02", "api-03"]
    baseline_series(s, [*api, "shop-01"], "error_rate")
    for x in api:
        s.effect(x, "error_rate", a, b, value=15.0)
        s.fail(x, a + 60, b)
    s.release("REL-3301", rel, "api", "4.0.0", "dan")
    s.release("REL-3302", rb, "api", "3.9.9", "dan", "rollback api to 3.9.9")
    s.background_releases(5, avoid=(s.at("08:00"), b))
    return s.write(
        s.truth("10:17", "application_release", "REL-3301", None, "api 4.0.0; REL-3302 is its rollback")
    )


def probe_outage_network_maintenance(out: Path) -> ScenarioTruth:
    """Night works on the P19 core router: the external probe records 5 short outages."""
    s = new_scenario(out, "probe_outage_network_maintenance", 114, "2012-04-24")
    downs = [("23:05", 3), ("23:12", 2), ("23:19", 4), ("23:29", 1), ("23:36", 2)]
    outages = tuple((s.at(t), s.at(t) + 60 * m) for t, m in downs)
    s.probes.append(
        ProbeCheck(
            check_id=771201,
            name="www-001 home page",
            hostname="www-001.sites.example",
            service="www-001",
            created=s.at("12:00", -400),
            history_from=s.at("00:00", -(s.days - 1)),
            history_to=s.at("00:00", 1),
            downs=outages,
        )
    )
    for a, b in outages:
        s.fail("www-001", a, b)
    s.fail("p19-lb-01", outages[0][0] + 30, outages[-1][1])
    for sw in ("p19-sw-01", "p19-sw-02"):
        s.metric(sw, "bandwidth_mbps", 50.0)
        s.effect(sw, "bandwidth_mbps", outages[0][0], outages[-1][1], factor=0.4)
    baseline_series(s, ["www-001", "www-002"])
    cid = s.notice(
        6150,
        "Network",
        "P19 core router upgrade",
        "In progress",
        s.at("23:00"),
        s.at("01:00", 1),
        "P19",
        "Upgrade of the core routers of Paris 19. Short interruptions expected.",
    )
    s.background_releases(5, avoid=(s.at("20:00"), s.at("23:59")))
    return s.write(
        s.truth("23:05", "external_maintenance", cid, None, "P19 core router works: 5 probe outages, 12 min")
    )


SCENARIOS: dict[str, Callable[[Path], ScenarioTruth | list[ScenarioTruth]]] = {
    f.__name__: f
    for f in (
        bad_release,
        maintenance_vs_nearby_release,
        host_failure_no_change,
        delayed_release_effect,
        unexplained_anomaly,
        utc_notice_local_deploys,
        cancelled_maintenance,
        maintenance_overrun,
        two_incidents,
        switch_failure,
        wide_release_host_failure,
        maintenance_other_datacenter,
        release_then_rollback,
        probe_outage_network_maintenance,
    )
}


def truths_of(result: ScenarioTruth | list[ScenarioTruth]) -> list[ScenarioTruth]:
    return result if isinstance(result, list) else [result]


def generate_all(root: Path, names: Sequence[str] | None = None) -> dict[str, list[ScenarioTruth]]:
    """Write every scenario (or ``names``) into ``root/<name>/``."""
    unknown = sorted(set(names or ()) - set(SCENARIOS))
    if unknown:
        raise KeyError(f"unknown scenarios {unknown}; expected some of {sorted(SCENARIOS)}")
    return {n: truths_of(SCENARIOS[n](root / n)) for n in (names or SCENARIOS)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m whatchanged.data.scenarios", description=__doc__.splitlines()[0]
    )
    parser.add_argument("root", type=Path, help="folder receiving one sub-folder per scenario")
    parser.add_argument("names", nargs="*", help=f"scenarios to write [default: all {len(SCENARIOS)}]")
    args = parser.parse_args(argv)
    for name, truths in generate_all(args.root, args.names).items():
        for t in truths:
            print(f"{name:34} {t.at_local} {t.category:22} {t.change_id or t.component or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
