"""The input files a generated world is made of, written as the readers expect them.

Time helpers in the world's zone (:func:`local_epoch`, :func:`minute_grid`, :func:`local_clock`),
the daily load shape, and one writer per format: the inventory CSV (:class:`Service`), a long
metrics CSV (:class:`MetricBuffer`), a Nagios log (:class:`NagiosLog`), Pingdom exports
(:class:`ProbeCheck`), a deploy log (:class:`ChangeRow`), a works page (:class:`WorksNotice`)
and an iCalendar file (:class:`IcalNotice`).  Used by the reference night
(:mod:`whatchanged.data.reference_night`), the scenarios and the tests.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine import timeparse


def local_epoch(day: str, hhmm: str, tz: str) -> int:
    """Epoch seconds of wall time ``hhmm`` (``HH:MM`` or ``HH:MM:SS``) on ``day`` in ``tz``."""
    h, m, s = ([int(x) for x in hhmm.split(":")] + [0, 0])[:3]
    d = date.fromisoformat(day)
    return int(datetime(d.year, d.month, d.day, h, m, s, tzinfo=timeparse.zone(tz)).timestamp())


def local_text(epoch: int, tz: str, *, seconds: bool = True) -> str:
    """``YYYY-MM-DD HH:MM[:SS]`` wall time of ``epoch`` in ``tz``, without offset."""
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(epoch, timeparse.zone(tz)).strftime(fmt)


def minute_grid(first_day: str, days: int, tz: str) -> np.ndarray:
    """Epoch seconds of every local minute of ``days`` days starting ``first_day`` 00:00."""
    start = local_epoch(first_day, "00:00", tz)
    last_day = (date.fromisoformat(first_day) + timedelta(days=days)).isoformat()
    end = local_epoch(last_day, "00:00", tz)
    return np.arange(start, end, 60, dtype=np.int64)


def local_clock(ts: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hour of day as float, weekday 0=Monday, day index from the first) of each epoch in ``ts``."""
    zone = timeparse.zone(tz)
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
        zone = timeparse.zone(tz)
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
