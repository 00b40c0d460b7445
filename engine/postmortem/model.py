"""The facts of a postmortem: frozen dataclasses, each with the records it was read from.

:func:`whatchanged.engine.postmortem.gather.build_postmortem` fills a :class:`Postmortem`
from the warehouse; :mod:`whatchanged.present.postmortem.document` turns it into the JSON
form (every fact a field, every sentence with the fields and records it was built from).
Datetimes are aware, in UTC; durations in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from whatchanged.engine.availability import Availability
from whatchanged.engine.fate import Domain, Group
from whatchanged.engine.model import Cause, Change, Explanation, Incident


@dataclass(frozen=True)
class Record:
    """A row of the warehouse (or a set of rows, with ``rows``) that a fact was read from.

    ``table`` is a warehouse table (``services``, ``states``, ``metrics``, ``changes``,
    ``feedback``) or ``incidents`` (an incident computed from states and metrics); ``key``
    holds the natural key or the filter, times as aware datetimes."""

    table: str
    key: Mapping[str, Any]
    rows: int | None = None


@dataclass(frozen=True)
class Probe:
    """What the external up/down probes recorded during the incident (merged across probes)."""

    checks: tuple[tuple[str, str], ...]  # (service, check)
    outages: tuple[tuple[datetime, datetime], ...]  # merged down intervals
    downtime_s: float
    records: tuple[Record, ...]

    @property
    def first_start(self) -> datetime:
        return self.outages[0][0]

    @property
    def last_end(self) -> datetime:
        return self.outages[-1][1]


@dataclass(frozen=True)
class Hit:
    """One of the worst-hit services: its down time during the incident (union of its checks)."""

    service: str
    checks: tuple[str, ...]
    downtime_s: float
    external: bool
    records: tuple[Record, ...]


@dataclass(frozen=True)
class YearToDate:
    """Availability of one main check from 1 January (local) to the onset, and to the end."""

    service: str
    check: str
    before: Availability
    after: Availability


@dataclass(frozen=True)
class SignalMove:
    """How one metric moved: expected and observed summed over the services named."""

    metric: str
    services: tuple[str, ...]
    direction: str  # up, down
    expected: float
    observed: float
    onset: datetime
    network: bool
    #: True: expected and observed are sums over ``services`` (the fleet's edge); False: they
    #: are the levels of the one service where the metric moved most
    summed: bool = False


@dataclass(frozen=True)
class Impact:
    monitored: int
    affected: tuple[str, ...]
    critical: tuple[str, ...]
    #: the narrowest failure domain holding every CRITICAL service (None: several datacenters)
    critical_domain: Domain | None
    probe: Probe | None
    worst: tuple[Hit, ...]
    ytd: tuple[YearToDate, ...]
    #: service kinds of the CRITICAL services, most first (the customer update names them)
    kinds: tuple[tuple[str, int], ...]
    signals: tuple[SignalMove, ...]
    records: tuple[Record, ...]  # the CRITICAL intervals
    #: the datacenters of the CRITICAL services (else of the affected ones), sorted
    datacenters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """One line of the timeline: when, what (``event`` and its values), from which source."""

    at: datetime
    event: str
    values: Mapping[str, Any]
    source: str
    record: Record


@dataclass(frozen=True)
class Point:
    """One piece of evidence or one reason, as a code and the values its sentence needs."""

    code: str
    values: Mapping[str, Any] = field(default_factory=dict)
    records: tuple[Record, ...] = ()


@dataclass(frozen=True)
class CauseFacts:
    """A ranked cause with the change behind it and its evidence as :class:`Point` s."""

    cause: Cause
    change: Change | None
    #: hosting: the level of the component (service, host, switch, rack, datacenter)
    level: str | None
    #: the services the change's scope (or the component) covers
    scope: tuple[str, ...]
    scope_domain: Domain | None
    #: the stored versions of the change: (stamp or start, status), oldest first
    versions: tuple[tuple[datetime, str | None], ...]
    evidence_for: tuple[Point, ...]
    evidence_against: tuple[Point, ...]


@dataclass(frozen=True)
class RuledOutFacts:
    category: str
    best_score: float | None
    reason: Point
    engine_reason: str


@dataclass(frozen=True)
class Related:
    incident: Incident
    top: Cause | None


@dataclass(frozen=True)
class FirstCorrect:
    """The responders' verdict and, when it confirms the top cause, how soon the data allowed
    naming it: the later of the incident's first sign and the cause being on record."""

    confirmed: bool
    verdict_change_id: str | None
    verdict_category: str | None
    author: str | None
    created: datetime
    visible_at: datetime  # first outage (any state) or anomaly detection
    known_at: datetime  # the change's first stored version, or the component's failure
    record: Record

    @property
    def available_at(self) -> datetime:
        return max(self.visible_at, self.known_at)


@dataclass(frozen=True)
class Helped:
    """What would have helped, from the data only."""

    scope: tuple[str, ...]  # the services of the scope that failed
    scope_domain: Domain | None
    scope_label: tuple[str, str] | None  # (level, name) when the scope is one domain
    groups_inside: tuple[Group, ...]
    #: the top cause is a failed component: its group's other members, outside the scope
    standby: tuple[str, ...]
    standby_group: str | None
    notice_lead_s: float | None
    notice_at: datetime | None
    first_alert: Event | None
    signals_before: tuple[SignalMove, ...]
    first_anomaly: datetime | None
    first_correct: FirstCorrect | None
    records: tuple[Record, ...]
    #: how many redundancy groups the inventory names (0: the column is empty or missing)
    groups_total: int = 0


@dataclass(frozen=True)
class Postmortem:
    incident: Incident
    explanation: Explanation
    impact: Impact
    timeline: tuple[Event, ...]
    cause: CauseFacts | None
    runner_up: CauseFacts | None
    ruled_out: tuple[RuledOutFacts, ...]
    related: tuple[Related, ...]
    helped: Helped
    reactions: tuple[Change, ...]
    #: the latest time the warehouse holds (an incident ending before it is over)
    data_end: datetime
    lookback_s: float


#: metric name endings and the unit they mean
UNITS = (
    ("_mbps", "Mbit/s"),
    ("_kbps", "kbit/s"),
    ("_bps", "bit/s"),
    ("_ms", "ms"),
    ("_pct", "%"),
    ("_s", "s"),
)


def unit_of(metric: str) -> str:
    """The unit a metric's name ends with (``_mbps`` → Mbit/s), or ''."""
    return next((u for end, u in UNITS if metric.endswith(end)), "")
