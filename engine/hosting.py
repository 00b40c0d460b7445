"""Step 4, hosting candidates: the infrastructure component that failed first.

Every component (service, host, switch, rack or datacenter) holding a service that failed hard
first is considered (:func:`hosting_candidates`); :func:`_score` gives each its features and
:func:`_evidence` the sentences for and against it; the best one is kept, with any
infrastructure alert raised before the onset (:func:`_alert_candidates`).  The candidate and
feature conventions are those of :mod:`whatchanged.engine.candidates`, which re-exports
:func:`hosting_candidates`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from whatchanged.engine.candidates_common import (
    FIRST_FAILURE_SLACK_S,
    HOST_CHECKS,
    INFRA_KINDS,
    LEVELS,
    ONSET_TOLERANCE_S,
    Candidate,
    Topology,
    _ratio,
    first_failures,
    hard_failed,
    signals,
)
from whatchanged.engine.model import Change, Incident
from whatchanged.engine.timeparse import fmt_local, zone

#: how a component ranks against the others: (recall + precision + hardness, recall, specificity)
Key = tuple[float, float, int]


@dataclass(frozen=True)
class _Failure:
    """What the incident says about hard failures, shared by every component scored."""

    affected: set[str]
    hard: set[str]
    first: dict[str, datetime]
    t0: datetime  # the first hard failure
    slack: timedelta
    network: bool  # a network-capacity signal moved
    error_services: set[str]  # services whose error rate jumped
    host_down: set[str]  # services whose reachability check failed
    covering: Sequence[Change]  # maintenance windows covering the onset
    tz: ZoneInfo


@dataclass(frozen=True)
class _Score:
    """One component's features, before the sentences."""

    level: str
    value: str
    members: set[str]
    under: set[str]  # affected services under it
    downstream: set[str]  # affected app peers failing with or after it
    comp_first: datetime
    single: bool  # a service, or a host with one service
    hardness: float
    recall: float
    precision: float
    time_score: float
    signature: float
    covered_by: list[Change]

    @property
    def key(self) -> Key:
        return (
            round(self.recall + self.precision + self.hardness, 3),
            round(self.recall, 3),
            -LEVELS.index(self.level),
        )


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
    network, error_services = signals(incident)
    failure = _Failure(
        affected=affected,
        hard=hard,
        first=first,
        t0=min(first[s] for s in hard),
        slack=timedelta(seconds=FIRST_FAILURE_SLACK_S),
        network=network,
        error_services=error_services,
        host_down={o.service for o in incident.outages if HOST_CHECKS.match(o.check)},
        covering=covering,
        tz=zone(tz_fmt),
    )
    early = {s for s in hard if first[s] < failure.t0 + failure.slack}
    options = {(level, v) for s in early for level in LEVELS if (v := topo.value(s, level)) is not None}
    best: tuple[Key, Candidate] | None = None
    for level, value in sorted(options):
        score = _score(level, value, topo, failure)
        if score is None or (best is not None and score.key <= best[0]):
            continue
        best = (score.key, _candidate(score, topo, failure))
    out: list[Candidate] = [best[1]] if best else []
    return out + _alert_candidates(incident, changes, affected)


