"""A second, independent scenario generator: small worlds with known truth.

Each world is written the way an SRE would tell an incident afterwards ("the
top-of-rack switch of r04 died at 14:31, the rack's twelve services went
dark"), then emitted as the raw files the monitoring and change systems of
such a shop would hold, in the input formats whatchanged reads: metrics as
long or wide CSV, Parquet, Prometheus ``query_range`` JSON or text
exposition; check states as a Nagios log or a Pingdom export; the inventory
as CSV; changes as a deploy log (CSV, JSON Lines, ``git log``), PagerDuty,
Datadog, Statuspage JSON, iCalendar, RSS or a works page; and, for one world,
a webhook body to POST to the running HTTP API after the metrics are in.

It shares no code and no shapes with :mod:`whatchanged.data.scenarios` or the
reference night: other inventory sizes (40, 300, 2500 services), naming
schemes (``svc-eu-17``, ``payments.api-3``, ``db_primary_3``), metric sets
(``cpu_pct``, ``http_5xx_rate``, ``p99_ms``, ``rx_bytes``), noise levels,
sampling steps (15 s, 1 min, 5 min), time zones (UTC, America/New_York,
Asia/Tokyo, Europe/Paris, across both daylight-saving changes) and missing
data.  ``docs/worlds.md`` tells each world's story and why it is realistic.

Every world is deterministic: the noise comes from a generator seeded by the
CRC-32 of the world's name, never from ``hash()``.

This module holds the worlds themselves (declarative: each tells its story with the kit);
the kit is :mod:`~whatchanged.data.world_kit` (what a world is, the fleet, the series),
the file formats :mod:`~whatchanged.data.world_formats`, and running a world end to end
:mod:`~whatchanged.data.world_run`.

Usage::

    from whatchanged.data.worlds import WORLDS, build
    world = build("tor_switch_takes_rack")
    world.write(folder)          # the raw input files
    world.truths                 # what an answer must say
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from whatchanged.data.world_formats import (
    Down,
    deploy_csv,
    deploy_jsonl,
    ical,
    ical_time,
    metrics_long_csv,
    metrics_parquet,
    metrics_prometheus_json,
    metrics_prometheus_text,
    metrics_wide_csv,
    nagios_log,
    pingdom_export,
    rfc822,
    rss,
    statuspage,
    works,
)
from whatchanged.data.world_kit import (
    Effect,
    Svc,
    Truth,
    Webhook,
    World,
    fleet,
    inventory_csv,
    iso,
    make_series,
    switches_as_services,
    utc,
)

MIN = timedelta(minutes=1)


# --------------------------------------------------------------------------- the worlds

WorldFn = Callable[[], World]
WORLDS: dict[str, WorldFn] = {}


def world(fn: WorldFn) -> WorldFn:
    WORLDS[fn.__name__.removeprefix("w_")] = fn
    return fn


def build(name: str) -> World:
    return WORLDS[name]()


def all_truths() -> list[tuple[str, Truth]]:
    return [(name, t) for name in sorted(WORLDS) for t in build(name).truths]


def _eu(n: int = 40) -> list[Svc]:
    """40 services ``svc-eu-NN`` in GRA and SBG, 8 to a rack, 2 to a host."""
    return fleet(
        n,
        name=lambda i: f"svc-eu-{i + 1:02d}",
        dcs=("GRA", "SBG"),
        per_rack=8,
        per_host=2,
        apps=("web", "api", "search", "checkout", "mail"),
        rack_name=lambda dc, r: f"{dc.lower()}-r{r:02d}",
        switch_name=lambda dc, r: f"{dc.lower()}-r{r:02d}-sw",
        host_name=lambda dc, h: f"{dc.lower()}-h{h:02d}",
    )


def _of(svcs: Sequence[Svc], pred: Callable[[Svc], bool]) -> tuple[str, ...]:
    return tuple(s.name for s in svcs if pred(s))


@world
def w_host_dies_no_change() -> World:
    """A host dies in the small hours; nothing was released, nothing announced."""
    name, tz = "host_dies_no_change", "UTC"
    svcs = _eu()
    start, onset = utc(tz, "2026-02-03 22:00"), utc(tz, "2026-02-04 03:12")
    back, end = onset + 36 * MIN, utc(tz, "2026-02-04 05:00")
    victims = _of(svcs, lambda s: s.host == "gra-h07")
    names = [s.name for s in svcs]
    series = make_series(
        name,
        names,
        ["cpu_pct", "http_5xx_rate", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[Effect(victims, ("cpu_pct", "http_5xx_rate", "p99_ms"), onset, back, "gap")],
    )
    downs = [Down(v, onset, back) for v in victims]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/node.csv": metrics_long_csv(series, zone=None),
        "nagios/nagios.log": nagios_log(downs, oks=names, since=start),
    }
    truth = Truth(name, "", onset + 3 * MIN, tz, "hosting", "gra-h07", onset, 1, also=victims)
    return World(
        name, "gra-h07 (two services) powers off at 03:12 UTC; no change anywhere.", tz, files, [truth]
    )


def _payments(n: int = 300) -> list[Svc]:
    apps = ("payments", "ledger", "fraud", "accounts", "notify", "gateway")
    return fleet(
        n,
        name=lambda i: f"{apps[i % len(apps)]}.api-{i // len(apps) + 1}",
        dcs=("NYC2", "NYC3"),
        per_rack=12,
        per_host=3,
        apps=apps,
        rack_name=lambda dc, r: f"{dc.lower()}-r{r:02d}",
        switch_name=lambda dc, r: f"{dc.lower()}-r{r:02d}-tor",
        host_name=lambda dc, h: f"{dc.lower()}-node{h:03d}",
    )


@world
def w_tor_switch_takes_rack() -> World:
    """The top-of-rack switch of nyc2-r04 dies; the rack's twelve services are unreachable."""
    name, tz = "tor_switch_takes_rack", "America/New_York"
    svcs = _payments()
    sw = switches_as_services(svcs)
    start, onset = utc(tz, "2026-01-14 09:00"), utc(tz, "2026-01-14 14:31")
    back, end = onset + 42 * MIN, utc(tz, "2026-01-14 16:00")
    rack = _of(svcs, lambda s: s.rack == "nyc2-r04")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["p99_ms", "rx_bytes"],
        start,
        end,
        60,
        tz=tz,
        effects=[Effect(rack, ("p99_ms", "rx_bytes"), onset, back, "gap")],
    )
    downs = [Down("nyc2-r04-tor", onset - 30 * timedelta(seconds=1), back, host_alert="DOWN")]
    downs += [Down(v, onset + timedelta(seconds=20), back, host_alert="UNREACHABLE") for v in rack]
    files = {
        "inventory/services.csv": inventory_csv([*svcs, *sw]),
        "nagios/nagios.log": nagios_log(downs, since=start),
        **{f"prometheus/{k}": v for k, v in metrics_prometheus_json(series).items()},
    }
    truth = Truth(name, "", onset + 4 * MIN, tz, "hosting", "nyc2-r04-tor", onset, 1, also=("nyc2-r04",))
    return World(
        name,
        "ToR switch nyc2-r04-tor fails at 14:31 EST; rack r04 (12 services) dark 42 min.",
        tz,
        files,
        [truth],
    )


