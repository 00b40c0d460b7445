"""Step 3 — incidents: anomalies and outages grouped across services.

Every anomaly (:mod:`whatchanged.engine.detect`) and outage
(:mod:`whatchanged.engine.outages`) is an *event* ``[onset, end]`` on one
service (an open end counts up to the end of the data).  An incident is the
failures of one cause (``docs/detection.md`` §4):

1. **waves** of hard failures — outages and *hard* anomalies (:func:`is_hard`:
   the metric doubled or halved): two hard events are in one wave when they are
   on the **same service** and the second starts at most ``flap_gap_s`` (15 min)
   after the first ends, or they **overlap in time** (± ``link_gap_s``, 2 min)
   and are **related by topology** (same datacenter, switch or host; same app
   only for services whose datacenter is unknown; a service missing from the
   inventory relates to everything by time), closed transitively — except that a
   *local burst* (3 services behind one switch or on one host within 3 min) starting
   5 min after a wave confined to another switch or host is a wave of its own
   (:func:`_elsewhere`);
2. every **soft** anomaly joins one wave — the latest whose hard span holds its
   onset, else the linked wave with the nearest onset — and never links two:
   a lingering soft anomaly does not chain a later wave to an earlier one;
   soft anomalies linked to no wave group among themselves;
3. a group whose hard failures start at most ``recur_gap_s`` (1 h) after
   another's end, on mostly the same services (Jaccard of the hard-failed
   services ≥ 0.5), joins it: works overrunning their window, a fix that did
   not hold.  A different set of hard failures is a new incident.

A group becomes an incident if it holds an outage, or anomalies on at least two
services, or one anomaly lasting at least ``min_anomaly_s`` (10 min).

An incident's onset, end, members and id do not depend on the range it was
computed over (:func:`settled_groups`): onsets are refined with the look-ahead,
events are read over a range widened until each incident is complete, open ends
count to the end of the data.  ``online=True`` keeps the causal computation
(what a live detector knew at ``end``) for evaluation only.

``outage_count`` / ``downtime_s`` follow :class:`~whatchanged.engine.model.Incident`:
the external-probe down intervals merged across probes; if the incident has
none, the merged CRITICAL/DOWN intervals of its checks.  ``incident_id`` is
``inc-YYYYMMDDTHHMMZ-<6 hex>``: the onset minute in UTC and a hash of the
sorted affected services and that minute.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
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
#: how far beyond a question's range the events of its incidents are looked for
MAX_REACH_S = 86400.0
#: an incident whose onset is this close after the asked time is under way at it
ONSET_SLACK_S = 120.0
#: an anomaly is hard when the metric doubled or halved (:func:`is_hard`)
HARD_FACTOR = 2.0
#: a *local burst*: this many services behind one switch or on one host failing within
#: ``BURST_S`` of each other; one that starts ``SPLIT_AFTER_S`` after a wave confined to
#: another switch (or host) is an incident of its own (:func:`_elsewhere`)
BURST_SERVICES = 3
BURST_S = 180.0
SPLIT_AFTER_S = 300.0
#: the onset of an incident's anomalies is that of its ``n // ONSET_QUORUM``-th deviating
#: service in onset order (n services): the earliest below 20, past the first 5 % above
#: (:func:`wave_onset`)
ONSET_QUORUM = 20
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
    #: the span and services of its hard failures (None: a group of soft anomalies only)
    hard_start: datetime | None = None
    hard_end: datetime | None = None
    hard_services: set[str] = field(default_factory=set)
    service_start: dict[str, datetime] = field(default_factory=dict)

    @property
    def hard(self) -> bool:
        return self.hard_start is not None

    def absorb(self, other: _Group) -> None:
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        self.keys |= other.keys
        self.anywhere |= other.anywhere
        for s, e in other.service_end.items():
            self.service_end[s] = max(e, self.service_end.get(s, e))
        for s, b in other.service_start.items():
            self.service_start[s] = min(b, self.service_start.get(s, b))
        if other.hard_start is not None and other.hard_end is not None:
            self.hard_start = (
                other.hard_start if self.hard_start is None else min(self.hard_start, other.hard_start)
            )
            self.hard_end = other.hard_end if self.hard_end is None else max(self.hard_end, other.hard_end)
        self.hard_services |= other.hard_services
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


def is_hard(a: Anomaly, factor: float = HARD_FACTOR) -> bool:
    """A *hard* anomaly: the metric at least doubled or halved against its baseline (the
    median observed value over the anomaly against the expected value at its onset), or
    left or crossed zero.  A softer departure (requests piling up 1.4×, a front's request
    rate staying at 70 % after a failover) is a *soft* anomaly: it joins the wave it
    belongs to and never links two waves."""
    b, o = a.baseline, a.observed
    if not (math.isfinite(b) and math.isfinite(o)) or b <= 0 or o <= 0:
        return True
    ratio = o / b
    return ratio >= factor or ratio <= 1.0 / factor


def _event_group(
    t0: datetime,
    t1: datetime,
    svc: str,
    ev: Anomaly | Outage,
    inv: dict[str, dict[str, str | None]],
    hard: bool,
) -> _Group:
    row = inv.get(svc)
    g = _Group(t0, t1, _topology_keys(row), row is None, {svc: t1}, service_start={svc: t0})
    if isinstance(ev, Outage):
        g.outages.append(ev)
    else:
        g.anomalies.append(ev)
    if hard:
        g.hard_start, g.hard_end, g.hard_services = t0, t1, {svc}
    return g


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
    hard_factor: float = HARD_FACTOR,
) -> list[_Group]:
    """Group events by the rules of the module docstring: waves of hard failures (a sweep
    over onsets), soft anomalies attached to one wave each, then recurrences joined."""
    hard = [a for a in anomalies if is_hard(a, hard_factor)]
    soft = [a for a in anomalies if not is_hard(a, hard_factor)]
    flap = timedelta(seconds=flap_gap_s)
    link = timedelta(seconds=link_gap_s)
    waves = _sweep(hard, outages, inv, cutoff=cutoff, flap=flap, link=link)
    groups = _attach_soft(waves, soft, inv, cutoff=cutoff, flap=flap, link=link)
    return _join_recurrences(groups, timedelta(seconds=recur_gap_s), recur_overlap)


def _sweep(
    anomalies: Sequence[Anomaly],
    outages: Sequence[Outage],
    inv: dict[str, dict[str, str | None]],
    *,
    cutoff: datetime,
    flap: timedelta,
    link: timedelta,
) -> list[_Group]:
    """Hard events into waves: same service within ``flap``, or overlapping (± ``link``) and
    related by topology, closed transitively."""
    events: list[tuple[datetime, datetime, str, Anomaly | Outage]] = [
        (a.onset, a.end or cutoff, a.service, a) for a in anomalies
    ]
    events += [(o.start, o.end or cutoff, o.service, o) for o in outages]
    events.sort(key=lambda e: (e[0], e[2], repr(e[3])))
    bursts = _local_bursts(events, inv)
    active: list[_Group] = []
    done: list[_Group] = []
    for t0, t1, svc, ev in events:
        still: list[_Group] = []
        for g in active:
            (still if g.end + max(flap, link) >= t0 else done).append(g)
        active = still
        new = _event_group(t0, t1, svc, ev, inv, True)
        burst = bursts.get((t0, svc))
        hits = []
        for g in active:
            same = svc in g.service_end and t0 <= g.service_end[svc] + flap
            related = new.anywhere or g.anywhere or bool(new.keys & g.keys)
            if related and burst is not None and _elsewhere(g, new, t0):
                related = False
            if same or (related and t0 <= g.end + link):
                hits.append(g)
        for g in hits:
            new.absorb(g)
        active = [g for g in active if all(g is not h for h in hits)] + [new]
    return done + active


def _local_bursts(
    events: Sequence[tuple[datetime, datetime, str, Anomaly | Outage]], inv: dict[str, dict[str, str | None]]
) -> dict[tuple[datetime, str], tuple[str, str]]:
    """``(onset, service) → (switch or host key)`` for the hard events that belong to a *local
    burst*: at least :data:`BURST_SERVICES` services behind one switch (or on one host)
    failing within :data:`BURST_S` of each other — a rack losing its switch, a host dying."""
    by_place: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
    for t0, _t1, svc, _ev in events:
        row = inv.get(svc) or {}
        for kind in ("switch", "host"):
            if row.get(kind):
                by_place.setdefault((kind, str(row[kind])), []).append((t0, svc))
    out: dict[tuple[datetime, str], tuple[str, str]] = {}
    window = timedelta(seconds=BURST_S)
    for place, hits in sorted(by_place.items()):
        hits.sort()
        times = [t for t, _ in hits]
        for t, svc in hits:
            lo = bisect.bisect_left(times, t - window)
            hi = bisect.bisect_right(times, t + window)
            if len({s for _, s in hits[lo:hi]}) >= BURST_SERVICES and (t, svc) not in out:
                out[(t, svc)] = place
    return out


def _elsewhere(g: _Group, new: _Group, t0: datetime) -> bool:
    """Whether an event of a local burst is a failure of its own beside the wave
    ``g``: ``g`` is itself local (its hard failures all behind one switch), started at
    least :data:`SPLIT_AFTER_S` before, and shares nothing with the event but the
    datacenter.  Two things going wrong in one datacenter at once stay two incidents; a
    wave already spread over several switches takes in what else fails there."""
    if t0 - _hard_start(g) < timedelta(seconds=SPLIT_AFTER_S) or g.anywhere:
        return False
    if {k for k in new.keys & g.keys if k[0] != "datacenter"}:
        return False
    switches = {v for k, v in g.keys if k == "switch"}
    hosts = {v for k, v in g.keys if k == "host"}
    return len(switches) == 1 or (not switches and len(hosts) == 1)


def _attach_soft(
    waves: list[_Group],
    soft: Sequence[Anomaly],
    inv: dict[str, dict[str, str | None]],
    *,
    cutoff: datetime,
    flap: timedelta,
    link: timedelta,
) -> list[_Group]:
    """Each soft anomaly joins one wave: the latest whose hard span holds its onset, else the
    wave it is linked to (same service within ``flap``, or overlapping its hard span and
    related) whose onset is nearest.  Soft anomalies linked to no wave group among
    themselves by the same rules; such a soft group joins the wave a later soft anomaly
    links it to.  A soft anomaly never joins two waves."""
    waves = sorted(waves, key=_order)
    starts = [_hard_start(w) for w in waves]
    reach = max(flap, link)
    loose: list[_Group] = []
    for a in sorted(soft, key=lambda a: (a.onset, a.service, a.metric, a.start)):
        t0, t1, svc = a.onset, a.end or cutoff, a.service
        new = _event_group(t0, t1, svc, a, inv, False)

        upto = bisect.bisect_right(starts, t1 + reach)
        ws = [w for w in waves[:upto] if _links(new, w, _hard_start(w), _hard_end(w), flap, link)]
        ss = [g for g in loose if _links(new, g, g.start, g.end, flap, link)]
        if ws:
            inside = [w for w in ws if _hard_start(w) - link <= t0 <= _hard_end(w) + link]
            target = (
                max(inside, key=_order)
                if inside
                else min(ws, key=lambda w: (abs((_hard_start(w) - t0).total_seconds()), _order(w)))
            )
        else:
            target = new
            loose.append(new)
        for g in ss:
            target.absorb(g)
        loose = [g for g in loose if all(g is not h for h in ss)]
        if target is not new:
            target.absorb(new)
    return waves + loose


def _links(one: _Group, g: _Group, lo: datetime, hi: datetime, flap: timedelta, link: timedelta) -> bool:
    """Whether the single-event group ``one`` links to ``g`` spanning ``[lo, hi]``: the same
    service within ``flap``, or overlapping (± ``link``) and related by topology."""
    [(svc, t1)] = one.service_end.items()
    t0 = one.start
    first = g.service_start.get(svc)
    if first is not None and t0 <= g.service_end[svc] + flap and first <= t1 + flap:
        return True
    related = one.anywhere or g.anywhere or bool(one.keys & g.keys)
    return related and t0 <= hi + link and lo <= t1 + link


def _hard_start(g: _Group) -> datetime:
    return g.hard_start if g.hard_start is not None else g.start


def _hard_end(g: _Group) -> datetime:
    return g.hard_end if g.hard_end is not None else g.end


def _core(g: _Group) -> set[str]:
    """The services a recurrence is judged on: those that failed hard, else all."""
    return g.hard_services or set(g.service_end)


def _order(g: _Group) -> tuple[datetime, datetime, str]:
    return (_hard_start(g), _hard_end(g), min(g.service_end))


def _join_recurrences(groups: list[_Group], gap: timedelta, overlap: float) -> list[_Group]:
    """A second wave on mostly the same services (Jaccard ≥ ``overlap`` of the services that
    failed hard) starting at most ``gap`` after a group's hard failures end is the same
    incident (works overrunning their window, a fix that did not hold); a different set
    of hard failures is a new incident."""
    if gap <= timedelta(0):
        return groups
    out: list[_Group] = []
    for g in sorted(groups, key=_order):
        mine = _core(g)
        for h in reversed(out):
            theirs = _core(h)
            if _hard_start(g) <= _hard_end(h) + gap and len(mine & theirs) >= overlap * len(mine | theirs):
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
    onset = wave_onset(g)
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


def wave_onset(g: _Group) -> datetime:
    """The onset of a group: its first outage, or the onset of its anomalies, whichever is
    first.  An outage's start is observed; an anomaly's onset is an estimate from noisy
    samples, and the earliest of hundreds of estimates is biased early (a fleet-wide step
    at 08:00 on a rising morning curve gave 07:53), so in an incident of n ≥ 20 deviating
    services the anomalies' onset is that of the (n // :data:`ONSET_QUORUM` + 1)-th service
    to deviate: a few early estimates do not move it, a real precursor (5 % of the
    services) does.  Below 20 services, the earliest."""
    first: dict[str, datetime] = {}
    for a in g.anomalies:
        first[a.service] = min(a.onset, first.get(a.service, a.onset))
    onsets = sorted(first.values())
    candidates = [o.start for o in g.outages]
    if onsets:
        candidates.append(onsets[len(onsets) // ONSET_QUORUM])
    return min(candidates)


def _data_end(con: duckdb.DuckDBPyConnection) -> datetime:
    value = last_data_ts(con)
    return value if value is not None else datetime.now(UTC)


def find_incidents(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    *,
    online: bool = False,
    params: DetectParams = DEFAULT,
    flap_gap_s: float = FLAP_GAP_S,
    link_gap_s: float = LINK_GAP_S,
    min_anomaly_s: float = MIN_ANOMALY_S,
    cache_dir: Path | None = None,
) -> list[Incident]:
    """Incidents whose span overlaps ``[start, end)``, whole (with their events outside the
    range), by onset; their id, onset and members do not depend on the range
    (:func:`settled_groups`).  ``online=True``: what a live detector knew at ``end`` (no
    onset look-ahead, nothing after ``end``), for evaluation; its ids may differ.

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
    if online:
        cutoff = end
        anomalies = detect_anomalies(con, start, end, online=True, params=params)
        outages = find_outages(con, start, end, until=end)
        groups = group_events(
            anomalies, outages, inventory(con), cutoff=cutoff, flap_gap_s=flap_gap_s, link_gap_s=link_gap_s
        )
    else:
        groups, cutoff = settled_groups(
            con, start, end, params=params, flap_gap_s=flap_gap_s, link_gap_s=link_gap_s
        )
    found = [i for g in groups if (i := _incident(g, cutoff, online, min_anomaly_s)) is not None]
    found.sort(key=lambda i: (i.onset, i.incident_id))
    return found


