"""Step 3 — incidents: anomalies and outages grouped across services.

Every anomaly (:mod:`whatchanged.engine.detect`) and outage
(:mod:`whatchanged.engine.outages`) is an *event* ``[onset, end]`` on one
service (an open end counts up to the data cut-off).  Two events belong to
the same incident when

1. they are on the **same service** and the second starts at most
   ``flap_gap_s`` (default 15 min) after the first ends — a run of short
   outages close together (flapping, repeated restarts) is one incident; or
2. they **overlap in time** (allowing ``link_gap_s``, default 2 min) and are
   **related by topology**: same datacenter, switch or host in the
   ``services`` view (same app only for services whose datacenter is
   unknown: two failures in two datacenters are two incidents).  A service missing from the inventory (often an
   external probe's name) relates to everything by time alone.

Groups are closed transitively; then a group starting at most ``recur_gap_s``
(1 h) after another ends, on mostly the same services (Jaccard of the service
sets at least 0.5), joins it: a second wave (works overrunning their window, a
fix that did not hold) is the same incident.  A group becomes an incident if it holds
an outage, or anomalies on at least two services, or one anomaly lasting at
least ``min_anomaly_s`` (default 10 min): a lone short wiggle is not an
incident.

``outage_count`` / ``downtime_s`` follow :class:`~whatchanged.engine.model.Incident`:
the external-probe down intervals merged across probes; if the incident has
none, the merged CRITICAL/DOWN intervals of its checks.  ``incident_id`` is
``inc-YYYYMMDDTHHMMZ-<6 hex>``: the onset minute in UTC and a hash of the
sorted affected services and that minute, so re-running on the same data
gives the same id.

Online (``online=True``) every input stops at ``end``: baselines, scores and
check states are causal.  Batch reads a little after ``end`` and lets the
change-point search look ahead to refine onsets (``onset_lookahead``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from whatchanged.engine.detect import DEFAULT, DetectParams, detect_anomalies
from whatchanged.engine.errors import NotFoundError
from whatchanged.engine.extent import last_data_ts
from whatchanged.engine.model import Anomaly, Incident, Outage, incident_from_dict
from whatchanged.engine.outages import find_outages, merge_intervals, total_s

FLAP_GAP_S = 900.0
LINK_GAP_S = 120.0
MIN_ANOMALY_S = 600.0
RECUR_GAP_S = 3600.0
CACHE_SIZE = 32
_CACHE: OrderedDict[tuple[Any, ...], tuple[Incident, ...]] = OrderedDict()
RECUR_OVERLAP = 0.5
#: inventory columns read for grouping (only datacenter, switch, host and app relate services)
TOPOLOGY = ("kind", "datacenter", "rack", "switch", "host", "app")
_ID = re.compile(r"^inc-(\d{8}T\d{4})Z-([0-9a-f]{6})$")


@dataclass
class _Group:
    start: datetime
    end: datetime
    keys: set[tuple[str, str]] = field(default_factory=set)
    anywhere: bool = False  # holds a service without inventory: relates by time alone
    service_end: dict[str, datetime] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)

    def absorb(self, other: _Group) -> None:
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        self.keys |= other.keys
        self.anywhere |= other.anywhere
        for s, e in other.service_end.items():
            self.service_end[s] = max(e, self.service_end.get(s, e))
        self.anomalies += other.anomalies
        self.outages += other.outages


def inventory(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str | None]]:
    """Topology columns of every service of the ``services`` view."""
    rows = con.execute(f"SELECT service, {', '.join(TOPOLOGY)} FROM services").fetchall()
    return {str(r[0]): dict(zip(TOPOLOGY, r[1:], strict=True)) for r in rows}


def incident_id(onset: datetime, services: Sequence[str]) -> str:
    minute = onset.astimezone(UTC).replace(second=0, microsecond=0)
    digest = hashlib.sha1(("|".join(sorted(services)) + "|" + minute.isoformat()).encode()).hexdigest()
    return f"inc-{minute:%Y%m%dT%H%M}Z-{digest[:6]}"


def _topology_keys(row: dict[str, str | None] | None) -> set[tuple[str, str]]:
    """What relates a service to others: its datacenter, switch and host; its app only
    when its datacenter is unknown (an app spread over datacenters would otherwise tie
    two unrelated failures in two datacenters into one incident)."""
    if not row:
        return set()
    keys = {(k, str(row[k])) for k in ("datacenter", "switch", "host") if row.get(k)}
    if not row.get("datacenter") and row.get("app"):
        keys.add(("app", str(row["app"])))
    return keys


def group_events(
    anomalies: Sequence[Anomaly],
    outages: Sequence[Outage],
    inv: dict[str, dict[str, str | None]],
    *,
    cutoff: datetime,
    flap_gap_s: float = FLAP_GAP_S,
    link_gap_s: float = LINK_GAP_S,
    recur_gap_s: float = RECUR_GAP_S,
    recur_overlap: float = RECUR_OVERLAP,
) -> list[_Group]:
    """Group events by the rules of the module docstring (a sweep over onsets)."""
    events: list[tuple[datetime, datetime, str, Anomaly | Outage]] = [
        (a.onset, a.end or cutoff, a.service, a) for a in anomalies
    ]
    events += [(o.start, o.end or cutoff, o.service, o) for o in outages]
    events.sort(key=lambda e: (e[0], e[2], repr(e[3])))
    flap = timedelta(seconds=flap_gap_s)
    link = timedelta(seconds=link_gap_s)
    active: list[_Group] = []
    done: list[_Group] = []
    for t0, t1, svc, ev in events:
        still: list[_Group] = []
        for g in active:
            (still if g.end + max(flap, link) >= t0 else done).append(g)
        active = still
        row = inv.get(svc)
        keys = _topology_keys(row)
        anywhere = row is None
        hits = []
        for g in active:
            same = svc in g.service_end and t0 <= g.service_end[svc] + flap
            related = anywhere or g.anywhere or bool(keys & g.keys)
            if same or (related and t0 <= g.end + link):
                hits.append(g)
        new = _Group(t0, t1, keys, anywhere, {svc: t1})
        if isinstance(ev, Outage):
            new.outages.append(ev)
        else:
            new.anomalies.append(ev)
        for g in hits:
            new.absorb(g)
        active = [g for g in active if all(g is not h for h in hits)] + [new]
    return _join_recurrences(done + active, timedelta(seconds=recur_gap_s), recur_overlap)


def _join_recurrences(groups: list[_Group], gap: timedelta, overlap: float) -> list[_Group]:
    """A second wave on mostly the same services (Jaccard ≥ ``overlap``) starting at most
    ``gap`` after a group ends is the same incident (works overrunning their window,
    a fix that did not hold)."""
    if gap <= timedelta(0):
        return groups
    out: list[_Group] = []
    for g in sorted(groups, key=lambda g: (g.start, g.end)):
        mine = set(g.service_end)
        for h in reversed(out):
            theirs = set(h.service_end)
            if g.start <= h.end + gap and len(mine & theirs) >= overlap * len(mine | theirs):
                h.absorb(g)
                break
        else:
            out.append(g)
    return out


def _incident(g: _Group, cutoff: datetime, online: bool, min_anomaly_s: float) -> Incident | None:
    anomaly_services = {a.service for a in g.anomalies}
    long_anomaly = any(((a.end or cutoff) - a.start).total_seconds() >= min_anomaly_s for a in g.anomalies)
    if not g.outages and len(anomaly_services) < 2 and not long_anomaly:
        return None
    starts = [(a.onset, a.onset_lookahead) for a in g.anomalies] + [(o.start, False) for o in g.outages]
    onset = min(t for t, _ in starts)
    lookahead = (not online) and any(la for t, la in starts if t == onset)
    ends = [a.end for a in g.anomalies] + [o.end for o in g.outages]
    end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
    services = sorted(anomaly_services | {o.service for o in g.outages})
    critical = sorted({o.service for o in g.outages if not o.external})
    external = [o for o in g.outages if o.external]
    basis = external or [o for o in g.outages if not o.external]
    merged = merge_intervals([(o.start, o.end or cutoff) for o in basis])
    outages = tuple(sorted(g.outages, key=lambda o: (o.start, o.service, o.check)))
    anomalies = tuple(sorted(g.anomalies, key=lambda a: (a.onset, a.service, a.metric)))
    return Incident(
        incident_id=incident_id(onset, services),
        onset=onset,
        end=end,
        services_affected=tuple(services),
        critical_services=tuple(critical),
        outage_count=len(merged),
        downtime_s=total_s(merged),
        outages=outages,
        anomalies=anomalies,
        signals=tuple(sorted({a.metric for a in g.anomalies})),
        onset_lookahead=lookahead,
    )


def _data_end(con: duckdb.DuckDBPyConnection) -> datetime:
    value = last_data_ts(con)
    return value if value is not None else datetime.now(UTC)


def find_incidents(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    *,
    online: bool = True,
    params: DetectParams = DEFAULT,
    flap_gap_s: float = FLAP_GAP_S,
    link_gap_s: float = LINK_GAP_S,
    min_anomaly_s: float = MIN_ANOMALY_S,
    cache_dir: Path | None = None,
) -> list[Incident]:
    """Incidents with at least one event overlapping ``[start, end)``, by onset.

    Results are cached per process, keyed by what the connection's metrics, states
    and services views read (the committed files, hence the manifests) and the
    arguments: a repeat is a cache hit, and a new commit of monitoring data (new
    files in the views of a fresh connection) is a miss.  With ``cache_dir`` the
    results are also kept on disk under the same key, so that a new process (the
    CLI) asking the same question about the same data reads them back instead of
    running detection again; a commit of changes (deploys, notices) does not
    invalidate them, since incidents do not depend on changes.
    """
    key = (views_key(con), start, end, online, params, flap_gap_s, link_gap_s, min_anomaly_s)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return list(hit)
    disk = cache_dir / f"incidents-{hashlib.sha1(repr(key).encode()).hexdigest()}.json" if cache_dir else None
    if disk is not None and disk.is_file():
        try:
            found = [incident_from_dict(d) for d in json.loads(disk.read_text())]
        except (OSError, ValueError, TypeError, KeyError):
            found = _find_incidents(con, start, end, online, params, flap_gap_s, link_gap_s, min_anomaly_s)
    else:
        found = _find_incidents(con, start, end, online, params, flap_gap_s, link_gap_s, min_anomaly_s)
        if disk is not None:
            _write_cache(disk, found)
    _CACHE[key] = tuple(found)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return found


def _write_cache(path: Path, found: list[Incident]) -> None:
    """Write atomically (temp + rename); a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([i.to_dict() for i in found]))
        os.replace(tmp, path)
    except OSError:
        pass