def _snake(n: int = 40) -> list[Svc]:
    apps = ("search_api", "db_primary", "cart_api", "auth_api", "media_api")
    return fleet(
        n,
        name=lambda i: f"{apps[i % len(apps)]}_{i // len(apps) + 1}",
        dcs=("RBX",),
        per_rack=10,
        per_host=2,
        apps=apps,
        rack_name=lambda _dc, r: f"rbx-b{r:02d}",
        switch_name=lambda _dc, r: f"rbx-b{r:02d}-sw1",
        host_name=lambda _dc, h: f"rbx-srv-{h:03d}",
    )


@world
def w_release_breaks_touched_services() -> World:
    """A search release ships at 11:02 and only the services it reached start failing."""
    name, tz = "release_breaks_touched_services", "Europe/Paris"
    svcs = _snake()
    start, onset = utc(tz, "2026-06-10 06:00"), utc(tz, "2026-06-10 11:04")
    end = utc(tz, "2026-06-10 12:30")
    touched = _of(svcs, lambda s: s.app == "search_api")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms", "cpu_pct"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(touched, ("http_5xx_rate",), onset, end, "set", 18.0),
            Effect(touched, ("p99_ms",), onset, end, "mul", 2.2),
        ],
    )
    deploys = [
        {
            "id": "REL-2203",
            "timestamp": iso(utc(tz, "2026-06-10 08:40"), tz),
            "service": "auth_api",
            "version": "2.9.1",
            "author": "marie",
            "description": "token cache TTL",
            "environment": "prod",
        },
        {
            "id": "REL-2207",
            "timestamp": iso(utc(tz, "2026-06-10 10:31"), tz),
            "service": "media_api",
            "version": "1.14.0",
            "author": "yann",
            "description": "thumbnail sizes",
            "environment": "prod",
        },
        {
            "id": "REL-2211",
            "timestamp": iso(utc(tz, "2026-06-10 11:02"), tz),
            "service": "search_api",
            "version": "5.4.0",
            "author": "lea",
            "description": "new query parser",
            "environment": "prod",
            "end": iso(utc(tz, "2026-06-10 11:03"), tz),
        },
    ]
    probe = (7101, "search https", "search_api_1", [(onset + 2 * MIN, onset + 19 * MIN)])
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/app.csv": metrics_wide_csv(series),
        "changes/deploys.csv": deploy_csv(deploys),
        **pingdom_export([probe], since=start, until=end),
    }
    truth = Truth(name, "", onset + 5 * MIN, tz, "application_release", "REL-2211", onset, 1)
    return World(
        name, "search_api 5.4.0 (REL-2211) at 11:02 CEST: 5xx on its 8 services only.", tz, files, [truth]
    )


@world
def w_config_change_rolled_back() -> World:
    """A connection-pool config change breaks the gateway; it is rolled back 25 minutes later."""
    name, tz = "config_change_rolled_back", "UTC"
    svcs = _eu()
    start, change = utc(tz, "2026-03-18 11:00"), utc(tz, "2026-03-18 16:40")
    onset, rollback, end = change + MIN, change + 25 * MIN, utc(tz, "2026-03-18 18:00")
    touched = _of(svcs, lambda s: s.app == "checkout")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(touched, ("http_5xx_rate",), onset, rollback + 2 * MIN, "set", 9.0),
            Effect(touched, ("p99_ms",), onset, rollback + 2 * MIN, "mul", 3.0),
        ],
    )
    log = [
        {
            "id": "DEP-5120",
            "timestamp": iso(utc(tz, "2026-03-18 13:15"), tz),
            "service": "web",
            "version": "41.2",
            "author": "ci",
            "description": "",
            "kind": "deploy",
        },
        {
            "id": "CFG-88",
            "timestamp": iso(change, tz),
            "service": "checkout",
            "version": "",
            "author": "tom",
            "description": "checkout pool: max_idle 50 -> 5, timeout 30s -> 2s",
            "kind": "config",
        },
        {
            "id": "CFG-89",
            "timestamp": iso(rollback, tz),
            "service": "checkout",
            "version": "",
            "author": "tom",
            "description": "revert CFG-88",
            "kind": "config",
        },
    ]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/checkout.csv": metrics_long_csv(series, zone=tz),
        "changes/ops.jsonl": deploy_jsonl(log),
    }
    truth = Truth(name, "", onset + 4 * MIN, tz, "application_release", "CFG-88", onset, 0)
    return World(
        name,
        "config CFG-88 on checkout at 16:40 UTC, errors at 16:41, reverted (CFG-89) at 17:05.",
        tz,
        files,
        [truth],
    )


@world
def w_release_and_maintenance_release_did_it() -> World:
    """Storage firmware works on all of GRA and a checkout release in the same hour: checkout breaks."""
    name, tz = "release_and_maintenance_release_did_it", "Europe/Paris"
    svcs = _eu()
    start, onset = utc(tz, "2026-05-12 05:00"), utc(tz, "2026-05-12 10:17")
    end = utc(tz, "2026-05-12 12:30")
    touched = _of(svcs, lambda s: s.app == "checkout" and s.dc == "GRA")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms", "rx_bytes"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(touched, ("http_5xx_rate",), onset, end, "set", 12.0),
            Effect(touched, ("p99_ms",), onset, end, "mul", 1.8),
        ],
    )
    deploys = [
        {
            "id": "REL-77",
            "timestamp": "2026-05-12 10:15",
            "service": "checkout",
            "version": "3.2.0",
            "author": "sam",
            "description": "payment retries",
            "environment": "prod",
        },
    ]
    notice = works(
        [
            {
                "id": "FS#9051",
                "title": "Hosting:: GRA storage array firmware upgrade",
                "status": "In progress",
                "start": "2026-05-12 10:00",
                "end": "2026-05-12 12:00",
                "updated": "2026-05-12 10:01",
                "dc": "GRA",
                "description": "Rolling firmware upgrade of the GRA storage arrays. Redundancy reduced, no impact expected.",
            }
        ]
    )
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.parquet": metrics_parquet(series),
        "changes/deploys.csv": deploy_csv(deploys),
        "changes/provider.works.txt": notice,
    }
    truth = Truth(name, "", onset + 3 * MIN, tz, "application_release", "REL-77", onset, 0)
    return World(
        name,
        "FS#9051 covers all GRA 10:00–12:00; REL-77 checkout at 10:15 breaks the 4 GRA checkout services.",
        tz,
        files,
        [truth],
    )


