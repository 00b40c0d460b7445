"""One JSON shape per resource: what ``whatchanged … --json`` prints and the API serves.

Each function takes engine results (domain objects) and gives a JSON-ready dict; the API
returns it through the matching response model of ``api/models.py`` (which documents it in
the OpenAPI schema), and the command line prints it through the same model
(``api.output.wire``), so the two bodies are equal (``tests/api/test_cli_parity.py``).

==============  =========================================  ===============================
resource        shape                                      served by
==============  =========================================  ===============================
explanation     :func:`explanation`                        ``explain``, ``/explain``, ``/incidents/{id}``
incident        :func:`incident` (:func:`incident_summary`  inside an explanation; ``incidents``,
                without outages, in :func:`incident_page`)  ``/incidents``
cause           :func:`cause`                              inside an explanation
change          :func:`change` (in :func:`change_list`)    ``changes``, ``/changes``
anomaly         :func:`anomaly`                            ``detect``
availability    :func:`availability`                       ``availability``, ``/availability``
warehouse       :func:`status`                             ``status``, ``/status``
shared fate     :func:`fate` (:func:`domain`, :func:`group`)  ``fate --json``; inside a postmortem
batch report    :func:`batch_summary`                      ``batch --json``
==============  =========================================  ===============================

The explanation and its parts (incident, cause, reactions, the explanation's anomalies) are
written in :mod:`whatchanged.present.explanation`, which also says why an explanation's
anomaly and reaction are narrower than :func:`anomaly` and :func:`change`.  Times are ISO 8601
with an offset, in the zone asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from whatchanged.engine.fate import LEVELS, Domain, FateReport, Group
from whatchanged.engine.model import Anomaly, Cause, Change, Explanation, Incident
from whatchanged.engine.timeparse import fmt_iso
from whatchanged.present import explanation as _explanation

if TYPE_CHECKING:
    from whatchanged.engine.availability import Availability
    from whatchanged.engine.batch import BatchResult


_iso = fmt_iso


def explanation(expl: Explanation, *, tz: str) -> dict[str, Any]:
    """What changed at T (see :mod:`whatchanged.present.explanation` for the shape)."""
    return _explanation.explanation(expl, tz=tz)


def incident(inc: Incident, tz: str) -> dict[str, Any]:
    """An incident with its outages: ``id``, ``onset``, ``end``, counts, ``services``, ``critical``…"""
    return _explanation.incident(inc, tz)


def incident_summary(inc: Incident, tz: str) -> dict[str, Any]:
    """:func:`incident` without its list of outages (an item of :func:`incident_page`)."""
    d = incident(inc, tz)
    d.pop("outages", None)
    return d


def incident_page(found: Sequence[Incident], *, tz: str, limit: int, offset: int) -> dict[str, Any]:
    """``{total, limit, offset, items}``: one page of incidents, oldest first."""
    return {
        "total": len(found),
        "limit": limit,
        "offset": offset,
        "items": [incident_summary(i, tz) for i in found[offset : offset + limit]],
    }


def cause(c: Cause, tz: str) -> dict[str, Any]:
    """One ranked cause: ``rank``, ``category``, ``change_id``, ``score``, evidence for and against."""
    return _explanation.cause(c, tz)


def change(ch: Change, tz: str) -> dict[str, Any]:
    """A change as stored (times in UTC), with ``start_local`` and ``end_local`` in ``tz``."""
    return {**ch.to_dict(), "start_local": _iso(ch.start, tz), "end_local": _iso(ch.end, tz)}


def change_list(
    found: Sequence[Change], *, at: datetime, start: datetime, end: datetime, kind: str | None, tz: str
) -> dict[str, Any]:
    """The changes meeting ``[start, end]`` around ``at`` (times of the range in UTC)."""
    return {
        "at": at.isoformat(),
        "tz": tz,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "kind": kind,
        "total": len(found),
        "changes": [change(c, tz) for c in found],
    }


def anomaly(a: Anomaly, tz: str) -> dict[str, Any]:
    """One anomaly: every field of :class:`~whatchanged.engine.model.Anomaly`, times in ``tz``."""
    d = a.to_dict()
    for key in ("start", "onset", "end", "detected_at"):
        d[key] = _iso(getattr(a, key), tz)
    return d


def availability(result: Availability) -> dict[str, Any]:
    """Up time of a selection over a range, with ``percent`` (two decimals, rounded down)."""
    return {**result.to_dict(), "percent": result.percent}


def status(
    held: Mapping[str, Any], sources: Sequence[Mapping[str, Any]], *, show_home: bool
) -> dict[str, Any]:
    """What the warehouse holds (:meth:`~whatchanged.engine.warehouse.Warehouse.status`) and the
    health of each live source; ``home`` (a path on the server) only when ``show_home``."""
    return {**held, "sources": [dict(s) for s in sources], "home": held.get("home") if show_home else None}


def batch_summary(result: BatchResult) -> dict[str, Any]:
    """What ``whatchanged batch --json`` prints about a run (before ``out`` and ``files``)."""
    from whatchanged.engine.batch import attribution, top_changes

    return {
        "from": result.params.start.isoformat(),
        "to": result.params.end.isoformat(),
        "executor": result.executor,
        "partitions": result.partitions,
        "cached": result.cached,
        "anomalies": result.anomalies,
        "outages": result.outages,
        "incidents": len(result.incidents),
        "downtime_s": sum(i.downtime_s for i in result.incidents),
        "downtime_by_class_s": dict(sorted(attribution(result).items())),
        "top_changes": top_changes(result)[:10],
    }


def domain(d: Domain) -> dict[str, Any]:
    out: dict[str, Any] = {
        "level": d.level,
        "name": d.name,
        "services": d.services,
        "share_pct": round(100 * d.share, 1),
    }
    if d.level == "datacenter":
        out["switches"] = d.parts.get("switch", 0)
        out["racks"] = d.parts.get("rack", 0)
        out["hosts"] = d.parts.get("host", 0)
        out["behind_switches"] = d.behind_switches
    return out


def group(g: Group) -> dict[str, Any]:
    return {
        "name": g.name,
        "members": [
            {"service": m.service, **{level: m.where.get(level) for level in LEVELS}} for m in g.members
        ],
        "shared": [domain(d) for d in g.shared],
        "spread": g.spread,
    }


def fate(report: FateReport) -> dict[str, Any]:
    """The JSON of ``whatchanged fate --json``::

    {"services": 1002,
     "largest": {"level", "name", "services", "share_pct", "switches", "racks", "hosts",
                 "behind_switches"} | null,
     "domains": {"datacenter": [...], "switch": [...], "rack": [...], "host": [...]},
     "groups": [{"name", "members": [{"service", "datacenter", "switch", "rack", "host"}],
                 "shared": [<domain>, ...], "spread": bool}]}
    """
    largest = report.largest
    return {
        "services": report.services,
        "largest": domain(largest) if largest else None,
        "domains": {level: [domain(d) for d in report.domains.get(level, ())] for level in LEVELS},
        "groups": [group(g) for g in report.groups],
    }
