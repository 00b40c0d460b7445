"""Small worlds for the notice tests, written in the real input formats.

A world is an inventory (services CSV), three days of 1-minute metrics (long
CSV, epoch seconds), a Nagios log with the failures, and whatever notices a
test writes beside them (Statuspage JSON, iCalendar, Atom).  The failures are
planted at a known local time, so a test knows the onset, the outage count
and the cause it must find.  Nothing here reads ``data/scenarios.py`` or any
file outside the repository: the worlds vary their names, sizes and zones so that a test
checks the class of notice, not one file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from whatchanged.engine.model import Explanation
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

DAYS = 3


@dataclass
class World:
    """An inventory of datacenters, switches and sites, and the failures planted in it."""

    seed: int
    tz: str
    day: date  # the incident's local day
    rows: list[dict[str, str]] = field(default_factory=list)
    #: (service, metric) → (baseline level, effects [(start, end, factor)])
    series: dict[tuple[str, str], tuple[float, list[tuple[datetime, datetime, float]]]] = field(
        default_factory=dict
    )
    #: service → CRITICAL intervals of its HTTP check
    down: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def local(self, hhmm: str, day_offset: int = 0) -> datetime:
        """A wall time of the incident's day (or a day around it) in the world's zone, as UTC."""
        h, m = (int(x) for x in hhmm.split(":"))
        d = self.day + timedelta(days=day_offset)
        return datetime(d.year, d.month, d.day, h, m, tzinfo=ZoneInfo(self.tz)).astimezone(UTC)

    def datacenter(self, dc: str, *, switches: int, sites_per_switch: int, prefix: str) -> None:
        """``switches`` switches (each an inventory service too), sites behind each, one edge LB."""
        for k in range(1, switches + 1):
            sw = f"{prefix}-sw{k:02d}"
            rack = f"{prefix}-r{k:02d}"
            self.rows.append(_row(sw, "switch", dc, rack, sw, sw, "network"))
            for j in range(1, sites_per_switch + 1):
                site = f"{prefix}-web{k:02d}{j:02d}"
                self.rows.append(
                    _row(site, "site", dc, rack, sw, f"{prefix}-h{k:02d}{(j + 1) // 2:02d}", "sites")
                )
                self.series[(site, "latency_ms")] = (40.0 + 3 * j, [])
        lb = f"{prefix}-lb01"
        self.rows.append(_row(lb, "loadbalancer", dc, f"{prefix}-r01", f"{prefix}-sw01", lb, "edge"))
        self.series[(lb, "bandwidth_mbps")] = (180.0, [])

    def behind(self, switch: str) -> list[str]:
        return [r["service"] for r in self.rows if r["switch"] == switch and r["kind"] == "site"]

    def in_dc(self, dc: str, kind: str = "site") -> list[str]:
        return [r["service"] for r in self.rows if r["datacenter"] == dc and r["kind"] == kind]

    def fail(
        self, services: list[str], waves: list[tuple[datetime, datetime]], *, latency: float = 5.0
    ) -> None:
        """The services go CRITICAL in each wave, their latency ×``latency`` over all the waves."""
        for s in services:
            self.down.setdefault(s, []).extend(waves)
            _, effects = self.series[(s, "latency_ms")]
            effects.append((waves[0][0], waves[-1][1], latency))

    def capacity_drop(self, service: str, start: datetime, end: datetime, factor: float) -> None:
        _, effects = self.series[(service, "bandwidth_mbps")]
        effects.append((start, end, factor))

    # -- writing ---------------------------------------------------------------------------------

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "services.csv", "w", newline="") as fh:
            out = csv.DictWriter(fh, fieldnames=list(self.rows[0]))
            out.writeheader()
            out.writerows(self.rows)
        self._write_metrics(folder / "metrics.csv")
        self._write_nagios(folder / "nagios.log")
        return folder

    def _grid(self) -> np.ndarray:
        first = self.local("00:00", -(DAYS - 1))
        return int(first.timestamp()) + 60 * np.arange(DAYS * 1440, dtype=np.int64)

    def _write_metrics(self, path: Path) -> None:
        rng = np.random.default_rng(self.seed)
        ts = self._grid()
        local_h = (
            (ts + ZoneInfo(self.tz).utcoffset(datetime.fromtimestamp(int(ts[0]), UTC)).total_seconds())
            % 86400
        ) / 3600.0
        shape = 1 + 0.35 * np.cos(2 * np.pi * (local_h - 20) / 24)  # evening peak
        with open(path, "w") as fh:
            fh.write("timestamp,service,metric,value\n")
            for (service, metric), (level, effects) in sorted(self.series.items()):
                v = level * shape * np.exp(rng.normal(0, 0.04, ts.size))
                for a, b, factor in effects:
                    win = (ts >= int(a.timestamp())) & (ts < int(b.timestamp()))
                    v[win] *= factor
                fh.writelines(f"{t},{service},{metric},{x:.3f}\n" for t, x in zip(ts, v, strict=True))

    def _write_nagios(self, path: Path) -> None:
        start = int(self.local("00:00", -(DAYS - 1)).timestamp())
        lines = [f"[{start}] CURRENT SERVICE STATE: {r['service']};HTTP;OK;HARD;1;HTTP OK" for r in self.rows]
        events: list[tuple[int, str]] = []
        for s, waves in self.down.items():
            for a, b in waves:
                events.append((int(a.timestamp()), f"SERVICE ALERT: {s};HTTP;CRITICAL;HARD;3;connect failed"))
                events.append((int(b.timestamp()), f"SERVICE ALERT: {s};HTTP;OK;HARD;1;HTTP OK"))
        lines += [f"[{t}] {msg}" for t, msg in sorted(events)]
        path.write_text("\n".join(lines) + "\n")


def _row(service: str, kind: str, dc: str, rack: str, switch: str, host: str, app: str) -> dict[str, str]:
    return {
        "service": service,
        "kind": kind,
        "datacenter": dc,
        "rack": rack,
        "switch": switch,
        "host": host,
        "app": app,
        "critical": "false",
        "tags": "",
    }


def waves(start: datetime, pattern: list[tuple[int, int]]) -> list[tuple[datetime, datetime]]:
    """``[(down_min, up_min), …]`` from ``start``: the CRITICAL intervals of a flapping check."""
    out, t = [], start
    for down_min, up_min in pattern:
        out.append((t, t + timedelta(minutes=down_min)))
        t += timedelta(minutes=down_min + up_min)
    return out


# -- notices in their formats ------------------------------------------------------------------------


def iso(t: datetime, tz: str) -> str:
    """ISO 8601 in ``tz`` with its offset, as Statuspage pages in a local zone write it."""
    return t.astimezone(ZoneInfo(tz)).isoformat(timespec="milliseconds")


def statuspage_maintenance(
    path: Path,
    *,
    ident: str,
    name: str,
    start: datetime,
    until: datetime,
    status: str,
    updates: list[tuple[str, datetime, str]],
    components: list[str],
    page_tz: str,
    resolved: datetime | None = None,
) -> Path:
    """A ``scheduled-maintenances.json`` with one maintenance; ``updates`` are (status, time, body)."""
    ups = [
        {
            "id": f"u{n}",
            "incident_id": ident,
            "status": st,
            "body": body,
            "created_at": iso(at, page_tz),
            "display_at": iso(at, page_tz),
            "affected_components": [{"code": f"c{i}", "name": c} for i, c in enumerate(components)],
        }
        for n, (st, at, body) in enumerate(sorted(updates, key=lambda u: u[1], reverse=True))
    ]
    doc: dict[str, Any] = {
        "page": {"id": "pg1", "name": "Upstream Hosting", "time_zone": page_tz},
        "scheduled_maintenances": [
            {
                "id": ident,
                "name": name,
                "status": status,
                "impact": "maintenance",
                "created_at": iso(min(u[1] for u in updates), page_tz),
                "updated_at": iso(max(u[1] for u in updates), page_tz),
                "resolved_at": iso(resolved, page_tz) if resolved else None,
                "scheduled_for": iso(start, page_tz),
                "scheduled_until": iso(until, page_tz),
                "shortlink": f"https://stspg.example/{ident}",
                "incident_updates": ups,
                "components": [{"id": f"c{i}", "name": c} for i, c in enumerate(components)],
            }
        ],
    }
    path.write_text(json.dumps(doc, indent=1))
    return path


def _ical_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def ical_notice(
    path: Path,
    *,
    maint_id: str,
    summary: str,
    start: datetime,
    end: datetime,
    stamp: datetime,
    sequence: int,
    status: str,
    objects: list[str],
) -> Path:
    """One BCOP VEVENT (``X-MAINTNOTE-*``)."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Upstream//maint//EN",
        "BEGIN:VEVENT",
        f"SUMMARY:{summary}",
        f"DTSTART:{_ical_time(start)}",
        f"DTEND:{_ical_time(end)}",
        f"DTSTAMP:{_ical_time(stamp)}",
        f"UID:{maint_id.lower()}@upstream.example",
        f"SEQUENCE:{sequence}",
        "X-MAINTNOTE-PROVIDER:upstream.example",
        f"X-MAINTNOTE-MAINTENANCE-ID:{maint_id}",
        "X-MAINTNOTE-IMPACT:DEGRADED",
        *(f"X-MAINTNOTE-OBJECT-ID:{o}" for o in objects),
        f"X-MAINTNOTE-STATUS:{status}",
        "ORGANIZER;CN=NOC:mailto:noc@upstream.example",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