@world
def w_release_and_maintenance_maintenance_did_it() -> World:
    """Switch works on one rack and a billing release in the same hour: the rack loses its network."""
    name, tz = "release_and_maintenance_maintenance_did_it", "Europe/Paris"
    svcs = _eu()
    start, onset = utc(tz, "2026-09-22 09:00"), utc(tz, "2026-09-22 14:06")
    back, end = onset + 31 * MIN, utc(tz, "2026-09-22 15:30")
    rack = _of(svcs, lambda s: s.rack == "gra-r02")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["rx_bytes", "p99_ms", "http_5xx_rate"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(rack, ("rx_bytes",), onset, back, "mul", 0.08),
            Effect(rack, ("p99_ms",), onset, back, "mul", 6.0),
        ],
    )
    event = {
        "SUMMARY": "Planned work: replacement of switch gra-r02-sw",
        "DTSTART": ical_time(utc(tz, "2026-09-22 14:00")),
        "DTEND": ical_time(utc(tz, "2026-09-22 15:00")),
        "DTSTAMP": "20260915T081500Z",
        "UID": "mx-2026-0311@noc.cloud.example",
        "SEQUENCE": "1",
        "X-MAINTNOTE-PROVIDER": "cloud.example",
        "X-MAINTNOTE-MAINTENANCE-ID": "MX-2026-0311",
        "X-MAINTNOTE-IMPACT": "OUTAGE",
        "X-MAINTNOTE-OBJECT-ID;X-MAINTNOTE-OBJECT-IMPACT=OUTAGE": "gra-r02-sw",
        "X-MAINTNOTE-STATUS": "CONFIRMED",
        "ORGANIZER;CN=NOC": "mailto:noc@cloud.example",
    }
    deploys = [
        {
            "id": "REL-80",
            "timestamp": iso(utc(tz, "2026-09-22 14:05"), "UTC"),
            "service": "checkout",
            "version": "3.3.0",
            "author": "sam",
            "description": "invoice pdf",
            "environment": "prod",
        },
    ]
    probes = [(7201, "www gra", rack[0], [(onset + MIN, back - MIN)])]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone="UTC"),
        "changes/deploys.csv": deploy_csv(deploys),
        "changes/noc.ics": ical([event]),
        **pingdom_export(probes, since=start, until=end),
    }
    truth = Truth(
        name, "", onset + 3 * MIN, tz, "external_maintenance", "cloud.example:MX-2026-0311", onset, 1
    )
    return World(
        name,
        "MX-2026-0311 replaces gra-r02-sw 14:00–15:00; REL-80 checkout at 14:05; the rack drops at 14:06.",
        tz,
        files,
        [truth],
    )


@world
def w_webhook_deploy_minutes_late() -> World:
    """The deploy event reaches whatchanged by webhook seven minutes after the errors began."""
    name, tz = "webhook_deploy_minutes_late", "UTC"
    svcs = _eu()
    start, created = utc(tz, "2026-04-07 04:00"), utc(tz, "2026-04-07 09:58")
    onset, end = utc(tz, "2026-04-07 10:02"), utc(tz, "2026-04-07 10:30")
    touched = _of(svcs, lambda s: s.app == "api")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[Effect(touched, ("http_5xx_rate",), onset, end, "set", 25.0)],
    )

    def status(state: str, at: datetime, sid: int) -> dict[str, Any]:
        return {
            "action": "created",
            "deployment_status": {
                "id": sid,
                "state": state,
                "environment": "production",
                "description": f"rollout {state}",
                "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "deployment": {
                "id": 7001,
                "sha": "4be1c0de5a1f2b3c4d5e6f708192a3b4c5d6e7f8",
                "ref": "v8.1.0",
                "task": "deploy",
                "environment": "production",
                "payload": {"service": "api"},
                "creator": {"login": "deploybot"},
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "repository": {"full_name": "acme/api"},
        }

    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/api.parquet": metrics_parquet(series),
    }
    hooks = [
        Webhook("github", status("in_progress", created, 1)),
        Webhook("github", status("success", onset - MIN, 2)),
    ]
    truth = Truth(name, "", onset + 6 * MIN, tz, "application_release", "github:acme/api#7001", onset, 0)
    return World(
        name,
        "api v8.1.0 rolled out 09:58–10:01 UTC, 5xx at 10:02, deployment_status arrives after.",
        tz,
        files,
        [truth],
        hooks,
    )


@world
def w_notice_scope_only_in_title() -> World:
    """An emergency network maintenance whose only scope is 'SBG' in the RSS item's title."""
    name, tz = "notice_scope_only_in_title", "Europe/Paris"
    svcs = _eu()
    start, onset = utc(tz, "2026-11-19 17:00"), utc(tz, "2026-11-19 22:09")
    back, end = onset + 27 * MIN, utc(tz, "2026-11-19 23:30")
    sbg = _of(svcs, lambda s: s.dc == "SBG")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["rx_bytes", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(sbg, ("rx_bytes",), onset, back, "mul", 0.3),
            Effect(sbg, ("p99_ms",), onset, back, "mul", 4.0),
        ],
    )
    a, b = utc(tz, "2026-11-19 22:00"), utc(tz, "2026-11-19 23:00")
    body = (
        f"&lt;p&gt;&lt;small&gt;{a.strftime('%b %d, %H:%M')} - {b.strftime('%H:%M')} UTC&lt;/small&gt;&lt;br&gt;"
        "&lt;strong&gt;Scheduled&lt;/strong&gt; - We will be performing emergency work on a core router. "
        "Short packet loss is expected.&lt;/p&gt;"
    )
    item = {
        "title": "Emergency network maintenance SBG",
        "link": "https://status.cloud.example/incidents/q81zz",
        "guid": "https://status.cloud.example/incidents/q81zz",
        "pubDate": rfc822(a - 50 * MIN),
        "description": body,
    }
    probes = [(7301, "sbg lb", sbg[0], [(onset + MIN, back)])]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone=tz),
        "changes/status.rss": rss("Example Cloud status", [item]),
        **pingdom_export(probes, since=start, until=end),
    }
    truth = Truth(
        name,
        "",
        onset + 3 * MIN,
        tz,
        "external_maintenance",
        "feed:https://status.cloud.example/incidents/q81zz",
        onset,
        1,
    )
    return World(
        name,
        "RSS 'Emergency network maintenance SBG' 21:00–22:00 UTC; SBG loses packets at 22:09 CET.",
        tz,
        files,
        [truth],
    )


