"""The ``facts`` of the JSON form: every fact of a :class:`Postmortem` as a field.

Times are ISO 8601 in the asked zone; a duration is ``{"seconds", "hours", "minutes"}`` (the
hours and minutes it is written with, :func:`~whatchanged.present.postmortem.catalogue.duration_parts`);
a percentage is the figure shown (two decimals, rounded down as a prober does) beside its
exact ``fraction``; values the text rounds (scores, metric levels) are stored rounded as shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from whatchanged.engine.availability import Availability
from whatchanged.engine.fate import Domain, Group
from whatchanged.engine.postmortem.model import (
    CauseFacts,
    Event,
    Point,
    Postmortem,
    Record,
    SignalMove,
    unit_of,
)
from whatchanged.present.postmortem.catalogue import duration_parts

#: service names listed in a signal fact (the count has them all)
NAMES = 10


def iso(ts: datetime | None, tz: str) -> str | None:
    return ts.astimezone(ZoneInfo(tz)).isoformat() if ts is not None else None


def plain(value: Any, tz: str) -> Any:
    """A value as JSON: datetimes in ``tz``, tuples as lists, nested mappings too."""
    if isinstance(value, datetime):
        return iso(value, tz)
    if isinstance(value, Mapping):
        return values_json(value, tz)
    if isinstance(value, list | tuple):
        return [plain(v, tz) for v in value]
    return value


def values_json(values: Mapping[str, Any], tz: str) -> dict[str, Any]:
    """``*_s`` numbers become duration facts under the name without ``_s``."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k.endswith("_s") and isinstance(v, int | float) and not isinstance(v, bool):
            out[k[:-2]] = duration_parts(v)
        else:
            out[k] = plain(v, tz)
    return out


def record_json(r: Record, tz: str) -> dict[str, Any]:
    out: dict[str, Any] = {"table": r.table, **{k: plain(v, tz) for k, v in r.key.items()}}
    if r.rows is not None:
        out["rows"] = r.rows
    return out


def domain_json(d: Domain | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"level": d.level, "name": d.name, "services": d.services, "share_pct": round(100 * d.share, 1)}


def group_json(g: Group) -> dict[str, Any]:
    return {
        "name": g.name,
        "members": [m.service for m in g.members],
        "shared": [domain_json(d) for d in g.shared],
    }


def percent_shown(fraction: float) -> float:
    """Two decimals, rounded down: an outage never shows as 100.00 (``Availability.percent``)."""
    return int(fraction * 10000) / 100


def availability_json(a: Availability, tz: str) -> dict[str, Any]:
    return {
        "to": iso(a.end, tz),
        "percent": percent_shown(a.availability),
        "fraction": a.availability,
        "outage_count": a.outage_count,
        "downtime": duration_parts(a.downtime_s),
        "checks": list(a.checks),
        "source": a.source,
    }


def signal_json(s: SignalMove, tz: str) -> dict[str, Any]:
    return {
        "metric": s.metric,
        "unit": unit_of(s.metric),
        "direction": s.direction,
        "network": s.network,
        "summed": s.summed,
        "services": len(s.services),
        "service_names": list(s.services[:NAMES]),
        "expected": s.expected,
        "observed": s.observed,
        "onset": iso(s.onset, tz),
    }


def point_json(p: Point, tz: str) -> dict[str, Any]:
    return {"code": p.code, **values_json(p.values, tz)}


def cause_json(cf: CauseFacts | None, tz: str) -> dict[str, Any] | None:
    if cf is None:
        return None
    c, ch = cf.cause, cf.change
    return {
        "rank": c.rank,
        "category": c.category,
        "change_id": c.change_id,
        "component": c.component,
        "level": cf.level,
        "title": c.title,
        "score": round(c.score, 2),
        "score_exact": c.score,
        "kind": ch.kind if ch else None,
        "status": ch.status if ch else None,
        "start": iso(c.start, tz),
        "end": iso(c.end, tz),
        "source": ch.source if ch else None,
        "url": ch.url if ch else None,
        "versions": [{"at": iso(at, tz), "status": status} for at, status in cf.versions],
        "scope_services": len(cf.scope),
        "scope_domain": domain_json(cf.scope_domain),
        "evidence_for": [point_json(p, tz) for p in cf.evidence_for],
        "evidence_against": [point_json(p, tz) for p in cf.evidence_against],
        "engine_evidence_for": list(c.evidence_for),
        "engine_evidence_against": list(c.evidence_against),
    }


def event_json(e: Event, tz: str) -> dict[str, Any]:
    return {"at": iso(e.at, tz), "event": e.event, "source": e.source, **values_json(e.values, tz)}


