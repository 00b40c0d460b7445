"""Gather a postmortem's facts from the warehouse: :func:`build_postmortem`.

Everything comes from the engine's own results (the incident, its explanation) and from
rows of the warehouse; nothing is typed in.  Definitions, as ``docs/postmortem.md`` states
them:

* **monitored**: the services of the inventory (else those with check states);
* **CRITICAL**: the incident's services with a failed (CRITICAL/DOWN) check, probes aside;
* **outages and downtime**: the external up/down probes' down intervals, merged
  (``Incident.outage_count`` / ``downtime_s``), with their first start and last end;
* **worst hit**: the services with the most down time during the incident (all their
  checks merged), at most :data:`WORST`;
* **year to date**: :func:`whatchanged.engine.availability.availability` of each service
  whose probe went down, from 1 January 00:00 local to the onset (before) and to the end of
  the incident (after), planned maintenance included (what a prober reports);
* **first alert**: the first confirmed failure (a HARD state, or a probe down) of an
  affected service at or after the onset;
* **related**: the other incidents starting the same local day, with their top cause.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from whatchanged.engine import candidates as cands
from whatchanged.engine.availability import availability
from whatchanged.engine.candidates_common import NETWORK_METRIC
from whatchanged.engine.changes import aliases_for, list_changes
from whatchanged.engine.explain import CONTEXT_BEFORE, explain_incident, topology
from whatchanged.engine.extent import last_data_ts
from whatchanged.engine.fate import Inventory, groups_within, smallest_domain
from whatchanged.engine.incidents import find_incidents, overlapping
from whatchanged.engine.model import Anomaly, Explanation, Incident, Outage
from whatchanged.engine.outages import find_outages, merge_intervals, total_s
from whatchanged.engine.postmortem.evidence import cause_facts, change_record, ruled_out_facts
from whatchanged.engine.postmortem.model import (
    CauseFacts,
    Event,
    FirstCorrect,
    Helped,
    Hit,
    Impact,
    Postmortem,
    Probe,
    Record,
    Related,
    SignalMove,
    YearToDate,
)
from whatchanged.engine.rank import RankModel
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot

#: worst-hit services listed
WORST = 5
#: other incidents of the day listed (nearest onsets first)
RELATED = 10
#: per-service recovery lines in the timeline when at most this many services went CRITICAL
RECOVERY_LINES = 5
#: kinds of service at the edge of the fleet: a network metric is summed over them
EDGE_KINDS = ("loadbalancer", "lb", "edge", "router", "firewall")


def _outage_record(o: Outage) -> Record:
    return Record(
        "states", {"service": o.service, "check": o.check, "start": o.start, "end": o.end, "source": o.source}
    )


def _monitored(con: Snapshot) -> tuple[int, Record]:
    n = int(con.execute("SELECT count(*) FROM services").fetchall()[0][0])
    if n:
        return n, Record("services", {}, rows=n)
    n = int(con.execute("SELECT count(DISTINCT service) FROM states").fetchall()[0][0])
    return n, Record("states", {"distinct": "service"}, rows=n)


def _round(x: float) -> float:
    return float(round(x)) if abs(x) >= 10 else round(x, 1)


def signal_moves(incident: Incident, kinds: dict[str, str | None]) -> list[SignalMove]:
    """Per metric and direction: for a network metric, the sum over the fleet's edge (load
    balancers) when some moved, else the service where it moved most (expected and observed
    of that one); services are all those where it moved."""
    groups: dict[tuple[str, str], list[Anomaly]] = {}
    for a in incident.anomalies:
        groups.setdefault((a.metric, a.direction), []).append(a)
    out = []
    for (metric, direction), found in sorted(groups.items()):
        network = bool(NETWORK_METRIC.search(metric))
        services = tuple(sorted({a.service for a in found}))
        edge = [a for a in found if (kinds.get(a.service) or "").lower() in EDGE_KINDS]
        if network and edge:
            expected = sum(a.baseline for a in edge)
            observed = sum(a.observed for a in edge)
            services = tuple(sorted({a.service for a in edge}))
        else:
            worst = max(
                found, key=lambda a: (abs(a.observed - a.baseline) / (abs(a.baseline) or 1.0), a.service)
            )
            expected, observed = worst.baseline, worst.observed
        onset = min(a.onset for a in found)
        summed = bool(network and edge)
        out.append(
            SignalMove(
                metric, services, direction, _round(expected), _round(observed), onset, network, summed
            )
        )
    return sorted(out, key=lambda s: (not s.network, s.onset, s.metric))


def _probe(incident: Incident, data_end: datetime) -> Probe | None:
    external = [o for o in incident.outages if o.external]
    if not external:
        return None
    merged = merge_intervals([(o.start, o.end or data_end) for o in external])
    return Probe(
        checks=tuple(sorted({(o.service, o.check) for o in external})),
        outages=tuple(merged),
        downtime_s=total_s(merged),
        records=tuple(_outage_record(o) for o in external),
    )


def _worst(incident: Incident, end: datetime) -> list[Hit]:
    by: dict[str, list[Outage]] = {}
    for o in incident.outages:
        by.setdefault(o.service, []).append(o)
    hits = []
    for service, found in by.items():
        spans = merge_intervals([(max(o.start, incident.onset), min(o.end or end, end)) for o in found])
        down = total_s([(a, b) for a, b in spans if b > a])
        if down > 0:
            hits.append(
                Hit(
                    service,
                    tuple(sorted({o.check for o in found})),
                    down,
                    any(o.external for o in found),
                    tuple(_outage_record(o) for o in found),
                )
            )
    return sorted(hits, key=lambda h: (-h.downtime_s, h.service))[:WORST]


def _year_to_date(
    con: Snapshot, probe: Probe | None, incident: Incident, end: datetime, tz: str
) -> list[YearToDate]:
    if probe is None:
        return []
    local = incident.onset.astimezone(ZoneInfo(tz))
    year_start = datetime(local.year, 1, 1, tzinfo=ZoneInfo(tz)).astimezone(UTC)
    if year_start >= incident.onset:
        return []
    out = []
    for service, check in dict.fromkeys(probe.checks):
        before = availability(con, year_start, incident.onset, service=service)
        after = availability(con, year_start, end, service=service)
        out.append(YearToDate(service, check, before, after))
    return out


def _first_alert(con: Snapshot, incident: Incident, end: datetime) -> tuple[Event | None, int]:
    """The first confirmed failure at or after the onset (HARD state or probe down) and how many
    services had one during the incident."""
    found = [
        o
        for o in find_outages(
            con, incident.onset, end, services=list(incident.services_affected), hard_only=True
        )
        if incident.onset - timedelta(seconds=cands.ONSET_TOLERANCE_S) <= o.start <= end
    ]
    if not found:
        return None, 0
    first = min(found, key=lambda o: (o.start, not o.external, o.service, o.check))
    count = len({o.service for o in found})
    values = {
        "service": first.service,
        "check": first.check,
        "state": first.state,
        "external": first.external,
    }
    return Event(
        first.start, "first_alert", {**values, "count": count}, first.source, _outage_record(first)
    ), count


def _timeline(
    incident: Incident,
    expl: Explanation,
    top: CauseFacts | None,
    probe: Probe | None,
    first_alert: Event | None,
    end: datetime,
) -> list[Event]:
    events: list[Event] = []
    ch = top.change if top else None
    lo, hi = incident.onset - CONTEXT_BEFORE, end + timedelta(hours=2)
    if ch is not None and top is not None:
        base = {
            "change_id": ch.change_id,
            "title": ch.title or ch.change_id,
            "start": ch.start,
            "end": ch.end,
        }
        if ch.kind in cands.MAINTENANCE_KINDS:
            for i, (stamp, status) in enumerate(top.versions):
                if lo <= stamp <= hi:
                    kind = "notice_published" if i == 0 else "notice_updated"
                    events.append(
                        Event(stamp, kind, {**base, "status": status}, ch.source or "", change_record(ch))
                    )
            if lo <= ch.start <= hi:
                events.append(Event(ch.start, "window_start", base, ch.source or "", change_record(ch)))
            if ch.end is not None and lo <= ch.end <= hi:
                events.append(Event(ch.end, "window_end", base, ch.source or "", change_record(ch)))
        else:
            events.append(
                Event(
                    ch.start,
                    "release",
                    {**base, "author": ch.author, "kind": ch.kind},
                    ch.source or "",
                    change_record(ch),
                )
            )
    if incident.anomalies:
        a = min(incident.anomalies, key=lambda a: (a.onset, a.service, a.metric))
        values = {
            "service": a.service,
            "metric": a.metric,
            "direction": a.direction,
            "others": len(incident.anomalies) - 1,
        }
        events.append(
            Event(
                a.onset,
                "first_anomaly",
                values,
                "metrics",
                Record("metrics", {"service": a.service, "metric": a.metric, "ts": a.onset}),
            )
        )
    internal = sorted(
        (o for o in incident.outages if not o.external), key=lambda o: (o.start, o.service, o.check)
    )
    if internal:
        o = internal[0]
        values = {"service": o.service, "check": o.check, "state": o.state}
        events.append(Event(o.start, "first_failure", values, o.source, _outage_record(o)))
    if probe is not None:
        (service, check) = probe.checks[0]
        values = {"service": service, "check": check, "outages": len(probe.outages)}
        src = next((r.key.get("source", "") for r in probe.records), "")
        events.append(Event(probe.first_start, "probe_down", values, str(src), probe.records[0]))
        events.append(Event(probe.last_end, "probe_up", values, str(src), probe.records[-1]))
    if first_alert is not None:
        events.append(first_alert)
    for r in expl.reactions:
        values = {
            "change_id": r.change_id,
            "kind": r.kind,
            "title": r.title or r.change_id,
            "author": r.author,
        }
        events.append(Event(r.start, "reaction", values, r.source or "", change_record(r)))
    if len(incident.critical_services) <= RECOVERY_LINES:
        for service in incident.critical_services:
            last = max((o for o in internal if o.service == service), key=lambda o: (o.end or end, o.check))
            if last.end is not None and last.end < (incident.end or end):
                values = {"service": service, "check": last.check}
                events.append(Event(last.end, "service_ok", values, last.source, _outage_record(last)))
    if incident.end is not None:
        closing = [o for o in incident.outages if o.end == incident.end]
        if closing:
            o = closing[0]
            values = {"service": o.service, "check": o.check}
            events.append(Event(incident.end, "end", values, o.source, _outage_record(o)))
        else:
            a = max(incident.anomalies, key=lambda a: (a.end or end, a.service))
            values = {"service": a.service, "metric": a.metric}
            events.append(
                Event(
                    incident.end,
                    "end",
                    values,
                    "metrics",
                    Record("metrics", {"service": a.service, "metric": a.metric, "ts": incident.end}),
                )
            )
    order = {"notice_published": 0, "notice_updated": 1, "window_start": 2, "release": 2, "first_anomaly": 3}
    return sorted(events, key=lambda e: (e.at, order.get(e.event, 5)))


def _first_correct(con: Snapshot, incident: Incident, top: CauseFacts | None) -> FirstCorrect | None:
    rows = con.execute(
        "SELECT feedback_id, cause_change_id, category, author, created FROM feedback WHERE incident_id = ? "
        "ORDER BY created DESC, feedback_id DESC LIMIT 1",
        [incident.incident_id],
    ).fetchall()
    if not rows or top is None:
        return None
    fid, change_id, category, author, created = rows[0]
    cause = top.cause
    if change_id is not None:
        confirmed = change_id == cause.change_id
    else:
        confirmed = category == cause.category and (cause.change_id is None or category != "unknown")
    starts = [o.start for o in incident.outages] + [a.detected_at or a.onset for a in incident.anomalies]
    visible = max(incident.onset, min(starts, default=incident.onset))
    if top.versions:  # on record since its first dated version
        known = top.versions[0][0]
    elif top.change is not None:  # an undated change is known from its own time
        known = top.change.start
    else:  # a failed component is known when it fails
        known = next((p.values["at"] for p in top.evidence_for if p.code == "failed_first"), incident.onset)
    return FirstCorrect(
        confirmed,
        change_id,
        category,
        author,
        created,
        visible,
        known,
        Record("feedback", {"feedback_id": fid}),
    )


def _helped(
    con: Snapshot,
    incident: Incident,
    top: CauseFacts | None,
    inv: Inventory,
    topo: cands.Topology,
    first_alert: Event | None,
    signals: list[SignalMove],
) -> Helped:
    # the scope that failed: the narrowest failure domain holding the affected services inside
    # the cause's scope (a notice's text may name more than it reaches), else the CRITICAL ones
    # (a release fails what it reached, not a place: its scope is the services it reached)
    named = set(top.scope) if top and top.scope else set()
    hit = sorted(named & set(incident.services_affected)) or sorted(named) or list(incident.critical_services)
    release = top is not None and top.cause.category == "application_release"
    domain = smallest_domain(inv, hit) if hit and not release else None
    scope = tuple(sorted(inv.members(domain.level, domain.name))) if domain else tuple(hit)
    label = (domain.level, domain.name) if domain else None
    standby: tuple[str, ...] = ()
    group = None
    if top is not None and top.cause.category == "hosting" and top.level == "service" and top.cause.component:
        comp = top.cause.component
        group = inv.group_of.get(comp)
        peers = (
            {s for s, g in inv.group_of.items() if g == group}
            if group
            else topo.app_peers([comp]) - set(incident.services_affected)
        )
        standby = tuple(sorted(peers - set(incident.critical_services) - {comp}))
        if not group and not 1 <= len(standby) <= 3:
            standby = ()
    notice_lead = notice_at = None
    if (
        top is not None
        and top.change is not None
        and top.change.kind in cands.MAINTENANCE_KINDS
        and top.versions
    ):
        notice_at = top.versions[0][0]
        notice_lead = (incident.onset - notice_at).total_seconds()
    before = [s for s in signals if first_alert is not None and s.onset < first_alert.at]
    records = tuple(
        Record("services", {"service": m.service, "redundancy_group": g.name})
        for g in groups_within(inv, scope)
        for m in g.members
    )
    return Helped(
        scope=tuple(scope),
        scope_domain=domain,
        scope_label=label,
        groups_inside=tuple(groups_within(inv, scope)),
        standby=standby,
        standby_group=group,
        notice_lead_s=notice_lead,
        notice_at=notice_at,
        first_alert=first_alert,
        signals_before=tuple(before),
        first_anomaly=min((a.onset for a in incident.anomalies), default=None),
        first_correct=_first_correct(con, incident, top),
        records=records,
        groups_total=len(set(inv.group_of.values())),
    )


def _related(con: Snapshot, incident: Incident, settings: Settings, model: RankModel | None) -> list[Related]:
    zone = ZoneInfo(settings.tz)
    day = incident.onset.astimezone(zone).date()
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    end = (datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(days=1)).astimezone(UTC)
    others = [
        i
        for i in find_incidents(con, start, end)
        if i.incident_id != incident.incident_id and start <= i.onset < end
    ]
    others = sorted(others, key=lambda i: abs((i.onset - incident.onset).total_seconds()))[:RELATED]
    out = []
    for other in sorted(others, key=lambda i: i.onset):
        causes = explain_incident(con, other, settings=settings, model=model).causes
        out.append(Related(other, causes[0] if causes else None))
    return out


def build_postmortem(
    con: Snapshot,
    incident: Incident,
    *,
    settings: Settings,
    explanation: Explanation | None = None,
    model: RankModel | None = None,
) -> Postmortem:
    """Every fact of the postmortem of ``incident`` (see the module docstring)."""
    expl = explanation or explain_incident(
        con, incident, settings=settings, model=model, overlapping=overlapping(con, incident)
    )
    data_end = last_data_ts(con) or incident.end or incident.onset
    end = incident.end or data_end
    lookback = float(settings.deploy_lookback_s)
    changes = list_changes(
        con,
        start=incident.onset - max(CONTEXT_BEFORE, timedelta(seconds=lookback)),
        end=end + timedelta(hours=2),
        aliases=aliases_for(settings),
    )
    topo = topology(con)
    inv = Inventory.load(con)
    kinds = {s: a.get("kind") for s, a in topo.attrs.items()}
    monitored, monitored_record = _monitored(con)
    signals = signal_moves(incident, kinds)
    probe = _probe(incident, data_end)
    after_end = max(end, probe.last_end) if probe else end
    critical = tuple(incident.critical_services)
    impact = Impact(
        monitored=monitored,
        affected=tuple(incident.services_affected),
        critical=critical,
        critical_domain=smallest_domain(inv, critical) if critical else None,
        probe=probe,
        worst=tuple(_worst(incident, end)),
        ytd=tuple(_year_to_date(con, probe, incident, after_end, settings.tz)),
        kinds=tuple(Counter(kinds.get(s) or "other" for s in critical).most_common()),
        signals=tuple(signals),
        records=(
            monitored_record,
            *(_outage_record(o) for o in incident.outages if not o.external),
        ),
        datacenters=tuple(
            sorted(
                {d for s in (critical or incident.services_affected) if (d := topo.value(s, "datacenter"))}
            )
        ),
    )
    causes = expl.causes
    top = cause_facts(con, incident, causes[0], changes, topo, inv, signals) if causes else None
    second = cause_facts(con, incident, causes[1], changes, topo, inv, signals) if len(causes) > 1 else None
    first_alert, _ = _first_alert(con, incident, end)
    return Postmortem(
        incident=incident,
        explanation=expl,
        impact=impact,
        timeline=tuple(_timeline(incident, expl, top, probe, first_alert, end)),
        cause=top,
        runner_up=second,
        ruled_out=tuple(
            ruled_out_facts(
                incident, expl.ruled_out, causes, changes, inv, topo, lookback_s=lookback, tz=settings.tz
            )
        ),
        related=tuple(_related(con, incident, settings, model)),
        helped=_helped(con, incident, top, inv, topo, first_alert, signals),
        reactions=tuple(expl.reactions),
        data_end=data_end,
        lookback_s=lookback,
    )
