"""The JSON shape of an explanation ("what changed at T?") and of its parts.

What ``whatchanged explain --json``, ``GET /api/v1/explain``, ``GET /api/v1/incidents/{id}``
and the sinks' posts carry::

    {"at": "...",
     "incident": {"id", "onset", "end", "services_affected", "critical_services",
                  "outage_count", "downtime_s", "signals", "outages": [...],
                  "services": [...], "critical": [...], "onset_lookahead"} | null,
     "causes": [{"rank", "category", "change_id", "component", "title", "start",
                 "end", "score", "evidence_for": [...], "evidence_against": [...], "features"}],
     "ruled_out": [{"category", "reason"}],
     "reactions": [{"change_id", "kind", "start", "end", "title", "author"}],
     "anomalies": [{"service", "metric", "onset", "end", "direction", "peak_score",
                    "baseline", "observed"}],
     "weights": {"source": "default" | "<home>/model/rank.json", "fitted_at": "..." | null},
     "overlapping": [{"id", "onset", "end", "services_affected"}]}

``overlapping`` names the other incidents under way during this one (an earlier wave still
lingering, an unrelated failure elsewhere).  ``category`` is a
:data:`~whatchanged.engine.model.CauseCategory`.  Times are ISO 8601 in the zone asked for,
with its offset.

Two parts are deliberately narrower than the resource of the same name in
:mod:`whatchanged.present.shapes`, and stay so because the published answers (and the golden
files of ``tests/golden/``) are these: an explanation's anomaly is a summary (no ``start`` or
``detected_at``, score and values rounded) where :func:`~whatchanged.present.shapes.anomaly`
is the whole detector record; a reaction is a change's identity and window (no scope, status
or URL) where :func:`~whatchanged.present.shapes.change` is the stored change.
"""

from __future__ import annotations

from typing import Any

from whatchanged.engine.model import Anomaly, Cause, Change, Explanation, Incident, Outage
from whatchanged.engine.timeparse import fmt_iso


def explanation(expl: Explanation, *, tz: str = "UTC") -> dict[str, Any]:
    """The documented JSON shape of an explanation (see the module docstring)."""
    return {
        "at": fmt_iso(expl.at, tz),
        "incident": incident(expl.incident, tz) if expl.incident else None,
        "causes": [cause(c, tz) for c in expl.causes],
        "ruled_out": [{"category": r.category, "reason": r.reason} for r in expl.ruled_out],
        "reactions": [reaction(ch, tz) for ch in expl.reactions],
        "anomalies": [anomaly_summary(a, tz) for a in expl.anomalies],
        "weights": {"source": expl.weights, "fitted_at": expl.weights_fitted_at},
        "overlapping": [overlapping(i, tz) for i in expl.overlapping],
    }


def incident(inc: Incident, tz: str = "UTC") -> dict[str, Any]:
    """An incident with its outages (oldest first), its services and its critical services."""
    return {
        "id": inc.incident_id,
        "onset": fmt_iso(inc.onset, tz),
        "end": fmt_iso(inc.end, tz),
        "services_affected": len(inc.services_affected),
        "critical_services": len(inc.critical_services),
        "outage_count": inc.outage_count,
        "downtime_s": round(inc.downtime_s),
        "signals": list(inc.signals),
        "outages": [outage(o, tz) for o in sorted(inc.outages, key=lambda o: (o.start, o.service, o.check))],
        "services": sorted(inc.services_affected),
        "critical": sorted(inc.critical_services),
        "onset_lookahead": inc.onset_lookahead,
    }


def outage(o: Outage, tz: str = "UTC") -> dict[str, Any]:
    """One outage of an incident."""
    return {
        "service": o.service,
        "check": o.check,
        "start": fmt_iso(o.start, tz),
        "end": fmt_iso(o.end, tz),
        "state": o.state,
        "source": o.source,
        "external": o.external,
    }


def overlapping(inc: Incident, tz: str = "UTC") -> dict[str, Any]:
    """Another incident under way during the one explained: its id, window and size."""
    return {
        "id": inc.incident_id,
        "onset": fmt_iso(inc.onset, tz),
        "end": fmt_iso(inc.end, tz),
        "services_affected": len(inc.services_affected),
    }


def cause(c: Cause, tz: str = "UTC") -> dict[str, Any]:
    """One ranked cause: ``rank``, ``category``, ``change_id``, ``score``, evidence for and against."""
    return {
        "rank": c.rank,
        "category": c.category,
        "change_id": c.change_id,
        "component": c.component,
        "title": c.title,
        "start": fmt_iso(c.start, tz),
        "end": fmt_iso(c.end, tz),
        "score": c.score,
        "evidence_for": list(c.evidence_for),
        "evidence_against": list(c.evidence_against),
        "features": c.features,
    }


def reaction(ch: Change, tz: str = "UTC") -> dict[str, Any]:
    """What responders did during the incident: a change's identity and window."""
    return {
        "change_id": ch.change_id,
        "kind": ch.kind,
        "start": fmt_iso(ch.start, tz),
        "end": fmt_iso(ch.end, tz),
        "title": ch.title,
        "author": ch.author,
    }


def anomaly_summary(a: Anomaly, tz: str = "UTC") -> dict[str, Any]:
    """An anomaly as an explanation lists it (rounded; see the module docstring)."""
    return {
        "service": a.service,
        "metric": a.metric,
        "onset": fmt_iso(a.onset, tz),
        "end": fmt_iso(a.end, tz),
        "direction": a.direction,
        "peak_score": round(a.peak_score, 2),
        "baseline": round(a.baseline, 3),
        "observed": round(a.observed, 3),
    }