@world
def w_notice_names_unlisted_datacenter() -> World:
    """A provider outside the built-in list names its datacenter ('FSN1') only in the notice text."""
    name, tz = "notice_names_unlisted_datacenter", "Europe/Paris"
    svcs = fleet(
        40,
        name=lambda i: f"svc-de-{i + 1:02d}",
        dcs=("FSN1", "NBG1"),
        per_rack=10,
        per_host=2,
        apps=("web", "api", "worker", "db"),
        rack_name=lambda dc, r: f"{dc.lower()}-rack{r}",
        switch_name=lambda dc, r: f"{dc.lower()}-rack{r}-sw",
        host_name=lambda dc, h: f"{dc.lower()}-ax{h:02d}",
    )
    start, onset = utc(tz, "2026-08-05 01:00"), utc(tz, "2026-08-05 06:12")
    back, end = onset + 18 * MIN, utc(tz, "2026-08-05 07:30")
    fsn = _of(svcs, lambda s: s.dc == "FSN1")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["rx_bytes", "p99_ms", "cpu_pct"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(fsn, ("rx_bytes",), onset, back, "mul", 0.1),
            Effect(fsn, ("p99_ms",), onset, back, "mul", 5.0),
        ],
    )
    event = {
        "SUMMARY": "Network maintenance in FSN1: core router software update",
        "DESCRIPTION": "During the window the uplinks of FSN1 will be switched over. Expect up to 20 minutes of reduced connectivity.",
        "DTSTART;TZID=Europe/Berlin": "20260805T060000",
        "DTEND;TZID=Europe/Berlin": "20260805T070000",
        "DTSTAMP": "20260729T120000Z",
        "UID": "nm-20260805-fsn1@status.host.example",
        "STATUS": "CONFIRMED",
    }
    probes = [(7401, "fsn1 web", fsn[0], [(onset + MIN, back)])]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone="UTC"),
        "changes/host-maintenance.ics": ical([event]),
        **pingdom_export(probes, since=start, until=end),
    }
    truth = Truth(
        name,
        "",
        onset + 3 * MIN,
        tz,
        "external_maintenance",
        "ical:nm-20260805-fsn1@status.host.example",
        onset,
        1,
    )
    return World(
        name,
        "iCal 'Network maintenance in FSN1' 06:00–07:00 Berlin; FSN1 degraded from 06:12.",
        tz,
        files,
        [truth],
    )


def _tokyo(n: int = 300) -> list[Svc]:
    return fleet(
        n,
        name=lambda i: f"svc-ap-{i + 1:03d}",
        dcs=("SGP", "SYD"),
        per_rack=15,
        per_host=3,
        apps=("storefront", "catalog", "ranking", "recommend", "images"),
        rack_name=lambda dc, r: f"{dc.lower()}-{r:02d}",
        switch_name=lambda dc, r: f"{dc.lower()}-{r:02d}-leaf",
        host_name=lambda dc, h: f"{dc.lower()}-bm{h:03d}",
    )


@world
def w_gap_inside_incident() -> World:
    """Provider works in SGP; two probe outages; the metrics collector itself loses 12 minutes mid-incident."""
    name, tz = "gap_inside_incident", "Asia/Tokyo"
    svcs = _tokyo()
    start, onset = utc(tz, "2026-07-02 20:00"), utc(tz, "2026-07-03 02:21")
    end = utc(tz, "2026-07-03 04:00")
    sgp = _of(svcs, lambda s: s.dc == "SGP")
    names = [s.name for s in svcs]
    series = make_series(
        name,
        names,
        ["rx_bytes", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(sgp, ("rx_bytes",), onset, onset + 45 * MIN, "mul", 0.35),
            Effect(sgp, ("p99_ms",), onset, onset + 45 * MIN, "mul", 3.5),
            Effect(tuple(names), ("rx_bytes", "p99_ms"), onset + 19 * MIN, onset + 31 * MIN, "gap"),
        ],
    )
    mx = {
        "id": "r5t0vq2k",
        "name": "SGP network maintenance",
        "status": "in_progress",
        "impact": "maintenance",
        "created_at": iso(utc(tz, "2026-06-30 10:00"), tz),
        "updated_at": iso(utc(tz, "2026-07-03 02:00"), tz),
        "scheduled_for": iso(utc(tz, "2026-07-03 02:00"), tz),
        "scheduled_until": iso(utc(tz, "2026-07-03 04:00"), tz),
        "resolved_at": None,
        "shortlink": "https://stspg.io/r5t0",
        "incident_updates": [
            {
                "status": "in_progress",
                "body": "Maintenance is in progress.",
                "created_at": iso(utc(tz, "2026-07-03 02:00"), tz),
            },
            {
                "status": "scheduled",
                "body": "Line cards of the aggregation routers will be replaced. Brief interruptions are expected.",
                "created_at": iso(utc(tz, "2026-06-30 10:00"), tz),
            },
        ],
        "components": [{"id": "c0sgp", "name": "Singapore (SGP)"}],
    }
    probes = [
        (7501, "shop sgp", sgp[0], [(onset, onset + 14 * MIN), (onset + 34 * MIN, onset + 44 * MIN)]),
        (7502, "api sgp", sgp[1], [(onset + MIN, onset + 13 * MIN), (onset + 35 * MIN, onset + 43 * MIN)]),
    ]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone=tz),
        "changes/scheduled-maintenances.json": statuspage("Asia/Singapore", maintenances=[mx]),
        **pingdom_export(probes, since=start, until=end),
    }
    truth = Truth(name, "", onset + 5 * MIN, tz, "external_maintenance", "statuspage:r5t0vq2k", onset, 2)
    return World(
        name,
        "SGP works 02:00–04:00 JST; outages 02:21 and 02:55; no metrics 02:40–02:52 anywhere.",
        tz,
        files,
        [truth],
    )