def _score(level: str, value: str, topo: Topology, f: _Failure) -> _Score | None:
    """The features of one component, or None when no affected service is under it."""
    members = topo.members(level, value) or ({value} if level == "service" else set())
    under = f.affected & members
    if not under:
        return None
    comp_first = min(f.first[s] for s in under)
    single = level == "service" or len(members) == 1  # a host with one service is that service
    if single:
        kind = (topo.attrs.get(next(iter(members))) or {}).get("kind") or ""
        hardness = 1.0 if members & f.host_down or kind.lower() in INFRA_KINDS else 0.3
    elif level == "datacenter":
        hardness = 0.5
    else:
        hardness = 1.0 if len(under & f.hard) >= 2 or under & f.host_down else 0.5
    # the app peers of a machine that went down, degrading with or after it, depend on it;
    # for a switch or a rack "same app" says nothing about the path the traffic took
    downstream = (
        {s for s in (f.affected - under) & topo.app_peers(under) if f.first[s] >= comp_first - f.slack / 2}
        if single and hardness == 1.0
        else set()
    )
    if f.network:
        signature = 1.0
    elif under & f.error_services and not under & f.host_down:
        signature = 0.0
    else:
        signature = 0.5
    return _Score(
        level=level,
        value=value,
        members=members,
        under=under,
        downstream=downstream,
        comp_first=comp_first,
        single=single,
        hardness=hardness,
        recall=_ratio(len(under | downstream), len(f.affected)),
        precision=0.5 if single else _ratio(len(under & f.hard), len(members)),
        time_score=1.0 if comp_first < f.t0 + f.slack else 0.5,
        signature=signature,
        covered_by=[m for m in f.covering if under <= set(m.resolved_services)],
    )


def _candidate(s: _Score, topo: Topology, f: _Failure) -> Candidate:
    name = s.value if s.level == "service" else f"{s.level} {s.value}"
    evidence_for, evidence_against = _evidence(s, name, topo, f)
    return Candidate(
        category="hosting",
        title=f"{name} failed",
        start=s.comp_first,
        end=None,
        component=s.value,
        component_level=s.level,
        features={
            "time": s.time_score,
            "recall": s.recall,
            "precision": s.precision,
            "signature": s.signature,
            "hard": s.hardness,
            "cancelled": 0.0,
            "covered": 1.0 if s.covered_by else 0.0,
        },
        evidence_for=evidence_for,
        evidence_against=evidence_against,
    )


def _evidence(s: _Score, name: str, topo: Topology, f: _Failure) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The sentences for and against one component, in the order a reader checks them."""
    pro: list[str] = []
    against: list[str] = []
    first_txt = f"{name} failed first, at {fmt_local(s.comp_first, f.tz.key)}"
    if s.level == "service" and topo.value(s.value, "host"):
        first_txt += f" (host {topo.value(s.value, 'host')})"
    pro.append(first_txt)
    if s.downstream:
        pro.append(f"{len(s.downstream)} other affected services of the same app depend on it")
    failed_hard = len(s.under & f.hard)
    if s.single:
        if s.hardness == 1.0:
            pro.append(
                "its reachability check failed: the machine itself was down"
                if s.members & f.host_down
                else "it is an infrastructure service"
            )
        else:
            against.append("only its application checks failed, not the machine")
    elif s.precision >= 0.5:
        pro.append(f"{failed_hard} of its {len(s.members)} services failed hard")
    else:
        against.append(f"only {failed_hard} of the {len(s.members)} services under it failed")
    missed = f.affected - (s.under | s.downstream)
    if missed:
        against.append(f"{len(missed)} affected services are neither under it nor downstream of it")
    if s.level == "datacenter":
        against.append("no single host, switch or rack failed before the others")
    if s.signature == 0.0:
        against.append("the error rate jumped: an application symptom rather than a machine failure")
    against += [f"it sits in the scope of {m.change_id}, whose window covers the onset" for m in s.covered_by]
    peers = _standby_peers(s.value, s.level, topo, f.affected) if s.hardness == 1.0 else set()
    if 1 <= len(peers) <= 3:  # a primary/standby pair or a small cluster
        pro.append(f"{', '.join(sorted(peers)[:3])} of the same app did not take over")
    if f.network and s.level in ("switch", "rack", "datacenter"):
        pro.append("network capacity dropped, consistent with a network component failure")
    return tuple(pro), tuple(against)


def _alert_candidates(incident: Incident, changes: Iterable[Change], affected: set[str]) -> list[Candidate]:
    """Infrastructure alerts raised before the onset (within the tolerance)."""
    out = []
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