def settled_groups(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    *,
    params: DetectParams = DEFAULT,
    flap_gap_s: float = FLAP_GAP_S,
    link_gap_s: float = LINK_GAP_S,
    recur_gap_s: float = RECUR_GAP_S,
    reach_s: float = MAX_REACH_S,
) -> tuple[list[_Group], datetime]:
    """The groups whose span overlaps ``[start, end)``, computed so that they do not depend on
    that range: events are read over a wider span, widened again (by at most ``reach_s``
    on each side) until every such group starts and ends at least a linking distance
    (``recur_gap_s`` + the larger of the flap and link gaps) inside it, so that no event
    outside could have joined it; onsets are refined with the look-ahead wherever the data
    has it, and open ends count up to the end of the data.  Returns the groups and that
    cut-off."""
    data_end = _data_end(con)
    cutoff = data_end
    margin = timedelta(seconds=recur_gap_s + max(flap_gap_s, link_gap_s))
    floor_ = start - timedelta(seconds=reach_s)  # before the first data, reading costs nothing
    ceil_ = min(data_end + timedelta(minutes=1), end + timedelta(seconds=reach_s))
    ceil_ = max(ceil_, end)
    lo = max(floor_, start - margin)
    hi = max(end, min(ceil_, end + 2 * margin))
    inv = inventory(con)
    while True:
        anomalies = detect_anomalies(con, lo, hi, online=False, params=params)
        outages = find_outages(con, lo, hi)
        groups = group_events(
            anomalies,
            outages,
            inv,
            cutoff=cutoff,
            flap_gap_s=flap_gap_s,
            link_gap_s=link_gap_s,
            recur_gap_s=recur_gap_s,
        )
        mine = [g for g in groups if g.start < end and g.end >= start]
        early = [g.start - margin for g in mine if g.start < lo + margin]
        late = [g.end + margin for g in mine if g.end > hi - margin]
        new_lo = max(floor_, min(early)) if early and lo > floor_ else lo
        new_hi = min(ceil_, max(late)) if late and hi < ceil_ else hi
        if new_lo >= lo and new_hi <= hi:
            return mine, cutoff
        lo, hi = min(lo, new_lo), max(hi, new_hi)