@world
def w_traffic_surge_no_cause() -> World:
    """A marketing push triples traffic across the whole fleet: every service is busier, nothing changed."""
    name, tz = "traffic_surge_no_cause", "America/New_York"
    svcs = _payments()
    names = [s.name for s in svcs]
    start, onset = utc(tz, "2026-11-27 03:00"), utc(tz, "2026-11-27 08:00")
    end = utc(tz, "2026-11-27 09:00")
    series = make_series(
        name,
        names,
        ["rx_bytes", "cpu_pct", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(tuple(names), ("rx_bytes",), onset, end, "mul", 2.8),
            Effect(tuple(names), ("cpu_pct",), onset, end, "mul", 2.0),
            Effect(tuple(names), ("p99_ms",), onset, end, "mul", 1.4),
        ],
    )
    deploys = [
        {
            "id": "rel-1127-01",
            "timestamp": iso(utc(tz, "2026-11-27 03:10"), tz),
            "service": "notify.api-2",
            "version": "12.0.3",
            "author": "kim",
            "description": "template fix",
            "environment": "prod",
        },
    ]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_wide_csv(series),
        "changes/deploys.csv": deploy_csv(deploys),
    }
    truth = Truth(name, "", onset + 15 * MIN, tz, "unknown", None, onset, 0)
    return World(
        name,
        "Black Friday 08:00 EST: traffic ×2.8 on all 300 services; one unrelated deploy at 03:10.",
        tz,
        files,
        [truth],
    )


@world
def w_provider_incident_statuspage() -> World:
    """The provider declares an incident (not maintenance) on BHS connectivity, back-dated to its start."""
    name, tz = "provider_incident_statuspage", "Europe/Paris"
    svcs = fleet(
        40,
        name=lambda i: f"svc-ca-{i + 1:02d}",
        dcs=("BHS", "GRA"),
        per_rack=10,
        per_host=2,
        apps=("web", "api", "search", "mail"),
        rack_name=lambda dc, r: f"{dc.lower()}-r{r}",
        switch_name=lambda dc, r: f"{dc.lower()}-r{r}-sw",
        host_name=lambda dc, h: f"{dc.lower()}-h{h:02d}",
    )
    start, onset = utc(tz, "2026-04-21 10:00"), utc(tz, "2026-04-21 15:04")
    back, end = onset + 38 * MIN, utc(tz, "2026-04-21 16:30")
    bhs = _of(svcs, lambda s: s.dc == "BHS")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["rx_bytes", "p99_ms", "http_5xx_rate"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(bhs, ("rx_bytes",), onset, back, "mul", 0.4),
            Effect(bhs, ("p99_ms",), onset, back, "mul", 3.0),
        ],
    )
    inc = {
        "id": "yx3kq9f2",
        "name": "Degraded network connectivity in BHS",
        "status": "resolved",
        "impact": "major",
        "created_at": iso(onset + 9 * MIN, "Europe/Paris"),
        "started_at": iso(onset, "Europe/Paris"),
        "updated_at": iso(back + 5 * MIN, "Europe/Paris"),
        "resolved_at": iso(back, "Europe/Paris"),
        "shortlink": "https://stspg.io/yx3k",
        "incident_updates": [
            {
                "status": "resolved",
                "body": "Connectivity is back to normal.",
                "created_at": iso(back + 5 * MIN, "Europe/Paris"),
            },
            {
                "status": "identified",
                "body": "A faulty optic on an uplink of BHS has been isolated.",
                "created_at": iso(onset + 25 * MIN, "Europe/Paris"),
            },
            {
                "status": "investigating",
                "body": "We are seeing packet loss towards Beauharnois.",
                "created_at": iso(onset + 9 * MIN, "Europe/Paris"),
            },
        ],
        "components": [{"id": "cbhs", "name": "Beauharnois (BHS)"}],
    }
    probes = [(7601, "ca web", bhs[0], [(onset + MIN, back - MIN)])]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone=tz),
        "changes/incidents.json": statuspage("Europe/Paris", incidents=[inc]),
        **pingdom_export(probes, since=start, until=end),
    }
    truth = Truth(name, "", onset + 3 * MIN, tz, "external_maintenance", "statuspage:yx3kq9f2", onset, 1)
    return World(
        name,
        "Statuspage incident 'Degraded network connectivity in BHS', started 15:04, posted 15:13.",
        tz,
        files,
        [truth],
    )


@world
def w_maintenance_overran() -> World:
    """Announced 01:00–02:00; the provider posts 'taking longer than expected'; RBX breaks at 02:10."""
    name, tz = "maintenance_overran", "Europe/Paris"
    svcs = _snake()
    start, onset = utc(tz, "2026-06-24 20:00"), utc(tz, "2026-06-25 02:10")
    back, end = utc(tz, "2026-06-25 02:44"), utc(tz, "2026-06-25 03:30")
    names = [s.name for s in svcs]
    hit = names[:20]
    series = make_series(
        name,
        names,
        ["rx_bytes", "p99_ms", "cpu_pct"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(tuple(hit), ("rx_bytes",), onset, back, "mul", 0.2),
            Effect(tuple(hit), ("p99_ms",), onset, back, "mul", 4.0),
        ],
    )
    mx = {
        "id": "k9w2c1mx",
        "name": "FS#8830 — RBX core router upgrade",
        "status": "completed",
        "impact": "maintenance",
        "created_at": "2026-06-20T10:00:00+02:00",
        "updated_at": "2026-06-25T02:50:00+02:00",
        "scheduled_for": "2026-06-25T01:00:00+02:00",
        "scheduled_until": "2026-06-25T02:00:00+02:00",
        "resolved_at": "2026-06-25T02:50:00+02:00",
        "incident_updates": [
            {
                "status": "completed",
                "body": "The maintenance is complete.",
                "created_at": "2026-06-25T02:50:00+02:00",
            },
            {
                "status": "in_progress",
                "body": "The upgrade is taking longer than expected; the window is extended until 03:00.",
                "created_at": "2026-06-25T02:04:00+02:00",
            },
            {
                "status": "in_progress",
                "body": "Scheduled maintenance is currently in progress.",
                "created_at": "2026-06-25T01:00:00+02:00",
            },
            {
                "status": "scheduled",
                "body": "The RBX core routers will be upgraded one at a time.",
                "created_at": "2026-06-20T10:00:00+02:00",
            },
        ],
        "components": [{"id": "crbx", "name": "Roubaix (RBX)"}],
    }
    probes = [(7701, "rbx front", hit[0], [(onset + MIN, back)])]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone=tz),
        "changes/scheduled-maintenances.json": statuspage("Europe/Paris", maintenances=[mx]),
        **pingdom_export(probes, since=start, until=end),
    }
    truth = Truth(name, "", onset + 2 * MIN, tz, "external_maintenance", "ovh:FS#8830", onset, 1)
    return World(
        name,
        "FS#8830 announced 01:00–02:00 CEST, extended at 02:04, completed 02:50; RBX breaks 02:10.",
        tz,
        files,
        [truth],
    )


