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
from collections.abc import Iterable
from datetime import datetime, timedelta

from whatchanged.engine.candidates_common import (
    CATEGORIES,
    EARLY_DECAY_S,
    FIRST_FAILURE_SLACK_S,
    HOST_CHECKS,
    IN_PROGRESS_GRACE_S,
    INFRA_KINDS,
    LEVELS,
    MAINTENANCE_KINDS,
    ONSET_TOLERANCE_S,
    OVERRUN_DECAY_S,
    REACTION_KINDS,
    RELEASE_KINDS,
    RELEASE_PLATEAU_S,
    Candidate,
    Topology,
    _ratio,
    first_failures,
    fmt_duration,
    hard_failed,
    signals,
)
from whatchanged.engine.hosting import hosting_candidates
from whatchanged.engine.model import CauseCategory, Change, Incident
from whatchanged.engine.timeparse import fmt_local

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


def _from_change(
    category: CauseCategory, ch: Change, pro: list[str], against: list[str], **features: float
) -> Candidate:
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
        evidence_against=tuple(against),
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
        against: list[str] = []
        when = fmt_local(ch.start, tz_fmt)
        if lead >= 0:
            pro.append(f"released at {when}, {fmt_duration(lead)} before the onset")
        else:
            pro.append(f"logged at {when}, {fmt_duration(-lead)} after the onset (within the tolerance)")
        if not scope:
            against.append("its scope names no service of the inventory")
        elif hit:
            pro.append(f"{len(hit)} of the {len(affected)} affected services got this release")
            if precision < 0.5:
                against.append(
                    f"it reached {len(scope)} services and only {len(hit)} of them are affected "
                    f"({len(scope) - len(hit)} unaffected services got the same release)"
                )
        else:
            against.append(f"it reached {len(scope)} services, none of which is affected")
        if signature == 1.0:
            pro.append("the error rate jumped on services of the released app")
        elif signature == 0.2:
            against.append("the signature is a network capacity drop, not an application error")
        out.append(
            _from_change(
                "application_release",
                ch,
                pro,
                against,
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
        window = f"{fmt_local(ch.start, tz_fmt)}–" + (fmt_local(ch.end, tz_fmt) if ch.end else "open")
        onset = fmt_local(incident.onset, tz_fmt)
        what = _scope_words(ch)
        pro: list[str] = []
        against: list[str] = []
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
            against.append(
                f"{label} window {window} ended {fmt_duration((incident.onset - ch.end).total_seconds())}"
                f" before the onset at {onset}"
            )
            pro.append("maintenance often overruns its announced end")
        else:
            against.append(
                f"{label} window {window} starts {fmt_duration((ch.start - incident.onset).total_seconds())}"
                f" after the onset at {onset}"
            )
        if hit:
            where = _where(hit, topo)
            pro.append(f"{len(hit)} of {len(affected)} affected services sit in its scope{where}")
            missed = affected - scope
            if missed:
                against.append(f"{len(missed)} affected services are outside its scope")
        elif scope:
            against.append(f"its scope ({len(scope)} services) contains none of the affected services")
        else:
            against.append("its scope could not be matched to the inventory")
        if network:
            pro.append("network capacity dropped, the signature of network work")
        if ch.cancelled:
            against.append("the notice was cancelled")
        out.append(
            _from_change(
                "external_maintenance",
                ch,
                pro,
                against,
                time=time_score,
                recall=recall,
                precision=precision,
                signature=signature,
                cancelled=1.0 if ch.cancelled else 0.0,
            )
        )
    return out


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


#: this module's names, with those of the modules it was split into (one import for callers)
__all__ = [
    "CATEGORIES",
    "EARLY_DECAY_S",
    "FIRST_FAILURE_SLACK_S",
    "HOST_CHECKS",
    "INFRA_KINDS",
    "IN_PROGRESS_GRACE_S",
    "LEVELS",
    "MAINTENANCE_KINDS",
    "ONSET_TOLERANCE_S",
    "OVERRUN_DECAY_S",
    "REACTION_KINDS",
    "RELEASE_KINDS",
    "RELEASE_PLATEAU_S",
    "Candidate",
    "Topology",
    "extended_over",
    "first_failures",
    "fmt_duration",
    "hard_failed",
    "hosting_candidates",
    "maintenance_candidates",
    "maintenance_time_score",
    "reactions",
    "release_candidates",
    "release_time_score",
    "signals",
]
