"""The input files a world is emitted as, in the formats whatchanged reads: metrics (long and
wide CSV, Parquet, Prometheus JSON and text), check states (Nagios log, Pingdom export) and
changes (deploy CSV and JSON Lines, iCalendar, Statuspage, RSS, a works page).  Written from
the formats' documentation, not from our readers."""

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.data.world_kit import Series, csv_bytes

MIN = timedelta(minutes=1)


def metrics_long_csv(s: Series, *, zone: str | None) -> bytes:
    """Long CSV; ISO times with the offset of ``zone``, or epoch seconds when ``zone`` is None."""
    if zone is None:
        stamps = [str(int(t)) for t in s.times]
    else:
        z = ZoneInfo(zone)
        stamps = [datetime.fromtimestamp(int(t), z).isoformat() for t in s.times]
    out = ["timestamp,service,metric,value\n"]
    for i, j, row in s.samples():
        svc, met = s.services[i], s.metrics[j]
        out.extend(f"{stamps[k]},{svc},{met},{v:g}\n" for k, v in enumerate(row.tolist()) if v == v)
    return "".join(out).encode()


def metrics_wide_csv(s: Series) -> bytes:
    """Wide CSV, epoch seconds; a missing sample is an empty cell."""
    out = ["timestamp,service," + ",".join(s.metrics) + "\n"]
    for i, svc in enumerate(s.services):
        block = s.values[i]
        for k, t in enumerate(s.times.tolist()):
            cells = ["" if v != v else f"{v:g}" for v in block[:, k].tolist()]
            if any(cells):
                out.append(f"{t},{svc}," + ",".join(cells) + "\n")
    return "".join(out).encode()


