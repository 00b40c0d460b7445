"""The reference night: raw monitoring inputs of Wednesday 2010-11-17 with known truth.

A website-builder host monitors 1002 services, most of them in the provider
datacenter P19 behind switches ``p19-sw-01`` … ``p19-sw-08``.  That evening:

* 18:43 — the back-office primary ``bo-primary`` fails, the standby does not
  take over; back office and outgoing mail are down until a manual switchover
  at 19:05 (cause class *hosting*, component ``bo-primary``);
* 19:23 → 20:46 — the provider reloads the P19 switches (works notice
  ``FS#4321``): outbound bandwidth is capped near 50 Mbit/s, the main-site
  probe records 14 outages cumulating 54 minutes, 30 services go CRITICAL,
  the team restarts the stack 14 times (cause class *external maintenance*).

:func:`generate` writes the inputs in the formats the readers accept, plus
``.truth.json`` (hidden, so that ``whatchanged ingest OUT_DIR`` skips it)::

    services.csv                 inventory
    metrics.parquet              1-minute metrics, long format (timestamp UTC)
    nagios.log                   Nagios SERVICE ALERT / CURRENT SERVICE STATE lines
    pingdom/checks.json          GET /checks
    pingdom/summary.outage.<id>.json   year to date
    deploys.csv                  the week's releases (local time, no offset)
    restarts.csv                 the 14 operator restarts (kind=restart)
    travaux-ovh.works.txt        the provider's works notices of the week

The writers below (``write_*``, :class:`NagiosLog`) are shared with
:mod:`whatchanged.data.scenarios`.  Only stdlib, numpy, pyarrow and pyyaml are
used: the generator knows nothing of the engine or the readers.

Command line: ``python -m whatchanged.data.reference_night OUT_DIR``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

DEFAULT_PARAMS = Path(__file__).with_name("reference_night.yaml")
TRUTH_FILE = ".truth.json"

# --------------------------------------------------------------------------------------------
# time helpers


def local_epoch(day: str, hhmm: str, tz: str) -> int:
    """Epoch seconds of wall time ``hhmm`` (``HH:MM`` or ``HH:MM:SS``) on ``day`` in ``tz``."""
    h, m, s = ([int(x) for x in hhmm.split(":")] + [0, 0])[:3]
    d = date.fromisoformat(day)
    return int(datetime(d.year, d.month, d.day, h, m, s, tzinfo=ZoneInfo(tz)).timestamp())


def local_text(epoch: int, tz: str, *, seconds: bool = True) -> str:
    """``YYYY-MM-DD HH:MM[:SS]`` wall time of ``epoch`` in ``tz``, without offset."""
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(epoch, ZoneInfo(tz)).strftime(fmt)


def iso_local(epoch: int, tz: str) -> str:
    """ISO 8601 with the local offset, e.g. ``2010-11-17T19:23:00+01:00``."""
    return datetime.fromtimestamp(epoch, ZoneInfo(tz)).isoformat()


def minute_grid(first_day: str, days: int, tz: str) -> np.ndarray:
    """Epoch seconds of every local minute of ``days`` days starting ``first_day`` 00:00."""
    start = local_epoch(first_day, "00:00", tz)
    last_day = (date.fromisoformat(first_day) + timedelta(days=days)).isoformat()
    end = local_epoch(last_day, "00:00", tz)
    return np.arange(start, end, 60, dtype=np.int64)


def local_clock(ts: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hour of day as float, weekday 0=Monday, day index from the first) of each epoch in ``ts``."""
    zone = ZoneInfo(tz)
    hours = np.empty(len(ts))
    weekday = np.empty(len(ts), dtype=np.int64)
    dayidx = np.empty(len(ts), dtype=np.int64)
    first = datetime.fromtimestamp(int(ts[0]), zone).date() if len(ts) else date(1970, 1, 1)
    for i, t in enumerate(ts.tolist()):
        dt = datetime.fromtimestamp(t, zone)
        hours[i] = dt.hour + dt.minute / 60
        weekday[i] = dt.weekday()
        dayidx[i] = (dt.date() - first).days
    return hours, weekday, dayidx


#: Outbound traffic of a web host over a day (local hour -> fraction of the 19:00 level).
_SHAPE_HOURS = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 19, 20, 21, 22, 23, 24]
_SHAPE_LEVEL = [
    0.60,
    0.38,
    0.25,
    0.28,
    0.48,
    0.70,
    0.80,
    0.82,
    0.88,
    0.95,
    1.00,
    1.05,
    1.08,
    0.95,
    0.75,
    0.60,
]


def load_shape(hours: np.ndarray) -> np.ndarray:
    return np.asarray(np.interp(hours, _SHAPE_HOURS, _SHAPE_LEVEL), dtype=float)


# --------------------------------------------------------------------------------------------
# writers (shared with scenarios)


@dataclass(frozen=True)
class Service:
    """One row of the inventory CSV."""

    service: str
    kind: str
    datacenter: str
    rack: str
    switch: str
    host: str
    app: str
    critical: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    #: services that stand in for each other share a group (optional inventory column)
    redundancy_group: str = ""


SERVICE_COLUMNS = ("service", "kind", "datacenter", "rack", "switch", "host", "app", "critical", "tags")
GROUP_COLUMN = "redundancy_group"


def write_services(path: Path, services: Iterable[Service]) -> None:
    """The inventory CSV; the optional ``redundancy_group`` column only when a service has one
    (inventories without groups stay byte for byte what they were)."""
    services = list(services)
    grouped = any(s.redundancy_group for s in services)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*SERVICE_COLUMNS, GROUP_COLUMN] if grouped else SERVICE_COLUMNS)
        for s in services:
            tags = ";".join(f"{k}={v}" for k, v in s.tags)
            row = [
                s.service,
                s.kind,
                s.datacenter,
                s.rack,
                s.switch,
                s.host,
                s.app,
                str(s.critical).lower(),
                tags,
            ]
            w.writerow([*row, s.redundancy_group] if grouped else row)


