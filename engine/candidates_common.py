"""What every class of candidate cause builds on: :class:`Candidate`, the inventory as a
:class:`Topology`, the timing constants, and what an incident says about its failures
(:func:`first_failures`, :func:`hard_failed`, :func:`signals`).  The classes themselves are in
:mod:`whatchanged.engine.candidates` (releases, maintenance) and :mod:`whatchanged.engine.hosting`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from whatchanged.engine.model import CauseCategory, Change, Incident

#: the classes a candidate can be of (``unknown`` is what ranking says when none fits)
CATEGORIES: tuple[CauseCategory, ...] = ("hosting", "application_release", "external_maintenance")


RELEASE_KINDS = ("deploy", "config")


MAINTENANCE_KINDS = ("maintenance", "provider_incident")


REACTION_KINDS = ("restart", "deploy", "config", "infra_alert")


#: a deploy logged up to this long after the refined onset can still be the cause
ONSET_TOLERANCE_S = 120


#: a deploy's time score stays 1 for this long, then falls linearly to 0 at the look-back limit
RELEASE_PLATEAU_S = 15 * 60


#: a maintenance that ended this long before the onset still scores 1/e (overruns)
OVERRUN_DECAY_S = 60 * 60


#: a maintenance still in progress at its latest update covers onsets up to this long after
#: its end as updated (the scheduled end, or the time of an "in progress" update after it)
IN_PROGRESS_GRACE_S = 60 * 60


#: a maintenance that starts after the onset (late announcement, clock skew) decays this fast
EARLY_DECAY_S = 15 * 60


#: services failing within this long of the first failure count as failing first
FIRST_FAILURE_SLACK_S = 120


LEVELS = ("service", "host", "switch", "rack", "datacenter")


INFRA_KINDS = ("host", "switch", "router", "loadbalancer", "lb", "firewall", "database", "storage")


#: check names that test a machine's reachability rather than an application
HOST_CHECKS = re.compile(r"^(host|ping|icmp|ssh|check[-_ ]?(ping|host|ssh|icmp)|reachab)", re.I)


NETWORK_METRIC = re.compile(r"bandwidth|throughput|mbps|bps|network|net_|packet|traffic|rtt|ping", re.I)


_ERRORS = re.compile(r"error|5xx|err_|fail|exception", re.I)


@dataclass(frozen=True)
class Candidate:
    """One possible cause, before scoring."""

    category: CauseCategory
    title: str
    start: datetime | None
    end: datetime | None
    change: Change | None = None
    component: str | None = None
    component_level: str | None = None
    features: dict[str, float] = field(default_factory=dict)
    evidence_for: tuple[str, ...] = ()
    evidence_against: tuple[str, ...] = ()


@dataclass(frozen=True)
class Topology:
    """The inventory as lookups: service → attributes, and level value → services."""

    attrs: Mapping[str, Mapping[str, str | None]]

    @cached_property
    def _by_level(self) -> dict[str, dict[str, set[str]]]:
        out: dict[str, dict[str, set[str]]] = {}
        for service, a in self.attrs.items():
            for level, v in a.items():
                if v is not None:
                    out.setdefault(level, {}).setdefault(v, set()).add(service)
        return out

    def members(self, level: str, value: str) -> set[str]:
        if level == "service":
            return {value} if value in self.attrs else set()
        return set(self._by_level.get(level, {}).get(value, ()))

    def value(self, service: str, level: str) -> str | None:
        if level == "service":
            return service
        row = self.attrs.get(service)
        return row.get(level) if row else None

    def app_peers(self, services: Iterable[str]) -> set[str]:
        apps = {self.value(s, "app") for s in services} - {None}
        return set().union(*(self.members("app", a) for a in apps if a is not None))


def fmt_duration(seconds: float) -> str:
    """``2 h 18 min``, ``17 min``, ``45 s``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes:02d} min"
    return f"{hours} h" if hours else f"{minutes} min"


def _ratio(n: int, d: int) -> float:
    return n / d if d else 0.0


def first_failures(incident: Incident) -> dict[str, datetime]:
    """When each affected service first went wrong (outage start or anomaly onset)."""
    first: dict[str, datetime] = {}
    for o in incident.outages:
        if o.service not in first or o.start < first[o.service]:
            first[o.service] = o.start
    for a in incident.anomalies:
        if a.service not in first or a.onset < first[a.service]:
            first[a.service] = a.onset
    for s in incident.services_affected:
        first.setdefault(s, incident.onset)
    return first


def hard_failed(incident: Incident) -> set[str]:
    return {o.service for o in incident.outages} | set(incident.critical_services)


def signals(incident: Incident) -> tuple[bool, set[str]]:
    """(a network-capacity signal moved, services with an error-rate signal)."""
    names = set(incident.signals) | {a.metric for a in incident.anomalies}
    network = any(NETWORK_METRIC.search(n) for n in names)
    errors = {a.service for a in incident.anomalies if _ERRORS.search(a.metric) and a.direction == "up"}
    return network, errors