def views_key(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of the view definitions incidents depend on: they list the committed files."""
    rows = con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal "
        "AND view_name IN ('metrics', 'states', 'services') ORDER BY view_name"
    ).fetchall()
    return hashlib.sha1("\x00".join(f"{n}\x01{q}" for n, q in rows).encode()).hexdigest()


def clear_cache() -> None:
    _CACHE.clear()


def _find_incidents(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    online: bool,
    params: DetectParams,
    flap_gap_s: float,
    link_gap_s: float,
    min_anomaly_s: float,
) -> list[Incident]:
    cutoff = end if online else max(end, _data_end(con))
    anomalies = detect_anomalies(con, start, end, online=online, params=params)
    outages = find_outages(con, start, end, until=end if online else None)
    groups = group_events(
        anomalies, outages, inventory(con), cutoff=cutoff, flap_gap_s=flap_gap_s, link_gap_s=link_gap_s
    )
    found = [i for g in groups if (i := _incident(g, cutoff, online, min_anomaly_s)) is not None]
    found.sort(key=lambda i: (i.onset, i.incident_id))
    return found


def incident_at(
    con: duckdb.DuckDBPyConnection,
    at: datetime,
    *,
    before_s: float = 6 * 3600.0,
    after_s: float = 600.0,
    online: bool = False,
    cache_dir: Path | None = None,
) -> Incident | None:
    """Of the incidents whose span contains ``at`` or that start within ``after_s``
    after it, the one whose onset is nearest to ``at``; None if there is none."""
    found = find_incidents(
        con,
        at - timedelta(seconds=before_s),
        at + timedelta(seconds=max(after_s, before_s)),
        online=online,
        cache_dir=cache_dir,
    )
    covering = [i for i in found if i.onset <= at and (i.end is None or i.end >= at)]
    later = [i for i in found if at < i.onset <= at + timedelta(seconds=after_s)]
    near = covering + later
    if not near:
        return None
    # "what changed at T" asks about what started around T: the nearest onset wins
    return min(near, key=lambda i: (abs((i.onset - at).total_seconds()), -len(i.services_affected)))


def get_incident(con: duckdb.DuckDBPyConnection, incident_id: str) -> Incident:
    """Recompute the incident named ``incident_id`` around the time in the id."""
    m = _ID.match(incident_id.strip())
    if not m:
        raise NotFoundError(f"incident id: expected 'inc-YYYYMMDDTHHMMZ-<6 hex>', found {incident_id!r}")
    onset = datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
    hour = timedelta(hours=1)
    for lo, hi, online in (
        (onset - 6 * hour, onset + 6 * hour, False),
        (onset - 6 * hour, onset + 6 * hour, True),
    ):
        for inc in find_incidents(con, lo, hi, online=online):
            if inc.incident_id == incident_id:
                return inc
    raise NotFoundError(
        f"incident {incident_id}: no incident with this id starts at {onset:%Y-%m-%d %H:%M} UTC "
        "in the warehouse data (was the data changed since?)"
    )
