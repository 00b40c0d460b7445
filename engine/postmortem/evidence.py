"""The cause section's facts: evidence for and against a ranked cause, and why each other
class was ruled out, as :class:`~whatchanged.engine.postmortem.model.Point` s (a code and the
values its sentence needs) so that every language words them from the same numbers.

The rules are the ranking's (:mod:`whatchanged.engine.candidates`, and
:func:`whatchanged.engine.explain.ruled_out` for the classes ruled out), read again from the
same data: the window as updated against the onset, the affected services inside the
change's resolved scope, the network or error-rate signature, the component that failed
first.  The engine's own English sentences travel beside them in the JSON form
(``engine_evidence``), for the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb

from whatchanged.engine import candidates as cands
from whatchanged.engine.fate import Inventory, smallest_domain
from whatchanged.engine.model import Cause, Change, Incident, RuledOut
from whatchanged.engine.postmortem.model import CauseFacts, Point, Record, RuledOutFacts, SignalMove, unit_of
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.store import changes_history

#: component levels, narrowest first (a name is read at the first level that has it)
LEVELS = ("service", "host", "switch", "rack", "datacenter")


def change_record(ch: Change) -> Record:
    return Record("changes", {"change_id": ch.change_id, "kind": ch.kind, "source": ch.source or ""})


def component_level(topo: cands.Topology, component: str) -> str | None:
    for level in LEVELS:
        if topo.members(level, component):
            return level
    return None


def versions(con: Snapshot, ch: Change) -> tuple[tuple[datetime, str | None], ...]:
    """Every stored version of ``ch`` that carries a stamp (when its source published or updated
    it), as (stamp, status), oldest first; empty when no version says when it was written."""
    try:
        rel = changes_history(con)
        quoted = ch.change_id.replace("'", "''")
        rows = rel.filter(f"change_id = '{quoted}' AND stamp IS NOT NULL").project("stamp, status").fetchall()
    except duckdb.Error:  # a warehouse whose history cannot be read: no dates rather than wrong ones
        rows = []
    return tuple(sorted({(r[0], r[1]) for r in rows}, key=lambda r: (r[0], r[1] or "")))


def _window_points(incident: Incident, ch: Change) -> tuple[list[Point], list[Point]]:
    onset = incident.onset
    values = {"change_id": ch.change_id, "start": ch.start, "end": ch.end, "onset": onset}
    if ch.end is None or ch.start <= onset <= ch.end:
        return [Point("window_covers_onset", values)], []
    if cands.extended_over(onset, ch):
        return [Point("window_overran", values)], []
    if onset > ch.end:
        gap = (onset - ch.end).total_seconds()
        return [], [Point("window_ended_before", {**values, "gap_s": gap})]
    gap = (ch.start - onset).total_seconds()
    return [], [Point("window_starts_after", {**values, "gap_s": gap})]


def _scope_points(
    incident: Incident, ch: Change, inv: Inventory, *, release: bool
) -> tuple[list[Point], list[Point]]:
    affected = set(incident.services_affected)
    scope = set(ch.resolved_services)
    hit = affected & scope
    if not scope:
        return [], [Point("scope_unmatched", {"change_id": ch.change_id})]
    domain = smallest_domain(inv, sorted(hit)) if hit else None
    where = {"level": domain.level, "name": domain.name} if domain else {}
    if release:
        if not hit:
            return [], [Point("release_reached_none", {"reached": len(scope)})]
        support = [Point("release_reached_affected", {"hit": len(hit), "affected": len(affected)})]
        against = (
            [Point("release_reached_unaffected", {"reached": len(scope), "hit": len(hit)})]
            if len(hit) < 0.5 * len(scope)
            else []
        )
        return support, against
    if not hit:
        return [], [Point("scope_misses_affected", {"scope": len(scope)})]
    support = [Point("scope_holds_affected", {"in_scope": len(hit), "affected": len(affected), **where})]
    missed = affected - scope
    return support, ([Point("affected_outside_scope", {"outside": len(missed)})] if missed else [])


def _signature(
    incident: Incident, signals: Sequence[SignalMove], *, release_scope: set[str] | None
) -> tuple[list[Point], list[Point]]:
    network, errors = cands.signals(incident)
    drop = next((s for s in signals if s.network and s.direction == "down"), None)
    if release_scope is not None:
        if errors & release_scope:
            return [Point("error_rate_jump", {"services": len(errors & release_scope)})], []
        if network and not errors:
            return [], [Point("network_not_app", {})]
        return [], []
    if network and drop is not None:
        return [
            Point(
                "network_drop",
                {
                    "metric": drop.metric,
                    "unit": unit_of(drop.metric),
                    "services": len(drop.services),
                    "expected": drop.expected,
                    "observed": drop.observed,
                },
            )
        ], []
    return [], []


def _hosting_points(
    incident: Incident,
    cause: Cause,
    level: str | None,
    topo: cands.Topology,
    covering: Sequence[Change],
) -> tuple[list[Point], list[Point], tuple[str, ...]]:
    component = cause.component or ""
    affected = set(incident.services_affected)
    hard = cands.hard_failed(incident) & affected
    lvl = level or "service"
    members = topo.members(lvl, component) or {component}
    under = affected & members
    first = cands.first_failures(incident)
    at = min((first[s] for s in under), default=cause.start or incident.onset)
    host = topo.value(component, "host") if lvl == "service" else None
    host = host if host != component else None  # a switch or host inventoried under its own name
    support = [Point("failed_first", {"component": component, "level": lvl, "at": at, "host": host})]
    against: list[Point] = []
    down = sorted(
        {o.check for o in incident.outages if o.service in members and cands.HOST_CHECKS.match(o.check)}
    )
    if down:
        support.append(Point("machine_down", {"checks": down}))
    single = lvl == "service" or len(members) == 1
    if not single:
        failed = len(under & hard)
        (support if failed >= 0.5 * len(members) else against).append(
            Point(
                "members_failed", {"failed": failed, "members": len(members), "level": lvl, "name": component}
            )
        )
    downstream = sorted((affected - under) & topo.app_peers(under)) if single else []
    if downstream:
        support.append(Point("downstream", {"services": downstream}))
    if lvl == "datacenter":
        against.append(Point("no_single_first", {}))
    against.extend(
        Point("covered_by", {"change_id": ch.change_id}, (change_record(ch),))
        for ch in covering
        if under and under <= set(ch.resolved_services)
    )
    return support, against, tuple(sorted(members))


def cause_facts(
    con: Snapshot,
    incident: Incident,
    cause: Cause,
    changes: Sequence[Change],
    topo: cands.Topology,
    inv: Inventory,
    signals: Sequence[SignalMove],
) -> CauseFacts:
    """The evidence for and against ``cause``, from the data behind it."""
    ch = next((c for c in changes if cause.change_id and c.change_id == cause.change_id), None)
    support: list[Point] = []
    against: list[Point] = []
    level = None
    scope: tuple[str, ...] = ()
    if ch is not None and ch.kind in cands.MAINTENANCE_KINDS:
        p, c = _window_points(incident, ch)
        support += p
        against += c
        p, c = _scope_points(incident, ch, inv, release=False)
        support += p
        against += c
        p, c = _signature(incident, signals, release_scope=None)
        support += p
        against += c
        if ch.cancelled:
            against.append(Point("cancelled", {}))
        scope = tuple(sorted(ch.resolved_services))
    elif ch is not None:  # a release, a config change, an infrastructure alert
        lead = (incident.onset - ch.start).total_seconds()
        key = "released_before" if lead >= 0 else "logged_after"
        support.append(Point(key, {"at": ch.start, "lead_s": abs(lead), "kind": ch.kind}))
        p, c = _scope_points(incident, ch, inv, release=True)
        support += p
        against += c
        p, c = _signature(incident, signals, release_scope=set(ch.resolved_services))
        support += p
        against += c
        scope = tuple(sorted(ch.resolved_services))
    elif cause.category == "hosting" and cause.component:
        level = component_level(topo, cause.component)
        covering = [
            c
            for c in changes
            if c.kind in cands.MAINTENANCE_KINDS
            and not c.cancelled
            and c.start <= incident.onset
            and (c.end is None or incident.onset <= c.end)
        ]
        support, against, scope = _hosting_points(incident, cause, level, topo, covering)
    elif cause.component:
        level = component_level(topo, cause.component)
        support.append(Point("suspected_origin", {"component": cause.component}))
        scope = tuple(sorted(topo.members(level, cause.component))) if level else (cause.component,)
    else:
        against.append(Point("nothing_fits", {}))
    return CauseFacts(
        cause=cause,
        change=ch,
        level=level,
        scope=scope,
        # the narrowest domain holding the affected services in scope ("all in P19")
        scope_domain=smallest_domain(inv, sorted(set(scope) & set(incident.services_affected)) or scope)
        if scope
        else None,
        versions=versions(con, ch) if ch is not None else (),
        evidence_for=tuple(support),
        evidence_against=tuple(against),
    )


# -- classes ruled out ------------------------------------------------------------------------


def ruled_out_facts(
    incident: Incident,
    ruled: Sequence[RuledOut],
    causes: Sequence[Cause],
    changes: Sequence[Change],
    inv: Inventory,
    topo: cands.Topology,
    *,
    lookback_s: float,
    tz: str,
) -> list[RuledOutFacts]:
    """Each class :func:`whatchanged.engine.explain.ruled_out` set aside, with its reason."""
    out = []
    for r in ruled:
        best = max((c.score for c in causes if c.category == r.category), default=None)
        if r.category == "application_release":
            reason = _releases(incident, changes, lookback_s=lookback_s, tz=tz)
        elif r.category == "external_maintenance":
            reason = _notices(incident, changes)
        elif r.category == "hosting":
            reason = _hosting(incident, inv, topo)
        else:
            reason = Point("no_incident", {})
        out.append(RuledOutFacts(r.category, best, reason, r.reason))
    return out


def _releases(incident: Incident, changes: Sequence[Change], *, lookback_s: float, tz: str) -> Point:
    zone = ZoneInfo(tz)
    day = incident.onset.astimezone(zone).date()
    releases = [c for c in changes if c.kind in cands.RELEASE_KINDS]
    today = [c for c in releases if c.start.astimezone(zone).date() == day]
    before = [c for c in releases if c.start <= incident.onset]
    records = tuple(change_record(c) for c in today)
    if not before:
        return Point("no_release_before", {"that_day": len(today)}, records)
    nearest = max(before, key=lambda c: c.start)
    affected = set(incident.services_affected)
    within = [c for c in before if (incident.onset - c.start).total_seconds() <= lookback_s]
    touching = [c for c in within if affected & set(c.resolved_services)]
    return Point(
        "releases_missed_affected",
        {
            "that_day": len(today),
            "window_s": lookback_s,
            "within": len(within),
            "touching": len(touching),
            "change_id": nearest.change_id,
            "title": nearest.title or nearest.change_id,
            "at": nearest.start,
            "lead_s": (incident.onset - nearest.start).total_seconds(),
            "reached": len(nearest.resolved_services),
            "hit": len(affected & set(nearest.resolved_services)),
        },
        records if nearest in today else (*records, change_record(nearest)),
    )


def _notices(incident: Incident, changes: Sequence[Change]) -> Point:
    onset = incident.onset
    notices = [c for c in changes if c.kind in cands.MAINTENANCE_KINDS]
    covering = [c for c in notices if c.start <= onset and (c.end is None or onset <= c.end)]
    records = tuple(change_record(c) for c in (covering or notices))
    if covering and all(c.cancelled for c in covering):
        return Point("covering_cancelled", {"change_ids": [c.change_id for c in covering]}, records)
    if covering:
        c = covering[0]
        return Point(
            "covering_out_of_scope", {"change_id": c.change_id, "scope": len(c.resolved_services)}, records
        )
    if not notices:
        return Point("no_notice", {}, records)
    nearest = min(notices, key=lambda c: abs((c.start - onset).total_seconds()))
    return Point(
        "nearest_notice",
        {
            "change_id": nearest.change_id,
            "start": nearest.start,
            "end": nearest.end,
            "gap_s": abs((nearest.start - onset).total_seconds()),
            "after": nearest.start > onset,
        },
        (change_record(nearest),),
    )


def _hosting(incident: Incident, inv: Inventory, topo: cands.Topology) -> Point:
    hard = cands.hard_failed(incident) & set(incident.services_affected)
    if not hard:
        return Point("no_hard_failure", {})
    first = cands.first_failures(incident)
    t0 = min(first[s] for s in hard)
    early = sorted(s for s in hard if first[s] < t0 + timedelta(seconds=cands.FIRST_FAILURE_SLACK_S))
    domain = smallest_domain(inv, sorted(hard))
    records = tuple(
        Record("states", {"service": o.service, "check": o.check, "start": o.start, "end": o.end})
        for o in incident.outages
        if o.service in early and not o.external
    )
    return Point(
        "no_component_first",
        {
            "critical": len(hard),
            "level": domain.level if domain else None,
            "name": domain.name if domain else None,
            "size": domain.services if domain else None,
            "first": len(early),
            "first_at": t0,
            "hosts": len({topo.value(s, "host") for s in early} - {None}),
            "switches": len({topo.value(s, "switch") for s in early} - {None}),
        },
        records,
    )
