"""A small warehouse shaped like the reference night, written with ``Warehouse.commit``.

Times below are UTC; the night is read in Europe/Paris (UTC+1 in November):

* 1002 services in P19 behind six switches ``sw-p19-a`` … ``sw-p19-f``;
* 17:43 the back-office primary and outgoing mail go CRITICAL for 22 min
  (an ``infra_alert`` on host ``bo-p19-1``) — the hosting incident;
* 18:00–20:00 the provider's maintenance ``OVH-P19-SW`` on the six switches;
* 18:23–19:46 ``bandwidth_mbps`` of ``lb-p19-1`` capped near 50 where ~200
  is normal; 30 services CRITICAL (on sw-p19-a and sw-p19-b); the external
  probe ``pingdom:home`` of ``www-public`` records 14 outages, 54 min total;
* 14 restarts of the stack between 18:35 and 19:40; four deploys during the day;
* one week earlier, a deploy followed by 25 min of back-office CRITICAL.

Seeded; no dependency on the ingest readers or the reference-night generator.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from whatchanged.engine.schema import SCHEMAS
from whatchanged.engine.warehouse import Warehouse

DAY = datetime(2010, 11, 17, tzinfo=UTC)
TZ = "Europe/Paris"
SWITCHES = tuple(f"sw-p19-{c}" for c in "abcdef")
ONSET = DAY + timedelta(hours=18, minutes=23)  # 19:23 Paris
END = DAY + timedelta(hours=19, minutes=46)  # 20:46 Paris
MAINT_START = DAY + timedelta(hours=18)  # 19:00 Paris
MAINT_END = DAY + timedelta(hours=20)  # 21:00 Paris
HOSTING_ONSET = DAY + timedelta(hours=17, minutes=43)  # 18:43 Paris
MAINT_ID = "OVH-P19-SW"
DEPLOY_IDS = ("deploy-bo-1", "deploy-site-1", "deploy-mail-1", "deploy-site-2")
CRITICAL_SERVICES = tuple(f"site-{i:04d}" for i in range(30))  # on switches a and b
BANDWIDTH = ("lb-p19-1", "bandwidth_mbps")


def _switch_of(i: int) -> str:
    # site-0000 … site-0059 live on switches a and b, the rest round-robin
    return SWITCHES[i % 2] if i < 60 else SWITCHES[i % 6]


def services() -> pa.Table:
    rows = []
    for i in range(950):
        rows.append((f"site-{i:04d}", "site", _switch_of(i), f"web-{i % 40:02d}", "sites", False))
    for name, kind, sw, host, app in [
        ("www-public", "site", "sw-p19-a", "lb-p19-1", "sites"),
        ("lb-p19-1", "loadbalancer", "sw-p19-a", "lb-p19-1", "edge"),
        ("lb-p19-2", "loadbalancer", "sw-p19-b", "lb-p19-2", "edge"),
        ("bo-p19-1", "backoffice", "sw-p19-c", "bo-p19-1", "backoffice"),
        ("bo-p19-2", "backoffice", "sw-p19-d", "bo-p19-2", "backoffice"),
        ("mail-out-1", "mail", "sw-p19-c", "bo-p19-1", "mail"),
    ]:
        rows.append((name, kind, sw, host, app, True))
    for i in range(len(rows), 1002):
        rows.append((f"db-{i:04d}", "database", SWITCHES[i % 6], f"db-{i % 8}", "db", False))
    names = ["service", "kind", "switch", "host", "app", "critical"]
    cols = {n: [r[k] for r in rows] for k, n in enumerate(names)}
    cols["datacenter"] = ["P19"] * len(rows)
    cols["rack"] = [f"P19-R{SWITCHES.index(s) + 1}" for s in cols["switch"]]
    return pa.table(cols).select(
        ["service", "kind", "datacenter", "rack", "switch", "host", "app", "critical"]
    )


def _normal_bandwidth(ts: datetime) -> float:
    hour = ts.hour + ts.minute / 60
    # evening peak (UTC 18–20h) near 200 Mbit/s, night trough near 60
    return 130 + 70 * math.cos((hour - 19) / 24 * 2 * math.pi)


def metrics(rng: random.Random) -> pa.Table:
    ts: list[datetime] = []
    svc: list[str] = []
    met: list[str] = []
    val: list[float] = []

    def add(t: datetime, service: str, metric: str, value: float) -> None:
        ts.append(t)
        svc.append(service)
        met.append(metric)
        val.append(value)

    # eight previous days at 5 min, the night at 1 min (12:00–24:00)
    t = DAY - timedelta(days=8)
    while t < DAY + timedelta(hours=12):
        add(t, *BANDWIDTH, _normal_bandwidth(t) * rng.uniform(0.95, 1.05))
        add(t, "lb-p19-1", "http_requests_queued", rng.uniform(2, 6))
        t += timedelta(minutes=5)
    t = DAY + timedelta(hours=12)
    while t < DAY + timedelta(hours=23):  # 23:59 Paris: the latest day is the 17th
        capped = ONSET <= t < END
        bw = rng.uniform(47, 51) if capped else _normal_bandwidth(t) * rng.uniform(0.95, 1.05)
        add(t, *BANDWIDTH, bw)
        add(t, "lb-p19-1", "http_requests_queued", rng.uniform(150, 400) if capped else rng.uniform(2, 6))
        t += timedelta(minutes=1)
    return pa.table({"ts": ts, "service": svc, "metric": met, "value": val})


def _outage_windows() -> list[tuple[datetime, datetime]]:
    """14 probe outages between 18:23 and 19:46, 54 minutes in total."""
    out = []
    for i in range(14):
        start = ONSET + timedelta(minutes=6 * i)
        out.append((start, start + timedelta(minutes=3 if i in (5, 9) else 4)))
    return out


def states() -> pa.Table:
    rows: list[tuple[datetime, str, str, str, str | None, str]] = []
    morning = DAY + timedelta(hours=12)
    for service in services().column("service").to_pylist():
        rows.append((morning, service, "http", "OK", "HARD", "nagios"))
    for service in CRITICAL_SERVICES:
        rows.append((ONSET + timedelta(minutes=1), service, "http", "CRITICAL", "HARD", "nagios"))
        rows.append((END, service, "http", "OK", "HARD", "nagios"))
    for service in ("bo-p19-1", "mail-out-1"):
        rows.append((HOSTING_ONSET, service, "http", "CRITICAL", "HARD", "nagios"))
        rows.append((HOSTING_ONSET + timedelta(minutes=22), service, "http", "OK", "HARD", "nagios"))
    # one week earlier: a deploy breaks the back office for 25 minutes
    week_before = DAY - timedelta(days=7) + timedelta(hours=10, minutes=20)
    rows.append((week_before - timedelta(hours=1), "bo-p19-1", "http", "OK", "HARD", "nagios"))
    rows.append((week_before, "bo-p19-1", "http", "CRITICAL", "HARD", "nagios"))
    rows.append((week_before + timedelta(minutes=25), "bo-p19-1", "http", "OK", "HARD", "nagios"))
    rows.append((morning, "www-public", "pingdom:home", "up", None, "pingdom"))
    for start, end in _outage_windows():
        rows.append((start, "www-public", "pingdom:home", "down", None, "pingdom"))
        rows.append((end, "www-public", "pingdom:home", "up", None, "pingdom"))
    names = ["ts", "service", "check", "state", "state_type", "source"]
    return pa.table({n: [r[k] for r in rows] for k, n in enumerate(names)})


def _scope(**kw: list[str]) -> dict[str, list[str] | None]:
    return {k: kw.get(k) for k in ("services", "apps", "datacenters", "racks", "switches", "hosts")}


def changes() -> pa.Table:
    rows = [
        {
            "change_id": MAINT_ID,
            "kind": "maintenance",
            "start": MAINT_START,
            "end": MAINT_END,
            "title": "Maintenance switches P19",
            "status": "completed",
            "source": "ovh-travaux",
            "scope": _scope(datacenters=["P19"], switches=list(SWITCHES)),
        },
        {
            "change_id": "deploy-bo-1",
            "kind": "deploy",
            "start": DAY + timedelta(hours=9, minutes=12),
            "title": "backoffice 4.12.0",
            "source": "github",
            "author": "alice",
            "scope": _scope(apps=["backoffice"]),
        },
        {
            "change_id": "deploy-site-1",
            "kind": "deploy",
            "start": DAY + timedelta(hours=13, minutes=30),
            "title": "sites renderer 2.8.1",
            "source": "github",
            "author": "bob",
            "scope": _scope(apps=["sites"]),
        },
        {
            "change_id": "deploy-mail-1",
            "kind": "deploy",
            "start": DAY + timedelta(hours=15, minutes=5),
            "title": "mail relay config",
            "source": "github",
            "author": "carol",
            "scope": _scope(apps=["mail"]),
        },
        {
            "change_id": "deploy-site-2",
            "kind": "deploy",
            "start": DAY + timedelta(hours=16, minutes=50),
            "title": "sites renderer 2.8.2",
            "source": "github",
            "author": "bob",
            "scope": _scope(apps=["sites"]),
        },
        {
            "change_id": "alert-bo-p19-1",
            "kind": "infra_alert",
            "start": HOSTING_ONSET,
            "end": HOSTING_ONSET + timedelta(minutes=22),
            "title": "bo-p19-1 primary down, standby did not take over",
            "source": "nagios",
            "scope": _scope(hosts=["bo-p19-1"], services=["bo-p19-1"]),
        },
        {
            "change_id": "deploy-bo-0",
            "kind": "deploy",
            "start": DAY - timedelta(days=7) + timedelta(hours=10, minutes=12),
            "title": "backoffice 4.11.0",
            "source": "github",
            "author": "alice",
            "scope": _scope(apps=["backoffice"]),
        },
    ]
    for i in range(14):
        rows.append(
            {
                "change_id": f"restart-{i + 1:02d}",
                "kind": "restart",
                "start": ONSET + timedelta(minutes=12 + 5 * i),
                "title": f"stack restart #{i + 1}",
                "source": "ops",
                "scope": _scope(services=["lb-p19-1"]),
            }
        )
    schema = SCHEMAS["changes"]
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def build(home: Path, *, seed: int = 17) -> Warehouse:
    """Create the warehouse at ``home`` and return it."""
    rng = random.Random(seed)
    wh = Warehouse(home)
    wh.init()
    wh.commit(
        {"services": services(), "metrics": metrics(rng), "states": states(), "changes": changes()},
        source="tests/dashboards/night.py",
    )
    return wh