def metrics_parquet(s: Series) -> bytes:
    """Long Parquet with tz-aware UTC timestamps; missing samples are absent rows."""
    n, m, k = s.values.shape
    ts = np.tile(s.times, n * m)
    svc = np.repeat(np.arange(n), m * k)
    met = np.tile(np.repeat(np.arange(m), k), n)
    val = s.values.reshape(-1)
    keep = ~np.isnan(val)
    table = pa.table(
        {
            "timestamp": pa.array(ts[keep] * 1_000_000, pa.timestamp("us", tz="UTC")),
            "service": pa.DictionaryArray.from_arrays(pa.array(svc[keep], pa.int32()), s.services),
            "metric": pa.DictionaryArray.from_arrays(pa.array(met[keep], pa.int32()), s.metrics),
            "value": pa.array(val[keep], pa.float64()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def metrics_prometheus_json(s: Series, *, label: str = "service") -> dict[str, bytes]:
    """One ``query_range`` response per metric, named after it (``p99_ms.json``)."""
    files = {}
    for j, metric in enumerate(s.metrics):
        result = []
        for i, svc in enumerate(s.services):
            row = s.values[i, j].tolist()
            pairs = [[int(t), f"{v:g}"] for t, v in zip(s.times.tolist(), row, strict=True) if v == v]
            result.append({"metric": {"__name__": metric, label: svc, "env": "prod"}, "values": pairs})
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        files[f"{metric}.json"] = json.dumps(body, separators=(",", ":")).encode()
    return files


def metrics_prometheus_text(s: Series) -> bytes:
    """Prometheus text 0.0.4 with millisecond timestamps (a federation dump)."""
    out = []
    for j, metric in enumerate(s.metrics):
        out.append(f"# TYPE {metric} gauge\n")
        for i, svc in enumerate(s.services):
            row = s.values[i, j].tolist()
            out.extend(
                f'{metric}{{service="{svc}",env="prod"}} {v:g} {int(t) * 1000}\n'
                for t, v in zip(s.times.tolist(), row, strict=True)
                if v == v
            )
    return "".join(out).encode()


# --------------------------------------------------------------------------- check states


@dataclass(frozen=True)
class Down:
    """A check of ``service`` failing from ``start`` to ``end``."""

    service: str
    start: datetime
    end: datetime
    check: str = "HTTP"
    host_alert: str | None = None  # DOWN / UNREACHABLE: a HOST ALERT instead of a SERVICE ALERT


def nagios_log(downs: Sequence[Down], *, oks: Sequence[str] = (), since: datetime) -> bytes:
    """Nagios log: current states at ``since``, then a SOFT, a HARD and a recovery per failure."""
    lines: list[tuple[int, str]] = []
    t0 = int(since.timestamp())
    for svc in oks:
        lines.append(
            (t0, f"CURRENT SERVICE STATE: {svc};HTTP;OK;HARD;1;HTTP OK: HTTP/1.1 200 OK - 0.041 second")
        )
    lines.append((t0, "LOG ROTATION: DAILY"))
    for d in downs:
        a, b = int(d.start.timestamp()), int(d.end.timestamp())
        if d.host_alert:
            out = "PING CRITICAL - Packet loss = 100%"
            lines.append((a, f"HOST ALERT: {d.service};{d.host_alert};SOFT;1;{out}"))
            lines.append((a + 60, f"HOST ALERT: {d.service};{d.host_alert};HARD;3;{out}"))
            lines.append((b, f"HOST ALERT: {d.service};UP;HARD;1;PING OK - Packet loss = 0%, RTA = 0.61 ms"))
        else:
            out = "CRITICAL - Socket timeout after 10 seconds"
            lines.append((a, f"SERVICE ALERT: {d.service};{d.check};CRITICAL;SOFT;1;{out}"))
            lines.append((a + 60, f"SERVICE ALERT: {d.service};{d.check};CRITICAL;HARD;3;{out}"))
            lines.append(
                (a + 60, f"SERVICE NOTIFICATION: oncall;{d.service};{d.check};CRITICAL;notify-by-email;{out}")
            )
            lines.append(
                (b, f"SERVICE ALERT: {d.service};{d.check};OK;HARD;1;HTTP OK: HTTP/1.1 200 OK - 0.052 second")
            )
    lines.sort(key=lambda x: x[0])
    return "".join(f"[{t}] {text}\n" for t, text in lines).encode()


def pingdom_export(
    checks: Sequence[tuple[int, str, str, Sequence[tuple[datetime, datetime]]]],
    *,
    since: datetime,
    until: datetime,
) -> dict[str, bytes]:
    """``pingdom/checks.json`` and one summary per check: (id, name, service, down intervals)."""
    listing = []
    files = {}
    for cid, name, service, downs in checks:
        listing.append(
            {
                "id": cid,
                "name": name,
                "hostname": f"{name.split()[0]}.example.net",
                "status": "up",
                "resolution": 1,
                "type": "http",
                "tags": [{"name": f"svc-{service}", "type": "u", "count": 1}],
            }
        )
        states = []
        cur = int(since.timestamp())
        for a, b in sorted(downs):
            states.append({"status": "up", "timefrom": cur, "timeto": int(a.timestamp())})
            states.append({"status": "down", "timefrom": int(a.timestamp()), "timeto": int(b.timestamp())})
            cur = int(b.timestamp())
        states.append({"status": "up", "timefrom": cur, "timeto": int(until.timestamp())})
        files[f"pingdom/summary.outage.{cid}.json"] = json.dumps(
            {"summary": {"states": states}}, indent=1
        ).encode()
    files["pingdom/checks.json"] = json.dumps({"checks": listing}, indent=1).encode()
    return files


# --------------------------------------------------------------------------- changes


def deploy_csv(rows: Sequence[dict[str, str]]) -> bytes:
    cols = [
        "id",
        "timestamp",
        "service",
        "version",
        "author",
        "description",
        "end",
        "environment",
        "app",
        "kind",
    ]
    return csv_bytes(([r.get(c, "") for c in cols] for r in rows), cols)


def deploy_jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def ical(events: Sequence[dict[str, str]]) -> bytes:
    """A VCALENDAR, one VEVENT per dict of ``PROPERTY[;PARAMS]`` → value (in order)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//noc mailer//maintenance//EN", "METHOD:PUBLISH"]
    for ev in events:
        lines.append("BEGIN:VEVENT")
        lines.extend(f"{k.split('#')[0]}:{v}" for k, v in ev.items())
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def ical_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def statuspage(
    page_zone: str, *, incidents: Sequence[dict[str, Any]] = (), maintenances: Sequence[dict[str, Any]] = ()
) -> bytes:
    page = {
        "id": "kct2m0vw",
        "name": "Example Cloud Status",
        "url": "https://status.cloud.example",
        "time_zone": page_zone,
    }
    body: dict[str, Any] = {"page": page}
    if maintenances:
        body["scheduled_maintenances"] = list(maintenances)
    if incidents or not maintenances:
        body["incidents"] = list(incidents)
    return json.dumps(body, indent=1).encode()


def rss(channel: str, items: Sequence[dict[str, str]]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{channel}</title><link>https://status.cloud.example</link><description>{channel}</description>",
    ]
    for it in items:
        parts.append(
            "<item>"
            f"<title>{it['title']}</title><link>{it['link']}</link><guid>{it['guid']}</guid>"
            f"<pubDate>{it['pubDate']}</pubDate><description>{it['description']}</description>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def rfc822(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def works(blocks: Sequence[dict[str, str]]) -> bytes:
    out = []
    for b in blocks:
        out.append(
            f"{b['id']} | {b['title']}\nStatus: {b['status']}\nStart: {b['start']}\nEnd: {b['end']}\n"
            f"Updated: {b['updated']}\nDatacenter: {b['dc']}\nDescription:\n{b['description']}\n"
        )
    return "---\n".join(out).encode()