def atom_notice(
    path: Path, *, entry_id: str, title: str, start: datetime, end: datetime, published: datetime, body: str
) -> Path:
    """An Atom status feed with one entry whose HTML body carries a Statuspage window."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    until = f"{e:%b} {e.day}, {e:%H:%M}" if e.date() != s.date() else f"{e:%H:%M}"
    html = (
        f"&lt;p&gt;&lt;small&gt;{s:%b} &lt;var data-var='date'&gt;{s.day}&lt;/var&gt;, {s:%H:%M} - {until} UTC"
        f"&lt;/small&gt;&lt;br&gt;&lt;strong&gt;Scheduled&lt;/strong&gt; - {body}&lt;/p&gt;"
    )
    stamp = published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Upstream status</title>
  <id>tag:status.upstream.example,2005:/history</id>
  <updated>{stamp}</updated>
  <entry>
    <id>{entry_id}</id>
    <published>{stamp}</published>
    <updated>{stamp}</updated>
    <link rel="alternate" type="text/html" href="https://status.upstream.example/incidents/x"/>
    <title>{title}</title>
    <content type="html">{html}</content>
  </entry>
</feed>
"""
    )
    return path


# -- asking ------------------------------------------------------------------------------------------


def load(home: Path, paths: list[Path], tz: str) -> Warehouse:
    wh = Warehouse(home)
    ingest(wh, paths, ReadContext(tz=tz))
    return wh


def explain(home: Path, at: datetime, tz: str) -> Explanation:
    """``explain_at`` through the public engine call, as the CLI and the API make it."""
    from whatchanged.engine.explain import explain_at

    settings = load_settings(home=home, tz=tz)
    con = Warehouse(home).snapshot()
    try:
        return explain_at(con, at, settings=settings)
    finally:
        con.close()


def score_of(exp: Explanation, category: str, key: str | None = None) -> float:
    """The best score of ``category`` (and change id or component ``key``) among the causes."""
    got = [c.score for c in exp.causes if c.category == category and key in (None, c.change_id, c.component)]
    return max(got, default=0.0)
