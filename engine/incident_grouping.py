"""The grouping rules of step 3 (incidents): which anomalies and outages are one incident.

:func:`group_events` applies the rules of :mod:`whatchanged.engine.incidents` (its docstring
states them, ``docs/detection.md`` §4 explains them) to events already read; :func:`_incident`
turns a group into an :class:`~whatchanged.engine.model.Incident`, with its onset
(:func:`wave_onset`) and id (:func:`incident_id`).  Nothing here reads the warehouse:
finding, caching and looking incidents up are in :mod:`whatchanged.engine.incidents`, which
re-exports these names.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from whatchanged.engine.intervals import DEFAULT
from whatchanged.engine.model import Anomaly, Incident, Outage
from whatchanged.engine.outages import merge_intervals, total_s

FLAP_GAP_S = 900.0
LINK_GAP_S = 120.0
MIN_ANOMALY_S = 600.0
RECUR_GAP_S = 3600.0
RECUR_OVERLAP = 0.5
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


#: an anomaly of the median detector makes an incident (with another service's, or lasting
#: ``min_anomaly_s``): each went at least this many spreads away (its threshold) for its minimum
#: duration, beyond what its series does routinely (the heavy-tail guard).  A contextual one (a
#: pattern new to its series, :mod:`whatchanged.engine.ctxchain`) makes one only when it went as
#: far (``peak_score``) and lasted ``min_anomaly_s`` — a sustained change; its blips (a latency
#: spike of a minute or two on a heavy-tailed series, at the same time as another service's on
#: a fleet of a thousand) join an incident without making one
MATERIAL_Z = DEFAULT.threshold


def _lasted(a: Anomaly, cutoff: datetime, min_anomaly_s: float) -> bool:
    return ((a.end or cutoff) - a.start).total_seconds() >= min_anomaly_s


def _material(a: Anomaly, cutoff: datetime, min_anomaly_s: float) -> bool:
    return not a.contextual or (a.peak_score >= MATERIAL_Z and _lasted(a, cutoff, min_anomaly_s))


def _incident(g: _Group, cutoff: datetime, online: bool, min_anomaly_s: float) -> Incident | None:
    anomaly_services = {a.service for a in g.anomalies}
    material = [a for a in g.anomalies if _material(a, cutoff, min_anomaly_s)]
    long_anomaly = any(_lasted(a, cutoff, min_anomaly_s) for a in material)
    if not g.outages and len({a.service for a in material}) < 2 and not long_anomaly:
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