@world
def w_two_incidents_one_datacenter() -> World:
    """In WAW a database host dies at 10:00, and at 10:12 the provider's switch works on another rack begin."""
    name, tz = "two_incidents_one_datacenter", "UTC"
    apps = ("db_primary", "db_replica", "queue_worker", "web_front", "cache_node")
    svcs = fleet(
        300,
        name=lambda i: f"{apps[i % len(apps)]}_{i // len(apps) + 1}",
        dcs=("WAW",),
        per_rack=20,
        per_host=3,
        apps=apps,
        rack_name=lambda _dc, r: f"waw-b{r:02d}",
        switch_name=lambda _dc, r: f"waw-b{r:02d}-sw1",
        host_name=lambda _dc, h: f"waw-h-{h:03d}",
    )
    start, a_on = utc(tz, "2026-10-06 04:00"), utc(tz, "2026-10-06 10:00")
    a_back, b_on = a_on + 30 * MIN, utc(tz, "2026-10-06 10:12")
    b_back, end = b_on + 28 * MIN, utc(tz, "2026-10-06 11:30")
    host = next(s.host for s in svcs if s.name == "db_primary_3")
    on_host = _of(svcs, lambda s: s.host == host)
    rack = _of(svcs, lambda s: s.rack == "waw-b07")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["cpu_pct", "p99_ms", "rx_bytes"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(on_host, ("cpu_pct", "p99_ms", "rx_bytes"), a_on, a_back, "gap"),
            Effect(rack, ("rx_bytes",), b_on, b_back, "mul", 0.05),
            Effect(rack, ("p99_ms",), b_on, b_back, "mul", 8.0),
        ],
    )
    downs = [Down(s, a_on, a_back) for s in on_host] + [Down(s, b_on + MIN, b_back) for s in rack]
    notice = works(
        [
            {
                "id": "FS#9120",
                "title": "Network:: WAW rack b07 switch replacement",
                "status": "In progress",
                "start": "2026-10-06 10:10",
                "end": "2026-10-06 11:00",
                "updated": "2026-10-06 10:09",
                "dc": "WAW",
                "description": "Replacement of the faulty switch waw-b07-sw1. The servers of rack b07 will lose connectivity.",
            }
        ]
    )
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/waw.parquet": metrics_parquet(series),
        "nagios/nagios.log": nagios_log(downs, since=start),
        "changes/travaux.works.txt": notice,
    }
    truths = [
        Truth(name, "db", a_on + 2 * MIN, tz, "hosting", host, a_on, 1, also=on_host),
        Truth(name, "rack", b_on + 3 * MIN, tz, "external_maintenance", "ovh:FS#9120", b_on, 1),
    ]
    return World(
        name,
        f"{host} (db_primary_3) dies at 10:00 UTC; FS#9120 takes rack b07 off at 10:12.",
        tz,
        files,
        truths,
    )


@world
def w_dst_autumn_paris_release() -> World:
    """On the night the clocks go back, a release logged in Paris wall time breaks the cart."""
    name, tz = "dst_autumn_paris_release", "Europe/Paris"
    svcs = _snake()
    start, end = datetime(2026, 10, 24, 21, 0, tzinfo=UTC), datetime(2026, 10, 25, 4, 0, tzinfo=UTC)
    rel = utc(tz, "2026-10-25 03:20")  # after the fold: 02:20 UTC
    onset = rel + 2 * MIN
    touched = _of(svcs, lambda s: s.app == "cart_api")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[Effect(touched, ("http_5xx_rate",), onset, end, "set", 15.0)],
    )
    deploys = [
        {
            "id": "REL-1025-1",
            "timestamp": "2026-10-24 23:40",
            "service": "media_api",
            "version": "1.15.0",
            "author": "noe",
            "description": "",
            "environment": "prod",
        },
        {
            "id": "REL-1025-2",
            "timestamp": "2026-10-25 03:20",
            "service": "cart_api",
            "version": "7.0.0",
            "author": "noe",
            "description": "price rounding",
            "environment": "prod",
        },
    ]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/app.parquet": metrics_parquet(series),
        "changes/deploys.csv": deploy_csv(deploys),
    }
    truth = Truth(name, "", onset + 4 * MIN, tz, "application_release", "REL-1025-2", onset, 0)
    return World(
        name,
        "cart_api 7.0.0 at 03:20 CET (after the 03:00→02:00 fold), logged without offset.",
        tz,
        files,
        [truth],
    )


@world
def w_dst_spring_new_york_maintenance() -> World:
    """The carrier's edge work is announced in New York time on the morning the clocks go forward."""
    name, tz = "dst_spring_new_york_maintenance", "America/New_York"
    svcs = fleet(
        24,
        name=lambda i: f"edge-{i + 1:02d}",
        dcs=("NYC2",),
        per_rack=12,
        per_host=4,
        apps=("cdn", "api"),
        rack_name=lambda _dc, r: f"nyc2-r{r}",
        switch_name=lambda _dc, r: f"nyc2-edge-sw{r}",
        host_name=lambda _dc, h: f"nyc2-e{h:02d}",
    )
    start, end = datetime(2026, 3, 8, 4, 30, tzinfo=UTC), datetime(2026, 3, 8, 8, 15, tzinfo=UTC)
    onset = utc(tz, "2026-03-08 03:31")  # EDT: 07:31 UTC
    back = onset + 24 * MIN
    rack = _of(svcs, lambda s: s.switch == "nyc2-edge-sw1")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["rx_bytes", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(rack, ("rx_bytes",), onset, back, "mul", 0.15),
            Effect(rack, ("p99_ms",), onset, back, "mul", 4.0),
        ],
    )
    event = {
        "SUMMARY": "Scheduled maintenance: edge switch nyc2-edge-sw1 firmware",
        "DTSTART;TZID=America/New_York": "20260308T033000",
        "DTEND;TZID=America/New_York": "20260308T050000",
        "DTSTAMP": "20260301T140000Z",
        "UID": "CHG0042117@carrier.example",
        "SEQUENCE": "0",
        "X-MAINTNOTE-PROVIDER": "carrier.example",
        "X-MAINTNOTE-MAINTENANCE-ID": "CHG0042117",
        "X-MAINTNOTE-IMPACT": "DEGRADED",
        "X-MAINTNOTE-OBJECT-ID": "nyc2-edge-sw1",
        "X-MAINTNOTE-STATUS": "CONFIRMED",
    }
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/edge.prom": metrics_prometheus_text(series),
        "changes/carrier.ics": ical([event]),
    }
    truth = Truth(
        name, "", onset + 3 * MIN, tz, "external_maintenance", "carrier.example:CHG0042117", onset, 0
    )
    return World(
        name,
        "CHG0042117 03:30–05:00 EDT on 8 March (clocks 02:00→03:00); sw1's 12 services degraded 03:31.",
        tz,
        files,
        [truth],
    )


