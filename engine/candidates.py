"""Step 4 of the pipeline: collect candidate causes of an incident, with features.

Three classes of candidate:

* **application_release** — a deploy (or config change) starting in the
  look-back window before the onset (``Settings.deploy_lookback_s``, 2 h by
  default) or up to :data:`ONSET_TOLERANCE_S` after it (onsets are refined to
  the minute, deploy logs are not always on time);
* **external_maintenance** — a provider maintenance or provider incident
  whose window (as its latest update gives it: see
  ``whatchanged.ingest.changes_common.window_as_updated``) covers the onset,
  or that is still in progress and the onset came within
  :data:`IN_PROGRESS_GRACE_S` of its end (running over: counts as covering),
  or ended shortly before it (an overrun), or starts just after it
  (announced late);
* **hosting** — an infrastructure component (a service, its host, switch,
  rack or datacenter) that failed hard (CRITICAL/down) first, upstream of the
  other affected services in the topology.

Changes that start after the onset (operators restarting things during the
incident, rollbacks) are *reactions*, never causes.

Each candidate carries features in [0, 1], combined by :mod:`rank`:

``time``       temporal alignment (1 = as close as it gets)
``recall``     share of the affected services inside the candidate's scope
``precision``  share of the candidate's scope that was affected
``signature``  how well the metric signature fits the class (network drop
               → maintenance/hosting, error-rate jump on the app → release)
``hard``       the component itself failed hard (hosting only)
``cancelled``  the notice was cancelled (1) or not (0)
``covered``    hosting only: a maintenance covering the onset has it in scope
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from whatchanged.engine.model import Change, Incident

CATEGORIES = ("hosting", "application_release", "external_maintenance")
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
_NETWORK = re.compile(r"bandwidth|throughput|mbps|bps|network|net_|packet|traffic|rtt|ping", re.I)
_ERRORS = re.compile(r"error|5xx|err_|fail|exception", re.I)


@dataclass(frozen=True)
class Candidate:
    """One possible cause, before scoring."""

    category: str
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


# -- helpers ----------------------------------------------------------------------------


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
    network = any(_NETWORK.search(n) for n in names)
    errors = {a.service for a in incident.anomalies if _ERRORS.search(a.metric) and a.direction == "up"}
    return network, errors


# -- collection -------------------------------------------------------------------------------


def release_time_score(lead_s: float, lookback_s: float) -> float:
    if lead_s < -ONSET_TOLERANCE_S or lead_s > lookback_s:
        return 0.0
    if lead_s <= RELEASE_PLATEAU_S:
        return 1.0
    return max(0.0, 1.0 - (lead_s - RELEASE_PLATEAU_S) / (lookback_s - RELEASE_PLATEAU_S))


def maintenance_time_score(
    onset: datetime, start: datetime, end: datetime | None, *, in_progress: bool = False
) -> float:
    """1 when the window covers the onset — or when the notice is still in progress (not
    completed) and the onset comes within :data:`IN_PROGRESS_GRACE_S` of its end as last
    updated: it overran; decaying before the start and after the end otherwise."""
    if onset < start:
        return math.exp(-(start - onset).total_seconds() / EARLY_DECAY_S)
    if end is None or onset <= end:
        return 1.0
    late = (onset - end).total_seconds()
    if in_progress:
        late = max(0.0, late - IN_PROGRESS_GRACE_S)
    return math.exp(-late / OVERRUN_DECAY_S)


def extended_over(onset: datetime, ch: Change) -> bool:
    """``ch`` is still in progress at its latest update and the onset came shortly after
    its end as updated: the maintenance is running over and covers the onset."""
    return (
        ch.status == "in_progress"
        and ch.end is not None
        and ch.end < onset
        and (onset - ch.end).total_seconds() <= IN_PROGRESS_GRACE_S
    )


def _from_change(category: str, ch: Change, pro: list[str], con: list[str], **features: float) -> Candidate:
    """A candidate for ``ch``; features not given are 0."""
    values = dict.fromkeys(("time", "recall", "precision", "signature", "hard", "cancelled"), 0.0) | features
    return Candidate(
        category=category,
        title=ch.title or ch.change_id,
        start=ch.start,
        end=ch.end,
        change=ch,
        features=values,
        evidence_for=tuple(pro),
        evidence_against=tuple(con),
    )


def _overlap(affected: set[str], scope: set[str]) -> tuple[set[str], float, float]:
    """(affected services in scope, recall over the affected, precision over the scope)."""
    hit = affected & scope
    return hit, _ratio(len(hit), len(affected)), _ratio(len(hit), len(scope))


def release_candidates(
    incident: Incident,
    changes: Iterable[Change],
    topo: Topology,  # noqa: ARG001 (positional in engine/explain.py's call, which this pass leaves alone)
    *,
    lookback_s: float,
    tz_fmt: str,
) -> list[Candidate]:
    affected = set(incident.services_affected)
    network, error_services = signals(incident)
    out = []
    for ch in changes:
        if ch.kind not in RELEASE_KINDS:
            continue
        lead = (incident.onset - ch.start).total_seconds()
        time_score = release_time_score(lead, lookback_s)
        if time_score == 0.0:
            continue
        scope = set(ch.resolved_services)
        hit, recall, precision = _overlap(affected, scope)
        if not scope:
            recall = precision = 0.25  # scope unknown: weak either way
        if error_services & scope:
            signature = 1.0
        elif network and not error_services:
            signature = 0.2
        else:
            signature = 0.5
        pro: list[str] = []
        con: list[str] = []
        when = f"{ch.start.astimezone(_tz(tz_fmt)).strftime('%H:%M')}"
        if lead >= 0:
            pro.append(f"released at {when}, {fmt_duration(lead)} before the onset")
        else:
            pro.append(f"logged at {when}, {fmt_duration(-lead)} after the onset (within the tolerance)")
        if not scope:
            con.append("its scope names no service of the inventory")
        elif hit:
            pro.append(f"{len(hit)} of the {len(affected)} affected services got this release")
            if precision < 0.5:
                con.append(
                    f"it reached {len(scope)} services and only {len(hit)} of them are affected "
                    f"({len(scope) - len(hit)} unaffected services got the same release)"
                )
        else:
            con.append(f"it reached {len(scope)} services, none of which is affected")
        if signature == 1.0:
            pro.append("the error rate jumped on services of the released app")
        elif signature == 0.2:
            con.append("the signature is a network capacity drop, not an application error")
        out.append(
            _from_change(
                "application_release",
                ch,
                pro,
                con,
                time=time_score,
                recall=recall,
                precision=precision,
                signature=signature,
            )
        )
    return out


def maintenance_candidates(
    incident: Incident, changes: Iterable[Change], topo: Topology, *, tz_fmt: str
) -> list[Candidate]:
    affected = set(incident.services_affected)
    network, error_services = signals(incident)
    out = []
    for ch in changes:
        if ch.kind not in MAINTENANCE_KINDS:
            continue
        time_score = maintenance_time_score(
            incident.onset, ch.start, ch.end, in_progress=ch.status == "in_progress"
        )
        if time_score < 0.05:
            continue
        scope = set(ch.resolved_services)
        hit, recall, precision = _overlap(affected, scope)
        signature = 1.0 if network else (0.2 if error_services and not incident.outages else 0.5)
        tz = _tz(tz_fmt)
        window = f"{ch.start.astimezone(tz).strftime('%H:%M')}–" + (
            ch.end.astimezone(tz).strftime("%H:%M") if ch.end else "open"
        )
        onset = incident.onset.astimezone(tz).strftime("%H:%M")
        what = _scope_words(ch)
        pro: list[str] = []
        con: list[str] = []
        label = f"{ch.kind.replace('_', ' ')} {ch.change_id}" + (f" ({what})" if what else "")
        if ch.status in ("completed", "resolved") and ch.end is not None:
            window += f" as updated ({ch.status})"
        if ch.end is None or ch.start <= incident.onset <= ch.end:
            pro.append(f"{label} window {window} covers the onset at {onset}")
        elif extended_over(incident.onset, ch):
            pro.append(
                f"{label} window {window} is not completed: still in progress at its last update,"
                f" running past its end, it covers the onset at {onset}"
            )
        elif incident.onset > ch.end:
            con.append(
                f"{label} window {window} ended {fmt_duration((incident.onset - ch.end).total_seconds())}"
                f" before the onset at {onset}"
            )
            pro.append("maintenance often overruns its announced end")
        else:
            con.append(
                f"{label} window {window} starts {fmt_duration((ch.start - incident.onset).total_seconds())}"
                f" after the onset at {onset}"
            )
        if hit:
            where = _where(hit, topo)
            pro.append(f"{len(hit)} of {len(affected)} affected services sit in its scope{where}")
            missed = affected - scope
            if missed:
                con.append(f"{len(missed)} affected services are outside its scope")
        elif scope:
            con.append(f"its scope ({len(scope)} services) contains none of the affected services")
        else:
            con.append("its scope could not be matched to the inventory")
        if network:
            pro.append("network capacity dropped, the signature of network work")
        if ch.cancelled:
            con.append("the notice was cancelled")
        out.append(
            _from_change(
                "external_maintenance",
                ch,
                pro,
                con,
                time=time_score,
                recall=recall,
                precision=precision,
                signature=signature,
                cancelled=1.0 if ch.cancelled else 0.0,
            )
        )
    return out


def hosting_candidates(
    incident: Incident,
    changes: Iterable[Change],
    topo: Topology,
    *,
    tz_fmt: str,
    covering: Sequence[Change] = (),
) -> list[Candidate]:
    """The component (service, host, switch, rack or datacenter) that best explains the hard failures.

    Every component holding a service that failed hard first is considered;
    its ``recall`` counts the affected services under it plus those of the
    same app that did not fail before it (downstream: a mail queue filling
    up when the back office it feeds goes down), its ``precision`` the share
    of its services that failed hard.  The one with the best recall,
    precision and hardness is kept, the most specific on a tie.  ``hard`` is 1 when the component itself is down (a reachability
    check such as PING/HOST failed, an infrastructure service failed, or
    several services under one host/switch/rack failed), lower when one
    application service failed on its own.  ``covered`` is 1 when a
    maintenance window covering the onset has the failed services in scope:
    the failure is then the maintenance's effect, not a hosting fault.
    """
    affected = set(incident.services_affected)
    hard = hard_failed(incident) & affected
    if not hard:
        return []
    first = first_failures(incident)
    t0 = min(first[s] for s in hard)
    slack = timedelta(seconds=FIRST_FAILURE_SLACK_S)
    early = {s for s in hard if first[s] < t0 + slack}
    options = {(level, v) for s in early for level in LEVELS if (v := topo.value(s, level)) is not None}
    best: tuple[tuple[float, float, int], Candidate] | None = None
    network, error_services = signals(incident)
    host_down = {o.service for o in incident.outages if HOST_CHECKS.match(o.check)}
    tz = _tz(tz_fmt)
    for level, value in sorted(options):
        members = topo.members(level, value) or ({value} if level == "service" else set())
        under = affected & members
        if not under:
            continue
        comp_first = min(first[s] for s in under)
        single = level == "service" or len(members) == 1  # a host with one service is that service
        if single:
            kind = (topo.attrs.get(next(iter(members))) or {}).get("kind") or ""
            hardness = 1.0 if members & host_down or kind.lower() in INFRA_KINDS else 0.3
        elif level == "datacenter":
            hardness = 0.5
        else:
            hardness = 1.0 if len(under & hard) >= 2 or under & host_down else 0.5
        # the app peers of a machine that went down, degrading with or after it, depend on it;
        # for a switch or a rack "same app" says nothing about the path the traffic took
        downstream = (
            {s for s in (affected - under) & topo.app_peers(under) if first[s] >= comp_first - slack / 2}
            if single and hardness == 1.0
            else set()
        )
        explained = under | downstream
        recall = _ratio(len(explained), len(affected))
        precision = 0.5 if single else _ratio(len(under & hard), len(members))
        time_score = 1.0 if comp_first < t0 + slack else 0.5
        if network:
            signature = 1.0
        elif under & error_services and not under & host_down:
            signature = 0.0
        else:
            signature = 0.5
        covered_by = [m for m in covering if under <= set(m.resolved_services)]
        key = (round(recall + precision + hardness, 3), round(recall, 3), -LEVELS.index(level))
        if best is not None and key <= best[0]:
            continue
        pro: list[str] = []
        con: list[str] = []
        name = value if level == "service" else f"{level} {value}"
        first_txt = f"{name} failed first, at {comp_first.astimezone(tz).strftime('%H:%M')}"
        if level == "service" and topo.value(value, "host"):
            first_txt += f" (host {topo.value(value, 'host')})"
        pro.append(first_txt)
        if downstream:
            pro.append(f"{len(downstream)} other affected services of the same app depend on it")
        if single:
            if hardness == 1.0:
                pro.append(
                    "its reachability check failed: the machine itself was down"
                    if members & host_down
                    else "it is an infrastructure service"
                )
            else:
                con.append("only its application checks failed, not the machine")
        elif precision >= 0.5:
            pro.append(f"{len(under & hard)} of its {len(members)} services failed hard")
        else:
            con.append(f"only {len(under & hard)} of the {len(members)} services under it failed")
        missed = affected - explained
        if missed:
            con.append(f"{len(missed)} affected services are neither under it nor downstream of it")
        if level == "datacenter":
            con.append("no single host, switch or rack failed before the others")
        if signature == 0.0:
            con.append("the error rate jumped: an application symptom rather than a machine failure")
        con += [f"it sits in the scope of {m.change_id}, whose window covers the onset" for m in covered_by]
        peers = _standby_peers(value, level, topo, affected) if hardness == 1.0 else set()
        if 1 <= len(peers) <= 3:  # a primary/standby pair or a small cluster
            pro.append(f"{', '.join(sorted(peers)[:3])} of the same app did not take over")
        if network and level in ("switch", "rack", "datacenter"):
            pro.append("network capacity dropped, consistent with a network component failure")
        cand = Candidate(
            category="hosting",
            title=f"{name} failed",
            start=comp_first,
            end=None,
            component=value,
            component_level=level,
            features={
                "time": time_score,
                "recall": recall,
                "precision": precision,
                "signature": signature,
                "hard": hardness,
                "cancelled": 0.0,
                "covered": 1.0 if covered_by else 0.0,
            },
            evidence_for=tuple(pro),
            evidence_against=tuple(con),
        )
        best = (key, cand)
    out: list[Candidate] = [best[1]] if best else []
    for ch in changes:
        if ch.kind != "infra_alert" or not (
            ch.start <= incident.onset + timedelta(seconds=ONSET_TOLERANCE_S)
        ):
            continue
        scope = set(ch.resolved_services)
        hit = affected & scope
        out.append(
            Candidate(
                category="hosting",
                title=ch.title or ch.change_id,
                start=ch.start,
                end=ch.end,
                change=ch,
                component=next(iter(ch.scope.get("hosts", ()) or ch.scope.get("switches", ()) or ()), None),
                features={
                    "time": 1.0,
                    "recall": _ratio(len(hit), len(affected)),
                    "precision": _ratio(len(hit), len(scope)),
                    "signature": 0.5,
                    "hard": 1.0,
                    "cancelled": 0.0,
                },
                evidence_for=(f"infrastructure alert {ch.change_id} raised before the onset",),
            )
        )
    return out


def _standby_peers(value: str, level: str, topo: Topology, affected: set[str]) -> set[str]:
    """Services of the same app as a failed single service that stayed up (a standby)."""
    if level != "service":
        return set()
    return topo.app_peers([value]) - affected - {value}


def _where(services: set[str], topo: Topology) -> str:
    for level in ("switch", "datacenter"):
        values = {topo.value(s, level) for s in services} - {None}
        if len(values) == 1:
            return (
                f" (all behind {level} {next(iter(values))})"
                if level == "switch"
                else f" (all in {next(iter(values))})"
            )
        if level == "switch" and 1 < len(values) <= 4:
            return f" (behind {', '.join(sorted(v for v in values if v))})"
    return ""


def _scope_words(ch: Change) -> str:
    parts = []
    for key in ("datacenters", "switches", "hosts", "racks", "apps"):
        vals = ch.scope.get(key, ())
        if vals:
            parts.append(" ".join(vals[:3]) + ("…" if len(vals) > 3 else ""))
    return ", ".join(parts)


def _tz(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def reactions(incident: Incident, changes: Iterable[Change]) -> list[Change]:
    """Changes made after the onset, during the incident: responders acting, not causes."""
    end = incident.end or incident.onset + timedelta(hours=6)
    return [
        ch
        for ch in changes
        if ch.kind in REACTION_KINDS
        and incident.onset + timedelta(seconds=ONSET_TOLERANCE_S if ch.kind != "restart" else 0)
        < ch.start
        <= end
    ]