def incidents_at(
    con: duckdb.DuckDBPyConnection,
    at: datetime,
    *,
    after_s: float = 600.0,
    slack_s: float = ONSET_SLACK_S,
    cache_dir: Path | None = None,
) -> tuple[Incident | None, tuple[Incident, ...]]:
    """The incident "what changed at ``at``" is about, and the others under way with it.

    Of the incidents under way at ``at`` (onset at most ``slack_s`` after it — onsets are
    refined to about a minute), the one whose onset is nearest before ``at``: the latest
    wave, not one still lingering from earlier; if none, the first starting within
    ``after_s`` after ``at``.  The second item lists the other incidents whose span
    overlaps the chosen one's, by onset."""
    found = find_incidents(
        con,
        at - timedelta(seconds=FLAP_GAP_S),
        at + timedelta(seconds=max(after_s, slack_s)),
        cache_dir=cache_dir,
    )
    soon = at + timedelta(seconds=slack_s)
    under_way = [i for i in found if i.onset <= soon and (i.end is None or i.end >= at)]
    later = [i for i in found if soon < i.onset <= at + timedelta(seconds=after_s)]
    if under_way:
        chosen = max(under_way, key=lambda i: (i.onset, len(i.services_affected), i.incident_id))
    elif later:
        chosen = min(later, key=lambda i: (i.onset, -len(i.services_affected), i.incident_id))
    else:
        return None, ()
    others = tuple(i for i in found if i is not chosen and _overlap(i, chosen))
    return chosen, others