@dataclass
class MetricBuffer:
    """Series accumulated before writing: (epoch seconds, value) per (service, metric)."""

    parts: list[tuple[str, str, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, service: str, metric: str, ts: np.ndarray, values: np.ndarray) -> None:
        keep = ~np.isnan(values)
        self.parts.append((service, metric, ts[keep], np.round(values[keep], 3)))

    @property
    def rows(self) -> int:
        return sum(len(p[2]) for p in self.parts)

    def table(self) -> pa.Table:
        parts = sorted(self.parts, key=lambda p: (p[0], p[1]))
        ts = np.concatenate([p[2] for p in parts]) * 1_000_000 if parts else np.empty(0, np.int64)
        values = np.concatenate([p[3] for p in parts]) if parts else np.empty(0)
        services = np.repeat(np.array([p[0] for p in parts], dtype=object), [len(p[2]) for p in parts])
        metrics = np.repeat(np.array([p[1] for p in parts], dtype=object), [len(p[2]) for p in parts])
        return pa.table(
            {
                "timestamp": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "service": pa.array(services, pa.string()),
                "metric": pa.array(metrics, pa.string()),
                "value": pa.array(values, pa.float64()),
            }
        )

    def write_parquet(self, path: Path) -> None:
        pq.write_table(self.table(), path, compression="zstd", row_group_size=1 << 20)

    def write_csv(self, path: Path, tz: str) -> None:
        """CSV with ISO 8601 local times carrying their offset."""
        zone = ZoneInfo(tz)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("timestamp,service,metric,value\n")
            for service, metric, ts, values in sorted(self.parts, key=lambda p: (p[0], p[1])):
                for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                    stamp = datetime.fromtimestamp(t, zone).isoformat()
                    fh.write(f"{stamp},{service},{metric},{v:.3f}\n")


#: Nagios plugin outputs per check and state.
NAGIOS_OUTPUT = {
    ("HTTP", "OK"): "HTTP OK: HTTP/1.1 200 OK - 18240 bytes in 0.091 second response time",
    ("HTTP", "WARNING"): "HTTP WARNING: HTTP/1.1 200 OK - 18240 bytes in 4.812 second response time",
    ("HTTP", "CRITICAL"): "CRITICAL - Socket timeout after 10 seconds",
    ("PING", "OK"): "PING OK - Packet loss = 0%, RTA = 0.41 ms",
    ("PING", "WARNING"): "PING WARNING - Packet loss = 40%, RTA = 95.20 ms",
    ("PING", "CRITICAL"): "PING CRITICAL - Packet loss = 100%",
    ("SMTP", "OK"): "SMTP OK - 0.052 sec. response time",
    ("SMTP", "CRITICAL"): "CRITICAL - Socket timeout after 10 seconds",
    ("MAILQ", "OK"): "OK: mailq is empty",
    ("MAILQ", "WARNING"): "WARNING: mailq is 312 (threshold w = 200)",
    ("MAILQ", "CRITICAL"): "CRITICAL: mailq is 1187 (threshold c = 500)",
    ("MYSQL", "OK"): "Uptime: 3124312  Threads: 12  Questions: 81234122  Slow queries: 31  Opens: 912",
    ("MYSQL", "CRITICAL"): "Can't connect to MySQL server on '10.19.4.12' (110)",
    ("DISK", "OK"): "DISK OK - free space: / 41210 MB (48% inode=91%)",
    ("DISK", "WARNING"): "DISK WARNING - free space: / 8120 MB (9% inode=88%)",
    ("HA", "OK"): "OK - node is standby, replication lag 0 s",
    ("HA", "WARNING"): "WARNING - peer unreachable, standby not promoted (fencing pending)",
    ("SNMP", "OK"): "SNMP OK - 48 ports up",
    ("SNMP", "CRITICAL"): "SNMP CRITICAL - No response from remote host",
}


def nagios_output(check: str, state: str) -> str:
    return NAGIOS_OUTPUT.get((check, state), f"{check} {state}")


@dataclass
class NagiosLog:
    """Lines of a ``nagios.log``, simulated from failing intervals per check.

    The simulation follows Nagios: a check runs every minute at its own second
    (``offset_s``); a failure is logged ``SOFT`` with attempts 1, 2 … and
    becomes ``HARD`` at ``max_attempts``; a recovery from SOFT is ``OK;SOFT;n``,
    from HARD ``OK;HARD;max_attempts``.
    """

    start: int
    lines: list[tuple[int, int, str]] = field(default_factory=list)
    max_attempts: int = 3

    def current(self, host: str, check: str, state: str = "OK") -> None:
        """A ``CURRENT SERVICE STATE`` line at the start of the log."""
        out = nagios_output(check, state)
        self._emit(self.start, f"CURRENT SERVICE STATE: {host};{check};{state};HARD;1;{out}")

    def _emit(self, t: int, text: str) -> None:
        self.lines.append((t, len(self.lines), f"[{t}] {text}"))

    def alert(self, t: int, host: str, check: str, state: str, kind: str, attempt: int) -> None:
        out = nagios_output(check, state)
        self._emit(t, f"SERVICE ALERT: {host};{check};{state};{kind};{attempt};{out}")

    def simulate(
        self, host: str, check: str, failing: Sequence[tuple[int, int, str]], *, offset_s: int
    ) -> list[int]:
        """Log the alerts of ``check`` for ``failing`` intervals ``[start, end)`` with a bad state.

        Returns the epochs of the CRITICAL lines written (for the truth).
        """
        if not failing:
            return []
        failing = sorted(failing)
        first = (failing[0][0] // 60) * 60 - 120 + offset_s
        last = max(end for _, end, _ in failing) + 60 * (self.max_attempts + 3)
        state, kind, attempt = "OK", "HARD", 1
        critical_at: list[int] = []
        for t in range(first, last, 60):
            seen = next((s for a, b, s in failing if a <= t < b), "OK")
            if seen == "OK":
                if state != "OK":
                    if kind == "SOFT":
                        self.alert(t, host, check, "OK", "SOFT", attempt)
                    else:
                        self.alert(t, host, check, "OK", "HARD", self.max_attempts)
                    state, kind, attempt = "OK", "HARD", 1
                continue
            if kind == "HARD" and state == seen:
                continue
            if kind == "HARD" and state == "OK":
                kind, attempt = "SOFT", 1
            elif kind == "HARD":  # hard problem changing severity
                attempt = self.max_attempts
            else:
                attempt += 1
            if attempt >= self.max_attempts:
                kind, attempt = "HARD", self.max_attempts
            state = seen
            self.alert(t, host, check, state, kind, attempt)
            if state == "CRITICAL":
                critical_at.append(t)
        return critical_at

    def text(self) -> str:
        return "".join(line + "\n" for _, _, line in sorted(self.lines))

    def write(self, path: Path) -> None:
        path.write_text(self.text(), encoding="utf-8")


@dataclass(frozen=True)
class ProbeCheck:
    """One Pingdom check and its down intervals ``[timefrom, timeto)``."""

    check_id: int
    name: str
    hostname: str
    service: str
    created: int
    history_from: int
    history_to: int
    downs: tuple[tuple[int, int], ...]
    resolution: int = 1


def probe_states(check: ProbeCheck) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = []
    t = check.history_from
    for a, b in sorted(check.downs):
        if a > t:
            states.append({"status": "up", "timefrom": t, "timeto": a})
        states.append({"status": "down", "timefrom": a, "timeto": b})
        t = b
    if t < check.history_to:
        states.append({"status": "up", "timefrom": t, "timeto": check.history_to})
    return states


def write_pingdom(folder: Path, checks: Sequence[ProbeCheck]) -> None:
    """``checks.json`` (a ``GET /checks`` response) and one ``summary.outage.<id>.json`` per check."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = []
    for c in checks:
        last_down = max(c.downs, default=None)
        listed.append(
            {
                "id": c.check_id,
                "name": c.name,
                "hostname": c.hostname,
                "type": "http",
                "status": "up",
                "resolution": c.resolution,
                "created": c.created,
                "lasttesttime": c.history_to - 60,
                "lasterrortime": last_down[0] if last_down else 0,
                "lastresponsetime": 212,
                "lastdownstart": last_down[0] if last_down else 0,
                "lastdownend": last_down[1] if last_down else 0,
                "ipv6": False,
                "tags": [
                    {"name": f"svc-{c.service}", "type": "u", "count": 1},
                    {"name": "env-prod", "type": "u", "count": len(checks)},
                ],
            }
        )
        summary = {"summary": {"states": probe_states(c)}}
        (folder / f"summary.outage.{c.check_id}.json").write_text(json.dumps(summary, indent=1) + "\n")
    doc = {
        "checks": listed,
        "counts": {"total": len(checks), "limited": len(checks), "filtered": len(checks)},
    }
    (folder / "checks.json").write_text(json.dumps(doc, indent=1) + "\n")


@dataclass(frozen=True)
class ChangeRow:
    """One row of a deploy-log CSV (times are local, written without offset)."""

    change_id: str
    start: int
    service: str
    version: str
    author: str
    description: str
    end: int | None = None
    environment: str = "production"
    kind: str = "deploy"


def write_deploys(path: Path, rows: Iterable[ChangeRow], tz: str, *, kind_column: bool = False) -> None:
    """Deploy-log CSV ``id,timestamp,service,version,author,description,end,environment``.

    With ``kind_column`` the columns are ``id,timestamp,service,version,author,description,kind``
    (the operator-restart log).
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if kind_column:
            w.writerow(["id", "timestamp", "service", "version", "author", "description", "kind"])
        else:
            w.writerow(
                ["id", "timestamp", "service", "version", "author", "description", "end", "environment"]
            )
        for r in sorted(rows, key=lambda r: (r.start, r.change_id)):
            head = [r.change_id, local_text(r.start, tz), r.service, r.version, r.author, r.description]
            if kind_column:
                w.writerow([*head, r.kind])
            else:
                end = local_text(r.end, tz) if r.end is not None else ""
                w.writerow([*head, end, r.environment])


@dataclass(frozen=True)
class WorksNotice:
    """One block of a provider works page (``.works.txt``)."""

    fs_id: int
    category: str
    title: str
    status: str  # Scheduled | In progress | Closed | Cancelled
    start: int
    end: int
    updated: int
    datacenter: str
    description: str
    provider: str = "ovh"

    @property
    def change_id(self) -> str:
        return f"{self.provider}:FS#{self.fs_id}"


def write_works(path: Path, notices: Iterable[WorksNotice], tz: str) -> None:
    blocks = []
    for n in sorted(notices, key=lambda n: (n.start, n.fs_id)):
        blocks.append(
            "\n".join(
                [
                    f"FS#{n.fs_id} | {n.category}:: {n.title}",
                    f"Status: {n.status}",
                    f"Start: {local_text(n.start, tz, seconds=False)}",
                    f"End: {local_text(n.end, tz, seconds=False)}",
                    f"Updated: {local_text(n.updated, tz, seconds=False)}",
                    f"Datacenter: {n.datacenter}",
                    "Description:",
                    n.description,
                ]
            )
        )
    path.write_text("\n---\n".join(blocks) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class IcalNotice:
    """One BCOP maintenance notice (``X-MAINTNOTE-*``), times written in UTC (``Z``)."""

    uid: str
    maintenance_id: str
    provider: str
    account: str
    summary: str
    start: int
    end: int
    stamp: int
    objects: tuple[str, ...]
    impact: str = "OUTAGE"
    status: str = "CONFIRMED"
    sequence: int = 0


def _z(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")


def write_ical(path: Path, notices: Iterable[IcalNotice]) -> None:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//whatchanged//scenario maintenance//EN"]
    for n in notices:
        lines += [
            "BEGIN:VEVENT",
            f"SUMMARY:{n.summary}",
            f"DTSTART:{_z(n.start)}",
            f"DTEND:{_z(n.end)}",
            f"DTSTAMP:{_z(n.stamp)}",
            f"UID:{n.uid}",
            f"SEQUENCE:{n.sequence}",
            f"X-MAINTNOTE-PROVIDER:{n.provider}",
            f"X-MAINTNOTE-ACCOUNT:{n.account}",
            f"X-MAINTNOTE-MAINTENANCE-ID:{n.maintenance_id}",
            *(f"X-MAINTNOTE-OBJECT-ID:{o}" for o in n.objects),
            f"X-MAINTNOTE-IMPACT:{n.impact}",
            f"X-MAINTNOTE-STATUS:{n.status}",
            f'ORGANIZER;CN="{n.provider} NOC":mailto:noc@{n.provider}',
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))


def composition(rng: np.random.Generator, total: int, parts: int, minimum: int = 1) -> list[int]:
    """``parts`` integers >= ``minimum`` summing to ``total`` (uniform over compositions)."""
    free = total - parts * minimum
    if free < 0:
        raise ValueError(f"cannot split {total} into {parts} parts of at least {minimum}")
    cuts = np.sort(rng.choice(free + parts - 1, size=parts - 1, replace=False))
    bounds = np.concatenate([[-1], cuts, [free + parts - 1]])
    return [int(d) - 1 + minimum for d in np.diff(bounds)]


# --------------------------------------------------------------------------------------------
# the truth


@dataclass(frozen=True)
class IncidentTruth:
    """What ``whatchanged explain --at <at_local>`` must answer for one incident."""

    at_local: str  # "2010-11-17 19:23", wall time in Truth.tz
    category: str  # hosting | application_release | external_maintenance | unknown
    change_id: str | None
    component: str | None  # hosting: the service that failed first
    component_host: str | None
    onset_local: str
    end_local: str
    critical_count: int
    critical_services: tuple[str, ...]
    outage_count: int  # external probe outages
    downtime_s: int  # their cumulated duration
    must_rank_below: tuple[str, ...]  # change ids that must rank below the truth
    reactions: tuple[str, ...]  # change ids of the operators' reactions (restarts)


@dataclass(frozen=True)
class Truth:
    """Expected answers of the reference night (also written as ``.truth.json``)."""

    seed: int
    tz: str
    day: str
    services: int
    general: IncidentTruth  # 19:23
    backoffice: IncidentTruth  # 18:43
    restart_ids: tuple[str, ...]
    unrelated_release_id: str
    probe_check_id: int
    probe_service: str
    ytd_from_utc: str
    ytd_to_utc: str
    ytd_period_s: int
    ytd_downtime_s: int
    ytd_outages: int
    ytd_availability_pct: float  # exact
    ytd_availability_display: str  # "99.98%"
    bandwidth_metric: str
    bandwidth_services: tuple[str, ...]  # the fleet total is the sum over these
    bandwidth_normal_19h_mbps: float
    bandwidth_cap_mbps: float
    metric_series: int
    metric_rows: int
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# the night


def load_params(params_path: Path | None = None) -> dict[str, Any]:
    with open(params_path or DEFAULT_PARAMS, encoding="utf-8") as fh:
        params: dict[str, Any] = yaml.safe_load(fh)
    return params


def build_inventory(p: dict[str, Any], rng: np.random.Generator) -> list[Service]:
    """The named services of the parameters, then shared-hosting sites up to the exact count."""
    inv = p["inventory"]
    out = []
    for name, kind, dc, rack, sw, host, app, crit, tags in inv["named"]:
        pairs = tuple(tuple(t.split("=", 1)) for t in str(tags).split(";") if t)
        out.append(Service(name, kind, dc, rack, sw, host, app, bool(crit), pairs))  # type: ignore[arg-type]
    n_sites = int(inv["services"]) - len(out)
    n_rbx, n_hosts, n_sw = int(inv["rbx_sites"]), int(inv["p19_web_hosts"]), int(inv["p19_switches"])
    for i in range(1, n_sites + 1):
        if i <= n_sites - n_rbx:
            h = int(rng.integers(1, n_hosts + 1))
            rack_no = (h - 1) % (2 * n_sw) + 1
            plan = "pro" if rng.random() < 0.15 else "std"
            rack, sw, host = f"P19-R{rack_no:02d}", f"p19-sw-{(rack_no - 1) // 2 + 1:02d}", f"p19-web-{h:02d}"
            out.append(
                Service(f"www-{i:04d}", "site", "P19", rack, sw, host, "sites", False, (("plan", plan),))
            )
        else:
            host = f"rbx-web-{int(rng.integers(1, 3)):02d}"
            out.append(Service(f"www-{i:04d}", "site", "RBX", "RBX-R04", "rbx-sw-01", host, "sites", False))
    if len(out) != int(inv["services"]):
        raise ValueError(f"inventory has {len(out)} services, expected {inv['services']}")
    groups = {m: str(g) for g, members in (inv.get("redundancy_groups") or {}).items() for m in members}
    unknown = sorted(set(groups) - {s.service for s in out})
    if unknown:
        raise ValueError(f"inventory.redundancy_groups: expected named services, found {unknown}")
    return [replace(s, redundancy_group=groups[s.service]) if s.service in groups else s for s in out]


CHECKS_BY_KIND = {
    "site": ("HTTP",),
    "backoffice": ("HTTP", "PING"),
    "email": ("SMTP",),
    "database": ("MYSQL",),
    "loadbalancer": ("HTTP", "PING"),
    "switch": ("SNMP",),
    "app": ("HTTP",),
}


def checks_of(s: Service) -> tuple[str, ...]:
    """The Nagios checks (service descriptions) run against ``s``."""
    if s.service == "mail-out":
        return ("SMTP", "MAILQ")
    if s.service == "bo-standby":
        return ("HTTP", "PING", "HA")
    return CHECKS_BY_KIND.get(s.kind, ("PING",))


#: Front services that go CRITICAL at 19:23; sites spread over the switches complete the count.
FRONT: tuple[str, ...] = ("www-main", "p19-lb-01", "p19-lb-02", "backoffice", "bo-standby", "webmail")
FRONT += ("api-01", "api-02", "api-03", "api-04")
LBS = ("p19-lb-01", "p19-lb-02")


@dataclass
class _Night:
    """Everything the steps of :func:`generate` share."""

    p: dict[str, Any]
    out: Path
    seed: int
    tz: str
    day: str
    days: int
    services: list[Service]
    by_name: dict[str, Service] = field(default_factory=dict)
    outages: list[tuple[int, int]] = field(default_factory=list)  # probe down intervals 19:23-20:46
    critical: list[str] = field(default_factory=list)  # CRITICAL at 19:23
    warn_sites: list[str] = field(default_factory=list)
    crit_window: dict[str, tuple[int, int]] = field(default_factory=dict)

    def stream(self, step: int) -> np.random.Generator:
        """An independent random stream per step, so that ``days`` changes the metrics only."""
        return np.random.default_rng([self.seed, step])

    def at(self, hhmm: str, day_offset: int = 0) -> int:
        d = (date.fromisoformat(self.day) + timedelta(days=day_offset)).isoformat()
        return local_epoch(d, hhmm, self.tz)

    def hm(self, epoch: int) -> str:
        return local_text(epoch, self.tz, seconds=False)

    @property
    def bo(self) -> tuple[int, int, int]:
        b = self.p["backoffice"]
        return self.at(b["fail"]), self.at(b["switchover"]), self.at(b["primary_back"])

    @property
    def window(self) -> tuple[int, int]:
        return self.at(self.p["general"]["start"]), self.at(self.p["general"]["end"])


def _plan_general(n: _Night) -> None:
    """The 14 probe outages, who goes CRITICAL or WARNING, and when."""
    gen = n.p["general"]
    rng = n.stream(2)
    g_start, g_end = n.window
    if int(gen["downtime_s"]) % 60:
        raise ValueError(f"general.downtime_s: expected whole minutes, found {gen['downtime_s']}")
    down_min, n_out = int(gen["downtime_s"]) // 60, int(gen["outages"])
    durations = composition(rng, down_min, n_out)
    gaps = [*composition(rng, (g_end - g_start) // 60 - down_min, n_out - 1), 0]
    t = g_start
    for d, g in zip(durations, gaps, strict=True):
        n.outages.append((t, t + 60 * d))
        t += 60 * (d + g)
    p19_sites = [s.service for s in n.services if s.kind == "site" and s.datacenter == "P19"]
    p19_sites = [s for s in p19_sites if s.startswith("www-0")]
    by_switch: dict[str, list[str]] = {}
    for name in p19_sites:
        by_switch.setdefault(n.by_name[name].switch, []).append(name)
    switches = sorted(by_switch)
    sites: list[str] = []
    while len(sites) < int(gen["critical_services"]) - len(FRONT):
        pool = [s for s in by_switch[switches[len(sites) % len(switches)]] if s not in sites]
        sites.append(pool[int(rng.integers(len(pool)))])
    n.critical = sorted([*FRONT, *sites])
    rest = [s for s in p19_sites if s not in sites]
    n.warn_sites = sorted(rest[i] for i in rng.choice(len(rest), int(gen["warning_services"]), replace=False))
    n.crit_window = {
        s: (g_start + int(rng.integers(0, 150)), g_end + int(rng.integers(0, 300))) for s in n.critical
    }


def _metrics(n: _Night) -> MetricBuffer:
    """bandwidth_mbps on the load balancers and P19 switches, latency_ms on ~100 services."""
    mp = n.p["metrics"]
    first_day = (date.fromisoformat(n.day) - timedelta(days=n.days - 1)).isoformat()
    ts = minute_grid(first_day, n.days, n.tz)
    hours, weekday, dayidx = local_clock(ts, n.tz)
    shape = load_shape(hours)
    rng = n.stream(3)
    g_start, g_end = n.window
    bo_fail, bo_switch, bo_back = n.bo
    fleet = float(mp["bandwidth_at_19h_mbps"]) * shape * rng.normal(1.0, 0.03, n.days)[dayidx]
    fleet *= np.where(weekday >= 5, float(mp["weekend_factor"]), 1.0) * (1 + rng.normal(0, 0.025, len(ts)))
    capped = (ts >= g_start) & (ts < g_end)
    cap = float(mp["cap_mbps"])
    fleet[capped] = np.clip(cap + rng.normal(0, 0.6, int(capped.sum())), cap - 1.5, cap + 1.5)
    rebound = (ts >= g_end) & (ts < g_end + 900)
    fleet[rebound] *= 1 + 0.15 * (1 - (ts[rebound] - g_end) / 900)
    buf = MetricBuffer()
    for lb, share in zip(LBS, (0.51, 0.49), strict=True):
        buf.add(lb, "bandwidth_mbps", ts, fleet * share * (1 + rng.normal(0, 0.01, len(ts))))
    sw_names = [s.service for s in n.services if s.kind == "switch" and s.datacenter == "P19"]
    for w, sw in zip(rng.dirichlet(np.full(len(sw_names), 20.0)), sw_names, strict=True):
        buf.add(sw, "bandwidth_mbps", ts, fleet * w * (1 + rng.normal(0, 0.02, len(ts))))

    fixed = [*n.critical, *n.warn_sites, "bo-primary", "mail-in-01", "editor-01", "editor-02", "editor-03"]
    fixed += ["p19-db-01", "p19-db-02", "p19-db-03", "p19-db-04", "mail-in-02", "billing-01", "stats-01"]
    fixed += ["dns-01", "status", "monitoring"]
    pool = [s.service for s in n.services if s.kind == "site" and s.datacenter == "P19"]
    pool = [s for s in pool if s not in fixed]
    extra = [pool[i] for i in rng.choice(len(pool), int(mp["latency_services"]) - len(fixed), replace=False)]
    latency = sorted({*fixed, *extra})
    spikes = []
    for _ in range(int(mp["noise_spikes"])):
        off = int(rng.integers(0, max(n.days - 1, 1))) - (n.days - 1)
        s0 = n.at(f"{int(rng.integers(1, 17)):02d}:{int(rng.integers(0, 60)):02d}", off)
        spikes.append((latency[int(rng.integers(len(latency)))], s0, s0 + 60 * int(rng.integers(3, 9))))
    for name in latency:
        s = n.by_name[name]
        db = s.kind == "database"
        level = float(rng.uniform(2, 8)) if db else float(rng.uniform(60, 250))
        v = level * (1 + (0.2 if db else 0.35) * shape) * np.exp(rng.normal(0, 0.06, len(ts)))
        for sv, a, b in spikes:
            if sv == name:
                v[(ts >= a) & (ts < b)] *= 2.2
        if name in n.crit_window:
            a, b = n.crit_window[name]
            win = (ts >= a) & (ts < b)
            v[win] = np.minimum(10000.0, 4000 * np.exp(rng.normal(0, 0.35, int(win.sum()))))
        elif name in n.warn_sites:
            v[capped] *= 3.0
        elif s.kind == "site" and s.datacenter == "P19":
            v[capped] *= 1.4  # requests pile up
        if name == "bo-primary":
            v[(ts >= bo_fail) & (ts < bo_back)] = np.nan  # dead: no samples
        elif name == "backoffice":
            v[(ts >= bo_fail) & (ts < bo_switch)] = 10000.0
        buf.add(name, "latency_ms", ts, v)
    # outgoing mail queue: grows while the back office is down, drains after the switchover
    q = 5 + 10 * shape * np.exp(rng.normal(0, 0.2, len(ts)))
    grow = (ts >= bo_fail) & (ts < bo_switch)
    q[grow] += 40 * (ts[grow] - bo_fail) / 60
    drain = (ts >= bo_switch) & (ts < bo_switch + 480)
    q[drain] += 40 * (bo_switch - bo_fail) / 60 * (1 - (ts[drain] - bo_switch) / 480)
    buf.add("mail-out", "queue_len", ts, np.round(q))
    return buf


def _nagios(n: _Night) -> tuple[NagiosLog, set[str], set[str]]:
    """The week's log; returns it with the services CRITICAL at 18:43 and at 19:23."""
    rng = n.stream(4)
    first = n.at("00:00", -(n.days - 1))
    last = n.at("00:00", 1)
    log = NagiosLog(start=first)
    offsets = {}
    for s in n.services:
        for c in checks_of(s):
            offsets[(s.service, c)] = int(rng.integers(0, 60))
            log.current(s.service, c)
    # the week's noise: short blips and one hard problem, never on the night's evening
    for _ in range(40):
        s = n.services[int(rng.integers(len(n.services)))]
        c = checks_of(s)[0]
        t0 = first + int(rng.integers(3600, last - first - 3600))
        if n.at("16:00") <= t0 or s.service.startswith("bo-"):
            continue
        bad = "WARNING" if c in ("HTTP", "PING") and rng.random() < 0.5 else "CRITICAL"
        log.simulate(
            s.service, c, [(t0, t0 + 60 * int(rng.integers(1, 3)), bad)], offset_s=offsets[(s.service, c)]
        )
    if n.days > 1:
        t0 = n.at("03:10", -1)
        log.simulate(
            "rbx-db-02", "MYSQL", [(t0, t0 + 360, "CRITICAL")], offset_s=offsets[("rbx-db-02", "MYSQL")]
        )
    # 18:43: the primary first, then the front, then the outgoing mail queue
    bo_fail, bo_switch, bo_back = n.bo
    bo_crit: set[str] = set()
    bo_checks: list[tuple[str, str, int, list[tuple[int, int, str]]]] = [
        ("bo-primary", "PING", 2, [(bo_fail, bo_back, "CRITICAL")]),
        ("bo-primary", "HTTP", 2, [(bo_fail, bo_back, "CRITICAL")]),
        ("backoffice", "HTTP", 20, [(bo_fail + 15, bo_switch, "CRITICAL")]),
        ("mail-out", "MAILQ", 40, [(bo_fail + 240, bo_fail + 480, "WARNING")]),
        ("bo-standby", "HA", 30, [(bo_fail + 60, bo_switch, "WARNING")]),
    ]
    bo_checks[3][3].append((bo_fail + 480, bo_switch + 240, "CRITICAL"))
    for host, check, off, failing in bo_checks:
        if log.simulate(host, check, failing, offset_s=off):
            bo_crit.add(host)
    # 19:23: www-main flaps with the probe, the others stay down; some sites only slow
    g_start, g_end = n.window
    gen_crit: set[str] = set()
    for name in n.critical:
        if name == "www-main":
            failing = [(a, b, "CRITICAL") for a, b in n.outages]
        else:
            failing = [(*n.crit_window[name], "CRITICAL")]
        for c in checks_of(n.by_name[name]):
            if c == "HTTP" and log.simulate(name, c, failing, offset_s=offsets[(name, c)]):
                gen_crit.add(name)
    for name in n.warn_sites:
        log.simulate(name, "HTTP", [(g_start + 240, g_end, "WARNING")], offset_s=offsets[(name, "HTTP")])
    if gen_crit != set(n.critical):
        raise ValueError(f"expected {len(n.critical)} CRITICAL services at 19:23, simulated {len(gen_crit)}")
    return log, bo_crit, gen_crit


def _random_downs(n: _Night, rng: np.random.Generator, minutes: Sequence[int]) -> list[tuple[int, int]]:
    """Short outages of ``minutes`` on distinct random days of the year before November."""
    year = date.fromisoformat(n.day).year
    picked = sorted(rng.choice(np.arange(4, 300), len(minutes), replace=False).tolist())
    downs = []
    for d, m in zip(picked, minutes, strict=True):
        dd = (date(year, 1, 1) + timedelta(days=int(d))).isoformat()
        a = local_epoch(dd, f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}", n.tz)
        downs.append((a, a + 60 * int(m)))
    return downs


def _pingdom(n: _Night) -> tuple[ProbeCheck, ProbeCheck]:
    """The main-site probe (year to date: earlier short outages + the night's 14) and a status probe."""
    pp = n.p["pingdom"]
    rng = n.stream(5)
    ytd_from = local_epoch(str(pp["year_start"]), "00:00", n.tz)
    ytd_to = n.at("00:00", 1)
    other = composition(rng, int(pp["other_downtime_s"]) // 60, int(pp["other_outages"]), minimum=2)
    main = ProbeCheck(
        check_id=int(pp["check_id"]),
        name="Main site www",
        hostname="www.sitebuilder.example",
        service="www-main",
        created=local_epoch("2008-03-12", "10:41", n.tz),
        history_from=ytd_from,
        history_to=ytd_to,
        downs=tuple(_random_downs(n, rng, other) + n.outages),
    )
    status = ProbeCheck(
        check_id=int(pp["status_check_id"]),
        name="Status page",
        hostname="status.sitebuilder.example",
        service="status",
        created=local_epoch("2009-06-02", "15:20", n.tz),
        history_from=ytd_from,
        history_to=ytd_to,
        downs=tuple(_random_downs(n, rng, [int(rng.integers(1, 4)) for _ in range(3)])),
    )
    return main, status


def _deploys(n: _Night) -> tuple[list[ChangeRow], str]:
    """The week's releases (the night's day exactly as in the parameters); returns the 18:13 id."""
    dp = n.p["deploys"]
    rng = n.stream(6)
    apps = ["api", "sites", "editor", "backoffice", "billing", "stats", "dns", "webmail", "monitoring"]
    authors = ["claire", "marc", "sophie", "julien", "nadia"]
    plan: list[tuple[int, str, str, str]] = [
        (n.at(hm), app, v, who) for hm, app, v, who in dp["day_releases"]
    ]
    for off in range(-6, 0):
        weekend = (date.fromisoformat(n.day) + timedelta(days=off)).weekday() >= 5
        count = int(dp["per_weekend_day"] if weekend else dp["per_weekday"])
        for m in sorted(rng.choice(np.arange(9 * 60, 18 * 60), count, replace=False).tolist()):
            app = apps[int(rng.integers(len(apps)))]
            ver = f"{int(rng.integers(1, 9))}.{int(rng.integers(0, 40))}.{int(rng.integers(0, 5))}"
            who = authors[int(rng.integers(len(authors)))]
            plan.append((n.at(f"{m // 60:02d}:{m % 60:02d}", off), app, ver, who))
    rows = []
    last = n.at(dp["day_releases"][-1][0])
    unrelated = ""
    for i, (t0, app, ver, who) in enumerate(sorted(plan)):
        cid = f"REL-{int(dp['first_id']) + i}"
        end = t0 + 60 * int(rng.integers(2, 7))
        rows.append(ChangeRow(cid, t0, app, ver, who, f"release {app} {ver}", end=end))
        unrelated = cid if t0 == last else unrelated
    return rows, unrelated


def _restarts(n: _Night) -> list[ChangeRow]:
    """One operator restart in each probe outage, halfway through it (at least 30 s in)."""
    targets = ["sites", "backoffice", "p19-lb-01", "api", "sites", "p19-lb-02", "backoffice"]
    ops = ["sophie", "julien", "marc", "claire", "nadia"]
    out = []
    for i, (a, b) in enumerate(n.outages[: int(n.p["general"]["restarts"])]):
        cid = f"RST-{n.day.replace('-', '')}-{i + 1:02d}"
        t0 = a + max(30, (b - a) // 2)
        out.append(ChangeRow(cid, t0, targets[i % 7], "", ops[i % 5], "restart of the stack", kind="restart"))
    return out


def _works(n: _Night) -> list[WorksNotice]:
    wk = n.p["works"]
    provider = str(wk["provider"])
    notices = [
        WorksNotice(
            int(wk["fs_id"]),
            "Network",
            "P19 switches maintenance",
            "Scheduled",
            n.at(wk["start"]),
            n.at(wk["end"]),
            n.at(wk["updated"]),
            "P19",
            "We will reload the switches of room Paris 19 (p19-sw-01 to p19-sw-08). "
            "Short interruptions expected.",
            provider,
        )
    ]
    for fs, cat, title, status, d0, t0, d1, t1, du, tu, dc, text in wk["others"]:
        start, end, upd = n.at(t0, d0), n.at(t1, d1), n.at(tu, du)
        notices.append(WorksNotice(int(fs), cat, title, status, start, end, upd, dc, text, provider))
    return notices


def generate(out_dir: Path, *, params_path: Path | None = None, days: int | None = None) -> Truth:
    """Write the reference night's inputs into ``out_dir`` and return the truth.

    ``days`` overrides the number of days of metrics (tests use 2 for speed).
    """
    p = load_params(params_path)
    seed = int(p["seed"])
    services = build_inventory(p, np.random.default_rng([seed, 1]))
    n = _Night(
        p=p,
        out=out_dir,
        seed=seed,
        tz=str(p["tz"]),
        day=str(p["day"]),
        days=int(days if days is not None else p["days"]),
        services=services,
        by_name={s.service: s for s in services},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_services(out_dir / "services.csv", services)
    _plan_general(n)
    buf = _metrics(n)
    buf.write_parquet(out_dir / "metrics.parquet")
    log, bo_crit, gen_crit = _nagios(n)
    log.write(out_dir / "nagios.log")
    main, status = _pingdom(n)
    write_pingdom(out_dir / "pingdom", [main, status])
    releases, unrelated = _deploys(n)
    write_deploys(out_dir / "deploys.csv", releases, n.tz)
    restarts = _restarts(n)
    write_deploys(out_dir / "restarts.csv", restarts, n.tz, kind_column=True)
    notices = _works(n)
    write_works(out_dir / "travaux-ovh.works.txt", notices, n.tz)

    g_start, g_end = n.window
    bo_fail, bo_switch, _ = n.bo
    key = notices[0]
    general = IncidentTruth(
        at_local=n.hm(g_start),
        category="external_maintenance",
        change_id=key.change_id,
        component=None,
        component_host=None,
        onset_local=n.hm(g_start),
        end_local=n.hm(g_end),
        critical_count=len(gen_crit),
        critical_services=tuple(sorted(gen_crit)),
        outage_count=len(n.outages),
        downtime_s=sum(b - a for a, b in n.outages),
        must_rank_below=(
            *(r.change_id for r in releases if n.at("00:00") <= r.start < g_start),
            *(x.change_id for x in notices[1:]),
        ),
        reactions=tuple(r.change_id for r in restarts),
    )
    backoffice = IncidentTruth(
        at_local=n.hm(bo_fail),
        category="hosting",
        change_id=None,
        component="bo-primary",
        component_host=n.by_name["bo-primary"].host,
        onset_local=n.hm(bo_fail),
        end_local=n.hm(bo_switch),
        critical_count=len(bo_crit),
        critical_services=tuple(sorted(bo_crit)),
        outage_count=0,
        downtime_s=0,
        must_rank_below=(unrelated,),
        reactions=(),
    )
    ytd_down = sum(b - a for a, b in main.downs)
    ytd_period = main.history_to - main.history_from
    files = sorted(
        str(f.relative_to(out_dir)) for f in out_dir.rglob("*") if f.is_file() and f.name != TRUTH_FILE
    )
    truth = Truth(
        seed=seed,
        tz=n.tz,
        day=n.day,
        services=len(services),
        general=general,
        backoffice=backoffice,
        restart_ids=general.reactions,
        unrelated_release_id=unrelated,
        probe_check_id=main.check_id,
        probe_service=main.service,
        ytd_from_utc=datetime.fromtimestamp(main.history_from, UTC).isoformat(),
        ytd_to_utc=datetime.fromtimestamp(main.history_to, UTC).isoformat(),
        ytd_period_s=ytd_period,
        ytd_downtime_s=ytd_down,
        ytd_outages=len(main.downs),
        ytd_availability_pct=100 * (1 - ytd_down / ytd_period),
        ytd_availability_display=f"{100 * (1 - ytd_down / ytd_period):.2f}%",
        bandwidth_metric="bandwidth_mbps",
        bandwidth_services=LBS,
        bandwidth_normal_19h_mbps=float(p["metrics"]["bandwidth_at_19h_mbps"]),
        bandwidth_cap_mbps=float(p["metrics"]["cap_mbps"]),
        metric_series=len(buf.parts),
        metric_rows=buf.rows,
        files=tuple(files),
    )
    (out_dir / TRUTH_FILE).write_text(json.dumps(truth.to_dict(), indent=2, sort_keys=True) + "\n")
    return truth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m whatchanged.data.reference_night",
        description="Write the reference night's raw inputs (and .truth.json) into OUT_DIR.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument(
        "--params", type=Path, default=None, help="parameters YAML [default: the packaged one]"
    )
    parser.add_argument("--days", type=int, default=None, help="days of metrics (overrides the parameters)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    truth = generate(args.out_dir, params_path=args.params, days=args.days)
    took = time.perf_counter() - started
    size = sum(f.stat().st_size for f in args.out_dir.rglob("*") if f.is_file())
    print(
        f"wrote {len(truth.files)} files ({size / 1e6:.1f} MB, {truth.metric_rows} metric rows) "
        f"to {args.out_dir} in {took:.1f} s"
    )
    print(f"then: whatchanged ingest {args.out_dir} --tz {truth.tz}")
    print(f"      whatchanged explain --at {truth.general.at_local[-5:]} --tz {truth.tz}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