def facts_json(pm: Postmortem, tz: str, *, links: Mapping[str, str]) -> dict[str, Any]:
    """Every fact of ``pm`` as a field (``links``: incident id → its postmortem page path)."""
    inc, imp, helped = pm.incident, pm.impact, pm.helped
    probe = imp.probe
    fc = helped.first_correct
    return {
        "incident": {
            "id": inc.incident_id,
            "onset": iso(inc.onset, tz),
            "end": iso(inc.end, tz),
            "duration": duration_parts(((inc.end or pm.data_end) - inc.onset).total_seconds()),
            "ongoing": inc.end is None or inc.end >= pm.data_end,
            "services_affected": len(inc.services_affected),
            "critical_services": len(inc.critical_services),
            "signals": list(inc.signals),
        },
        "impact": {
            "monitored_services": imp.monitored,
            "affected_services": len(imp.affected),
            "critical_services": len(imp.critical),
            "critical": list(imp.critical),
            "critical_domain": domain_json(imp.critical_domain),
            "datacenters": list(imp.datacenters),
            "kinds": [{"kind": k, "services": n} for k, n in imp.kinds],
            "probe": None
            if probe is None
            else {
                "checks": [{"service": s, "check": c} for s, c in probe.checks],
                "outage_count": len(probe.outages),
                "downtime": duration_parts(probe.downtime_s),
                "first_start": iso(probe.first_start, tz),
                "last_end": iso(probe.last_end, tz),
                "span": duration_parts((probe.last_end - probe.first_start).total_seconds()),
                "outages": [
                    {
                        "start": iso(a, tz),
                        "end": iso(b, tz),
                        "duration": duration_parts((b - a).total_seconds()),
                    }
                    for a, b in probe.outages
                ],
            },
            "worst_hit": [
                {
                    "service": h.service,
                    "checks": list(h.checks),
                    "downtime": duration_parts(h.downtime_s),
                    "external": h.external,
                }
                for h in imp.worst
            ],
            "signals": [signal_json(s, tz) for s in imp.signals],
            "availability_ytd": [
                {
                    "service": y.service,
                    "check": y.check,
                    "from": iso(y.before.start, tz),
                    "planned_maintenance_included": not y.after.exclude_planned,
                    "before": availability_json(y.before, tz),
                    "after": availability_json(y.after, tz),
                }
                for y in imp.ytd
            ],
        },
        "timeline": [event_json(e, tz) for e in pm.timeline],
        "reactions": {
            "count": len(pm.reactions),
            "by_kind": {
                k: sum(1 for r in pm.reactions if r.kind == k) for k in sorted({r.kind for r in pm.reactions})
            },
        },
        "cause": cause_json(pm.cause, tz),
        "runner_up": cause_json(pm.runner_up, tz),
        "ruled_out": [
            {
                "category": r.category,
                "best_score": round(r.best_score, 2) if r.best_score is not None else None,
                **point_json(r.reason, tz),
                "engine_reason": r.engine_reason,
            }
            for r in pm.ruled_out
        ],
        "related": [
            {
                "id": r.incident.incident_id,
                "onset": iso(r.incident.onset, tz),
                "end": iso(r.incident.end, tz),
                "services_affected": len(r.incident.services_affected),
                "critical_services": len(r.incident.critical_services),
                "outage_count": r.incident.outage_count,
                "top_cause": None
                if r.top is None
                else {
                    "category": r.top.category,
                    "change_id": r.top.change_id,
                    "component": r.top.component,
                    "title": r.top.title,
                    "score": round(r.top.score, 2),
                },
                "path": links.get(r.incident.incident_id, ""),
            }
            for r in pm.related
        ],
        "helped": {
            "failed_scope": {
                "level": helped.scope_label[0] if helped.scope_label else None,
                "name": helped.scope_label[1] if helped.scope_label else None,
                "services": len(helped.scope),
                "share_pct": round(100 * len(helped.scope) / imp.monitored, 1) if imp.monitored else None,
            },
            "groups_inside": [group_json(g) for g in helped.groups_inside],
            "groups_in_inventory": helped.groups_total,
            "standby": {"group": helped.standby_group, "services": list(helped.standby)}
            if helped.standby
            else None,
            "notice": None
            if helped.notice_at is None or helped.notice_lead_s is None
            else {
                "change_id": pm.cause.cause.change_id if pm.cause else None,
                "at": iso(helped.notice_at, tz),
                "lead": duration_parts(helped.notice_lead_s),
                "before_onset": helped.notice_lead_s >= 0,
            },
            "first_alert": None if helped.first_alert is None else event_json(helped.first_alert, tz),
            "first_anomaly": iso(helped.first_anomaly, tz),
            "signals_before_first_alert": [
                {
                    **signal_json(s, tz),
                    "lead": duration_parts((helped.first_alert.at - s.onset).total_seconds())
                    if helped.first_alert
                    else None,
                }
                for s in helped.signals_before
            ],
            "first_correct_cause": None
            if fc is None
            else {
                "confirmed": fc.confirmed,
                "verdict_change_id": fc.verdict_change_id,
                "verdict_category": fc.verdict_category,
                "author": fc.author,
                "created": iso(fc.created, tz),
                "visible_at": iso(fc.visible_at, tz),
                "known_at": iso(fc.known_at, tz),
                "available_at": iso(fc.available_at, tz),
                "after_onset": duration_parts((fc.available_at - inc.onset).total_seconds())
                if fc.confirmed
                else None,
            },
        },
    }
