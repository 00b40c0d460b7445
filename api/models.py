"""Request and response bodies of the HTTP API (pydantic); third-party webhook payloads are
in :mod:`whatchanged.api.payloads`.

Requests we define ourselves (feedback) are validated strictly.  The response models document
and serialise the shapes of :mod:`whatchanged.present.shapes` (the CLI's ``--json`` goes
through them too: ``api.output.wire``).  They allow extra keys, so that a field the
engine adds reaches clients without an API change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from whatchanged.engine.model import CauseCategory

# -- shared --------------------------------------------------------------------------------------


class _Out(BaseModel):
    """A response object: documented fields, extra engine fields passed through."""

    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChangeKind(StrEnum):
    """Documented values of ``changes.kind``."""

    deploy = "deploy"
    maintenance = "maintenance"
    provider_incident = "provider_incident"
    config = "config"
    infra_alert = "infra_alert"
    restart = "restart"


class Page(_Out):
    total: int = Field(ge=0, description="How many items match, over all pages.")
    limit: int = Field(ge=1, description="Page size asked for.")
    offset: int = Field(ge=0, description="Index of the first item of this page.")


# -- engine results -------------------------------------------------------------------------------


class ChangeOut(_Out):
    """One change event or window (the latest stored version)."""

    change_id: str
    kind: str = Field(description="deploy, maintenance, provider_incident, config, infra_alert, restart")
    start: datetime
    end: datetime | None = None
    title: str | None = None
    description: str | None = None
    status: str | None = Field(
        default=None, description="scheduled, in_progress, completed, cancelled, resolved"
    )
    impact: str | None = None
    source: str | None = None
    url: str | None = None
    author: str | None = None
    version: str | None = None
    scope: dict[str, list[str]] = Field(
        default_factory=dict, description="services, apps, datacenters, racks, switches, hosts"
    )
    resolved_services: list[str] = Field(
        default_factory=list, description="Inventory services the scope resolves to now."
    )
    start_local: datetime | None = Field(default=None, description="`start` in the zone asked for.")
    end_local: datetime | None = Field(default=None, description="`end` in the zone asked for.")


class OutageOut(_Out):
    service: str
    check: str
    start: datetime
    end: datetime | None = None
    state: str = Field(description="CRITICAL, DOWN or down")
    source: str | None = None
    external: bool = Field(description="True for an external probe (Pingdom …).")


class AnomalyOut(_Out):
    service: str
    metric: str
    onset: datetime
    end: datetime | None = None
    direction: str = Field(description="up or down")
    peak_score: float | None = None
    baseline: float | None = None
    observed: float | None = None


class IncidentSummaryOut(_Out):
    """An incident, without its list of outages."""

    id: str = Field(description="Stable incident id (derived from the data).")
    onset: datetime
    end: datetime | None = None
    services_affected: int = Field(ge=0, description="How many services were affected.")
    critical_services: int = Field(ge=0, description="How many of them went CRITICAL/down.")
    outage_count: int = Field(ge=0, description="Outages an external prober would report.")
    downtime_s: int = Field(ge=0, description="Cumulated downtime, whole seconds.")
    signals: list[str] = Field(default_factory=list, description="Metrics that moved.")
    services: list[str] = Field(default_factory=list, description="The affected services.")
    critical: list[str] = Field(default_factory=list, description="The services that went CRITICAL/down.")


class IncidentOut(IncidentSummaryOut):
    """An incident with its outages."""

    outages: list[OutageOut] = Field(default_factory=list)


class CauseOut(_Out):
    rank: int = Field(ge=1)
    category: str = Field(description="hosting, application_release, external_maintenance, unknown")
    change_id: str | None = None
    component: str | None = Field(default=None, description="For hosting: what failed first.")
    title: str
    start: datetime | None = None
    end: datetime | None = None
    score: float = Field(ge=0, le=1)
    evidence_for: list[str] = Field(default_factory=list)
    evidence_against: list[str] = Field(default_factory=list)
    features: dict[str, float | None] = Field(default_factory=dict)


class RuledOutOut(_Out):
    category: str
    reason: str


class ReactionOut(_Out):
    """Something responders did during the incident (a restart …)."""

    change_id: str
    kind: str
    start: datetime
    end: datetime | None = None
    title: str | None = None
    author: str | None = None


class WeightsOut(_Out):
    """The ranking weights an explanation used."""

    source: str = Field(
        description="`default`, or the path of the fitted model file (`<home>/model/rank.json`)."
    )
    fitted_at: str | None = Field(
        default=None, description="When the model was fitted, ISO 8601 in UTC (null for the defaults)."
    )


class OverlapOut(_Out):
    """Another incident under way during the one explained."""

    id: str
    onset: datetime
    end: datetime | None = None
    services_affected: int = Field(ge=0)


class ExplanationOut(_Out):
    """What changed at ``at``: the incident there, ranked causes, ruled-out classes, reactions.

    Times are ISO 8601 in the zone asked for (``tz``), with its offset.
    """

    at: datetime
    incident: IncidentOut | None
    causes: list[CauseOut]
    ruled_out: list[RuledOutOut]
    reactions: list[ReactionOut]
    anomalies: list[AnomalyOut] = Field(default_factory=list)
    weights: WeightsOut
    overlapping: list[OverlapOut] = Field(
        default_factory=list,
        description="Other incidents under way during this one (an earlier wave still lingering, "
        "an unrelated failure): the answer is about the wave whose onset is nearest before `at`.",
    )


class IncidentPage(Page):
    items: list[IncidentSummaryOut]


class SentenceOut(_Out):
    id: str = Field(
        description="The sentence's key in the catalogue (`summary.probe`, `timeline.reaction` …)."
    )
    text: str
    fields: list[str] = Field(description="The paths in `facts` of every value the text holds.")
    records: list[dict[str, Any]] = Field(
        description="The warehouse rows it was built from: `{table, <key columns>}`, `rows` for a count."
    )


class BlockOut(_Out):
    style: Literal["paragraph", "list"]
    intro: SentenceOut | None = None
    sentences: list[SentenceOut]


class SectionOut(_Out):
    id: str
    title: str
    blocks: list[BlockOut]


class PostmortemOut(_Out):
    """The JSON form of a postmortem draft (`whatchanged postmortem --format json`): every fact
    as a field of `facts`, and per sentence the fields and records it was built from.  The
    Markdown and HTML forms are rendered from it."""

    kind: Literal["postmortem"]
    audience: Literal["team", "customers"]
    lang: str
    tz: str
    incident_id: str
    title: str
    subtitle: str
    facts: dict[str, Any]
    sections: list[SectionOut]
    statuspage: dict[str, Any] | None = Field(
        None,
        description="Customers only: `{name, status, impact, body}` and `request`, the body of "
        "Statuspage's `POST /v1/pages/{page_id}/incidents`.",
    )


class ChangeList(_Out):
    """Changes meeting ``[at - before, at + after]`` (the shape of ``whatchanged changes --json``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    at: datetime = Field(description="The time asked about (UTC).")
    tz: str = Field(description="Zone of the `*_local` times.")
    from_: datetime = Field(alias="from", description="Start of the range searched (UTC).")
    to: datetime = Field(description="End of the range searched (UTC).")
    kind: str | None = Field(description="The kind asked for, or null for all.")
    total: int = Field(ge=0, description="How many changes are listed.")
    changes: list[ChangeOut]


class AvailabilityOut(_Out):
    """Up time of a selection over a range (``whatchanged.engine.availability``)."""

    selection: str = Field(description="What was measured: `service=www`, `check=…`, `group=P19`.")
    source: str = Field(description="`external` (up/down probes) or `nagios` (check states).")
    start: datetime
    end: datetime
    checks: list[str] = Field(description="`service/check` pairs measured.")
    period_s: float = Field(description="Length of the range, minus planned maintenance when excluded.")
    downtime_s: float = Field(description="Down time (any measured check down), seconds.")
    outage_count: int = Field(ge=0)
    planned_s: float = Field(description="Planned maintenance inside the range (0 unless excluded).")
    exclude_planned: bool
    availability: float = Field(description="Fraction in [0, 1].")
    percent: str = Field(description="`99.98%`: two decimals, rounded down.")


class DomainOut(_Out):
    """A failure domain: one datacenter, switch, rack or host and the services in it."""

    level: str = Field(description="`datacenter`, `switch`, `rack` or `host`.")
    name: str
    services: int = Field(ge=0, description="Services in the domain.")
    share_pct: float = Field(description="Share of all services, in percent (one decimal).")


class GroupMemberOut(_Out):
    service: str
    datacenter: str | None = None
    switch: str | None = None
    rack: str | None = None
    host: str | None = None


class GroupOut(_Out):
    """A redundancy group and the domains where all its members sit together."""

    name: str
    members: list[GroupMemberOut]
    shared: list[DomainOut] = Field(description="Domains holding every member, widest first.")
    spread: bool = Field(description="No domain holds every member.")


class FateOut(_Out):
    """Shared fate: the failure domains of the inventory and the redundancy groups
    (``whatchanged.engine.fate``; `whatchanged fate --json`)."""

    services: int = Field(ge=0)
    largest: DomainOut | None = Field(description="The failure domain holding the most services.")
    domains: dict[str, list[DomainOut]] = Field(description="Per level, largest first.")
    groups: list[GroupOut]


class ServiceOut(_Out):
    service: str
    kind: str | None = None
    datacenter: str | None = None
    rack: str | None = None
    switch: str | None = None
    host: str | None = None
    app: str | None = None
    critical: bool | None = None
    tags: dict[str, str | None] = Field(default_factory=dict)
    redundancy_group: str | None = Field(
        None, description="Services that stand in for each other share a group (primary and standby)."
    )


class ServicePage(Page):
    items: list[ServiceOut]


class SourceStatusOut(_Out):
    source: str = Field(description="The source's name in sources.toml.")
    kind: str = Field(description="prometheus, statuspage, feed or ical.")
    state: Literal["ok", "failing", "never"] = Field(
        description="`failing`: the last pass failed and it is retried with backoff; `never`: not pulled yet."
    )
    cursor: dict[str, Any] | None = Field(description="Where it stopped, as committed with the data.")
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    seconds_since_success: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = Field(None, description="One line: timeout, HTTP status, TLS, bad JSON …")
    next_retry: datetime | None = None
    rows_added: int = 0


class StatusOut(_Out):
    home: str | None = Field(
        description="The warehouse folder on the server; null unless the request carries an API token."
    )
    commits: int
    rows: dict[str, int]
    services: int
    services_with_metrics: int
    changes_by_kind: dict[str, int]
    first: datetime | None = None
    last: datetime | None = None
    bytes: int
    sources: list[SourceStatusOut] = Field(default_factory=list)


class HealthOut(_Strict):
    status: Literal["ok"] = "ok"
    warehouse: bool = Field(description="Whether the warehouse folder is initialised.")
    commits: int = Field(ge=0, description="Commits visible to this process.")
    analysis: Literal["running", "ready", "failed", "none"] = Field(
        "none",
        description="The detection state the server computes when it starts (`whatchanged analyze`): "
        "questions are answered either way, faster once it is `ready`.",
    )


class ReadyOut(_Strict):
    status: Literal["ready"] = "ready"
    commits: int = Field(ge=0, description="Commits whose manifests were read.")
    files: int = Field(ge=0, description="Data files those manifests name, all present.")


# -- writes -------------------------------------------------------------------------------------------


class ChangesCreated(_Strict):
    """What ``POST /changes`` stored."""

    format: str = Field(description="Which payload kind was read: deploy, github, pagerduty, grafana.")
    received: int = Field(ge=0, description="Changes in the payload.")
    added: int = Field(ge=0, description="Changes stored now; 0 when every one was already stored as is.")
    change_ids: list[str] = Field(description="Ids of the changes in the payload, in order.")
    txid: str | None = Field(description="Warehouse commit id, or null when nothing was added.")


class FeedbackIn(_Strict):
    """A responder's verdict on an incident: the confirmed cause, and a note."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cause_change_id": "ovh:FS#51234",
                    "category": "external_maintenance",
                    "comment": "confirmed with the provider's notice",
                    "author": "alice",
                }
            ]
        },
    )

    cause_change_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="The change that caused the incident."
    )
    category: CauseCategory | None = Field(default=None, description="The cause class.")
    comment: str | None = Field(default=None, max_length=4000, description="Free text.")
    author: str | None = Field(default=None, min_length=1, max_length=200, description="Who says so.")

    @model_validator(mode="after")
    def _something_confirmed(self) -> FeedbackIn:
        if self.cause_change_id is None and self.category is None:
            raise ValueError("give cause_change_id, category or both")
        return self


class FeedbackOut(_Strict):
    feedback_id: str
    incident_id: str
    cause_change_id: str | None
    category: str | None
    comment: str | None
    author: str | None
    created: datetime


# -- change payloads accepted by POST /changes (documentation and first validation) --------------


# -- Alertmanager webhook (POST /alerts/alertmanager) --------------------------------------------