@world
def w_big_fleet_gitlog_release() -> World:
    """2500 services on 5-minute metrics; a ranking release (git log, trailer) breaks its 500 services."""
    name, tz = "big_fleet_gitlog_release", "Asia/Tokyo"
    svcs = fleet(
        2500,
        name=lambda i: f"svc-ap-{i + 1:04d}",
        dcs=("SGP", "SYD"),
        per_rack=25,
        per_host=5,
        apps=("storefront", "catalog", "ranking", "recommend", "images"),
        rack_name=lambda dc, r: f"{dc.lower()}-{r:03d}",
        switch_name=lambda dc, r: f"{dc.lower()}-{r:03d}-leaf",
        host_name=lambda dc, h: f"{dc.lower()}-bm{h:04d}",
    )
    start, rel = utc(tz, "2026-02-16 13:00"), utc(tz, "2026-02-16 18:42")
    onset, end = utc(tz, "2026-02-16 18:45"), utc(tz, "2026-02-16 20:00")
    touched = _of(svcs, lambda s: s.app == "ranking")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms"],
        start,
        end,
        300,
        tz=tz,
        effects=[
            Effect(touched, ("http_5xx_rate",), onset, end, "set", 8.0),
            Effect(touched, ("p99_ms",), onset, end, "mul", 1.7),
        ],
    )
    sha1, sha2 = "9c1f0e2d3b4a5968778695a4b3c2d1e0f9a8b7c6", "1d2c3b4a59687766554433221100ffeeddccbbaa"
    log = (
        f"{sha1}\t{iso(rel, tz)}\thiro\ttag: deploy/prod/ranking/{rel.strftime('%Y%m%dT%H%MZ')}\tranking\tMerge !2231 boost fresh items\n"
        f"{sha2}\t{iso(utc(tz, '2026-02-16 14:05'), tz)}\taya\t\tcatalog\tMerge !2224 facet cache\n"
    ).encode()
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_wide_csv(series),
        "changes/monorepo.gitlog": log,
    }
    truth = Truth(name, "", onset + 10 * MIN, tz, "application_release", f"git:{sha1}", onset, 0)
    return World(
        name,
        "2500 services, 5-min metrics; ranking deploy 18:42 JST breaks its 500 services at 18:45.",
        tz,
        files,
        [truth],
    )


@world
def w_pagerduty_15s_release() -> World:
    """15-second Prometheus metrics; the deploy is known only from PagerDuty's change events."""
    name, tz = "pagerduty_15s_release", "UTC"
    svcs = _eu()
    start, rel = utc(tz, "2026-05-28 08:00"), utc(tz, "2026-05-28 12:30")
    onset, end = rel + 2 * MIN, utc(tz, "2026-05-28 13:15")
    touched = _of(svcs, lambda s: s.app == "web")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms"],
        start,
        end,
        15,
        tz=tz,
        effects=[
            Effect(touched, ("p99_ms",), onset, end, "mul", 3.5),
            Effect(touched, ("http_5xx_rate",), onset, end, "set", 6.0),
        ],
    )
    events = {
        "change_events": [
            {
                "id": "Q2WEB0TZ5K9P1",
                "summary": "Deploy web 2026.05.28-3 to prod",
                "timestamp": rel.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source": "gitlab-runner-4",
                "services": [{"id": "PWEB01", "summary": "web", "type": "service_reference"}],
                "custom_details": {
                    "service": "web",
                    "environment": "prod",
                    "version": "2026.05.28-3",
                    "actor": "ines",
                },
                "links": [{"href": "https://ci.example.net/pipelines/9912", "text": "Pipeline 9912"}],
            },
            {
                "id": "Q2MAIL0AA1B2C",
                "summary": "Deploy mail 88 to prod",
                "timestamp": "2026-05-28T09:10:00Z",
                "source": "gitlab-runner-2",
                "services": [{"id": "PMAIL1", "summary": "mail", "type": "service_reference"}],
                "custom_details": {"service": "mail", "environment": "prod", "version": "88", "actor": "bo"},
                "links": [],
            },
        ]
    }
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        **{f"prometheus/{k}": v for k, v in metrics_prometheus_json(series).items()},
        "changes/pagerduty-change-events.json": json.dumps(events, indent=1).encode(),
    }
    truth = Truth(name, "", onset + 4 * MIN, tz, "application_release", "pagerduty:Q2WEB0TZ5K9P1", onset, 0)
    return World(
        name,
        "web 2026.05.28-3 at 12:30 UTC via PagerDuty change events; web p99 ×3.5 from 12:32.",
        tz,
        files,
        [truth],
    )


@world
def w_feature_flag_datadog() -> World:
    """A feature flag flipped to 100 % in Datadog slows the payments services down."""
    name, tz = "feature_flag_datadog", "Europe/Paris"
    svcs = _payments(60)
    start, flip = utc(tz, "2026-12-02 12:00"), utc(tz, "2026-12-02 17:20")
    onset, end = flip + MIN, utc(tz, "2026-12-02 18:30")
    touched = _of(svcs, lambda s: s.app == "payments")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["p99_ms", "cpu_pct", "http_5xx_rate"],
        start,
        end,
        60,
        tz=tz,
        effects=[
            Effect(touched, ("p99_ms",), onset, end, "mul", 4.0),
            Effect(touched, ("cpu_pct",), onset, end, "mul", 1.8),
        ],
    )
    events = {
        "data": [
            {
                "id": "AAAAAZKx4nq8c2f0AAAAAP7",
                "type": "event",
                "attributes": {
                    "timestamp": flip.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "tags": ["env:prod", "team:payments", "service:payments"],
                    "attributes": {
                        "category": "change",
                        "title": "payments: sca_challenge_v2 flag 10% -> 100%",
                        "changed_resource": {"name": "sca_challenge_v2", "type": "feature_flag"},
                        "impacted_resources": [{"name": "payments", "type": "service"}],
                        "author": {"name": "clara", "type": "user"},
                        "prev_value": {"percentage": "10%"},
                        "new_value": {"percentage": "100%"},
                    },
                },
            }
        ]
    }
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone=tz),
        "changes/datadog-events.json": json.dumps(events, indent=1).encode(),
    }
    truth = Truth(
        name, "", onset + 4 * MIN, tz, "application_release", "datadog:AAAAAZKx4nq8c2f0AAAAAP7", onset, 0
    )
    return World(
        name, "flag sca_challenge_v2 10%→100% at 17:20 CET; payments p99 ×4 from 17:21.", tz, files, [truth]
    )