def overlapping(con: duckdb.DuckDBPyConnection, incident: Incident) -> tuple[Incident, ...]:
    """The other incidents whose span overlaps ``incident``'s, by onset."""
    end = incident.end or incident.onset + timedelta(minutes=1)
    found = find_incidents(con, incident.onset, max(end, incident.onset + timedelta(minutes=1)))
    return tuple(i for i in found if i.incident_id != incident.incident_id and _overlap(i, incident))


def _overlap(a: Incident, b: Incident) -> bool:
    return (a.end is None or a.end > b.onset) and (b.end is None or b.end > a.onset)


def incident_at(
    con: duckdb.DuckDBPyConnection,
    at: datetime,
    *,
    after_s: float = 600.0,
    cache_dir: Path | None = None,
) -> Incident | None:
    """The incident of :func:`incidents_at` (None if there is none)."""
    return incidents_at(con, at, after_s=after_s, cache_dir=cache_dir)[0]


def get_incident(con: duckdb.DuckDBPyConnection, incident_id: str) -> Incident:
    """Recompute the incident named ``incident_id`` around the minute in the id."""
    m = _ID.match(incident_id.strip())
    if not m:
        raise NotFoundError(f"incident id: expected 'inc-YYYYMMDDTHHMMZ-<6 hex>', found {incident_id!r}")
    onset = datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
    # an incident's id, onset and members do not depend on the range: the minute of its onset finds it
    for inc in find_incidents(con, onset, onset + timedelta(minutes=1)):
        if inc.incident_id == incident_id:
            return inc
    raise NotFoundError(
        f"incident {incident_id}: no incident with this id starts at {onset:%Y-%m-%d %H:%M} UTC "
        "in the warehouse data (was the data changed since?)"
    )
