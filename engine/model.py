"""Engine results: frozen dataclasses with units in field names.

These are the contract between the engine's steps (detect → incidents →
candidates → rank → explain) and its users (CLI, API, dashboards, batch).
Every datetime is aware and in UTC.  ``to_dict`` gives the JSON shape the CLI
``--json`` and the API print (datetimes as ISO 8601 strings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, get_args

#: The cause classes the engine ranks; ``unknown`` when none of them explains an incident.
CauseCategory = Literal["hosting", "application_release", "external_maintenance", "unknown"]
CAUSE_CATEGORIES: tuple[CauseCategory, ...] = get_args(CauseCategory)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Jsonable:
    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Change(_Jsonable):
    """One change event or window, as the ``changes`` view shows it (latest version)."""

    change_id: str
    kind: str  # deploy, maintenance, provider_incident, config, infra_alert, restart
    start: datetime
    end: datetime | None
    title: str | None = None
    description: str | None = None
    status: str | None = None  # scheduled, in_progress, completed, cancelled, resolved
    impact: str | None = None
    source: str | None = None
    url: str | None = None
    author: str | None = None
    version: str | None = None
    #: scope as stored: keys services, apps, datacenters, racks, switches, hosts
    scope: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the inventory services the scope resolves to now (filled at query time)
    resolved_services: tuple[str, ...] = ()

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


@dataclass(frozen=True)
class Anomaly(_Jsonable):
    """A metric of one service outside its baseline for at least the minimum duration."""

    service: str
    metric: str
    start: datetime  # first sample beyond the threshold
    onset: datetime  # refined to the minute (change-point search)
    end: datetime | None  # None: still anomalous at the end of the data
    direction: str  # "up" or "down"
    peak_score: float
    baseline: float  # expected value at the onset
    observed: float  # median observed value during the anomaly
    #: when an online detector could report it (the sample completing the minimum duration)
    detected_at: datetime | None = None
    #: True when the onset was refined with data after ``detected_at`` (batch analysis)
    onset_lookahead: bool = False
    #: raised by the contextual detector (a pattern new to the series), not the median one: it
    #: makes an incident only when sustained (``engine/incident_grouping.py``, ``MATERIAL_Z``)
    contextual: bool = False


@dataclass(frozen=True)
class Outage(_Jsonable):
    """One interval during which a check was CRITICAL/DOWN (or down for a probe)."""

    service: str
    check: str
    start: datetime
    end: datetime | None  # None: still down at the end of the data
    state: str  # CRITICAL, DOWN, down
    source: str  # nagios, pingdom, …
    external: bool  # True for an external probe (up/down states)

    @property
    def downtime_s(self) -> float:
        return (self.end - self.start).total_seconds() if self.end else 0.0


@dataclass(frozen=True)
class Incident(_Jsonable):
    """Anomalies and outages grouped across services by time and topology.

    ``outage_count`` and ``downtime_s`` are what an external prober reports:
    the down intervals of external probes merged across probes; when the
    incident has no probe data, the merged CRITICAL intervals of its checks.
    ``incident_id`` is derived from the data (stable across re-runs).
    """

    incident_id: str
    onset: datetime
    end: datetime | None
    services_affected: tuple[str, ...]
    critical_services: tuple[str, ...]
    outage_count: int
    downtime_s: float
    outages: tuple[Outage, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    signals: tuple[str, ...] = ()  # metric names that moved, e.g. ("bandwidth_mbps",)
    onset_lookahead: bool = False  # True when the onset was refined with data after it (batch)


@dataclass(frozen=True)
class Cause(_Jsonable):
    """One ranked candidate cause of an incident."""

    rank: int
    category: CauseCategory
    change_id: str | None
    component: str | None  # for hosting: the host/switch/service that failed first
    title: str
    start: datetime | None
    end: datetime | None
    score: float  # in [0, 1]
    evidence_for: tuple[str, ...] = ()
    evidence_against: tuple[str, ...] = ()
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RuledOut(_Jsonable):
    category: CauseCategory
    reason: str


@dataclass(frozen=True)
class Explanation(_Jsonable):
    """The answer to "what changed at T?"."""

    at: datetime
    incident: Incident | None
    causes: tuple[Cause, ...]
    ruled_out: tuple[RuledOut, ...]
    reactions: tuple[Change, ...]
    anomalies: tuple[Anomaly, ...] = ()
    #: the ranking weights used: "default", or the model file's path (and when it was fitted)
    weights: str = "default"
    weights_fitted_at: str | None = None
    #: other incidents under way at the same time (a lingering earlier wave, an unrelated one)
    overlapping: tuple[Incident, ...] = ()


def incident_from_dict(data: dict[str, Any]) -> Incident:
    """The inverse of ``Incident.to_dict()`` (used by the on-disk analysis cache)."""

    def build(cls: Any, d: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            kind = str(f.type)
            if value is not None and "datetime" in kind:
                value = datetime.fromisoformat(value)
            elif f.name == "outages":
                value = tuple(build(Outage, o) for o in value)
            elif f.name == "anomalies":
                value = tuple(build(Anomaly, a) for a in value)
            elif "tuple" in kind and isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    incident: Incident = build(Incident, data)
    return incident