@world
def w_cancelled_maintenance_host_fails() -> World:
    """The provider cancelled its GRA works; a host fails inside the window the notice once announced."""
    name, tz = "cancelled_maintenance_host_fails", "UTC"
    svcs = _eu()
    start, onset = utc(tz, "2026-09-09 15:00"), utc(tz, "2026-09-09 21:17")
    back, end = onset + 25 * MIN, utc(tz, "2026-09-09 22:30")
    victims = _of(svcs, lambda s: s.host == "gra-h03")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["cpu_pct", "http_5xx_rate", "p99_ms"],
        start,
        end,
        60,
        tz=tz,
        effects=[Effect(victims, ("cpu_pct", "http_5xx_rate", "p99_ms"), onset, back, "gap")],
    )
    event = {
        "SUMMARY": "GRA power distribution maintenance",
        "DTSTART": ical_time(utc(tz, "2026-09-09 21:00")),
        "DTEND": ical_time(utc(tz, "2026-09-09 23:00")),
        "DTSTAMP": "20260908T090000Z",
        "UID": "pw-2026-77@cloud.example",
        "SEQUENCE": "2",
        "X-MAINTNOTE-PROVIDER": "cloud.example",
        "X-MAINTNOTE-MAINTENANCE-ID": "PW-2026-77",
        "X-MAINTNOTE-IMPACT": "REDUCED-REDUNDANCY",
        "X-MAINTNOTE-STATUS": "CANCELLED",
    }
    downs = [Down(v, onset, back) for v in victims]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/node.csv": metrics_long_csv(series, zone=None),
        "nagios/nagios.log": nagios_log(downs, since=start),
        "changes/cloud.ics": ical([event]),
    }
    truth = Truth(name, "", onset + 3 * MIN, tz, "hosting", "gra-h03", onset, 1, also=victims)
    return World(
        name,
        "PW-2026-77 (GRA, 21:00–23:00) cancelled the day before; gra-h03 dies at 21:17.",
        tz,
        files,
        [truth],
    )


@world
def w_datacenter_power_loss() -> World:
    """Utility power and a generator both fail: every service in DAL3 goes dark at once."""
    name, tz = "datacenter_power_loss", "America/New_York"
    svcs = fleet(
        300,
        name=lambda i: f"svc-us-{i + 1:03d}",
        dcs=("DAL3", "IAD1", "ORD2"),
        per_rack=20,
        per_host=4,
        apps=("web", "api", "auth", "jobs", "search"),
        rack_name=lambda dc, r: f"{dc.lower()}-r{r:02d}",
        switch_name=lambda dc, r: f"{dc.lower()}-r{r:02d}-sw",
        host_name=lambda dc, h: f"{dc.lower()}-h{h:03d}",
    )
    start, onset = utc(tz, "2026-07-20 10:00"), utc(tz, "2026-07-20 15:48")
    back, end = onset + 50 * MIN, utc(tz, "2026-07-20 17:30")
    dal = _of(svcs, lambda s: s.dc == "DAL3")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["cpu_pct", "rx_bytes"],
        start,
        end,
        60,
        tz=tz,
        effects=[Effect(dal, ("cpu_pct", "rx_bytes"), onset, back, "gap")],
    )
    downs = [
        Down(v, onset + timedelta(seconds=10 * (k % 6)), back, host_alert="DOWN") for k, v in enumerate(dal)
    ]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.parquet": metrics_parquet(series),
        "nagios/nagios.log": nagios_log(downs, since=start),
    }
    truth = Truth(name, "", onset + 4 * MIN, tz, "hosting", "DAL3", onset, 1)
    return World(
        name, "DAL3 loses power at 15:48 EDT: its 100 services go dark for 50 minutes.", tz, files, [truth]
    )


@world
def w_noisy_sparse_release() -> World:
    """Noisy metrics (2.5× the usual noise) with 3 % of samples lost; a mail release breaks two services."""
    name, tz = "noisy_sparse_release", "Europe/Paris"
    svcs = _eu()
    start = utc(tz, "2026-01-21 02:00")
    onset, end = utc(tz, "2026-01-21 09:00"), utc(tz, "2026-01-21 11:00")
    touched = ("svc-eu-05", "svc-eu-10")
    series = make_series(
        name,
        [s.name for s in svcs],
        ["http_5xx_rate", "p99_ms", "cpu_pct"],
        start,
        end,
        60,
        tz=tz,
        noise=2.5,
        missing=0.03,
        effects=[
            Effect(touched, ("http_5xx_rate",), onset, end, "set", 30.0),
            Effect(touched, ("p99_ms",), onset, end, "mul", 2.5),
        ],
    )
    deploys = [
        {
            "id": "mail-2026-0121-a",
            "timestamp": "2026-01-21 08:55",
            "service": "svc-eu-05",
            "version": "6.1",
            "author": "paul",
            "description": "smtp relay pool",
            "environment": "prod",
            "app": "mail",
        },
        {
            "id": "mail-2026-0121-b",
            "timestamp": "2026-01-21 08:56",
            "service": "svc-eu-10",
            "version": "6.1",
            "author": "paul",
            "description": "smtp relay pool",
            "environment": "prod",
            "app": "mail",
        },
    ]
    files = {
        "inventory/services.csv": inventory_csv(svcs),
        "metrics/fleet.csv": metrics_long_csv(series, zone=tz),
        "changes/deploys.csv": deploy_csv(deploys),
    }
    truth = Truth(
        name,
        "",
        onset + 10 * MIN,
        tz,
        "application_release",
        "mail-2026-0121-a",
        onset,
        0,
        also=("mail-2026-0121-b",),
    )
    return World(
        name,
        "mail 6.1 at 08:55/08:56 CET on svc-eu-05 and -10; noisy metrics, 3 % of samples missing.",
        tz,
        files,
        [truth],
    )
