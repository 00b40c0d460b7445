"""The suspected origin of an incident that no change and no hard failure explains.

When the best cause is ``unknown`` (no release, no maintenance window, no
component down), a responder still needs to know *where* it started.  This
module ranks the components whose metrics moved by

* **onset order** — the component that deviated first;
* **size** — how far beyond its usual spread it went (robust z-score);
* **persistence** — whether it stayed away until the end of the window;
* **resource signature** — saturation of the component's *own* resources
  (CPU, memory, network, disk, pools) points at a fault there; latency and
  errors alone can be inherited from a dependency;
* **the call graph**, when one is known (the ``dependencies`` table:
  ``service`` depends on ``depends_on``): a component whose callees stayed
  healthy while its callers degraded after it is the origin; one whose
  callee degraded first is a victim.  ``reach`` is the share of the deviating
  components that are the candidate or (transitively) call it.

Each feature is in [0, 1]; the origin score is their weighted mean
(:data:`WEIGHTS`, without the graph features when no graph is known).  The
origins become causes (:func:`attach`): the top ``unknown`` cause gets the
best origin as its ``component`` (its score stays below 0.5: a suspicion,
not a confirmed cause); further origins follow as ``unknown`` causes with a
component, or as ``hosting`` causes when their own resources saturated.

The anomalies come from the incident (the detector's), or, when the detector
sees no incident — series sampled too sparsely for its one-minute grid, such
as 5-minute CloudWatch exports — from :mod:`whatchanged.engine.deviations`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property

import duckdb

from whatchanged.engine.candidates import fmt_duration
from whatchanged.engine.model import Anomaly, Cause
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.timeparse import fmt_local

#: metric name → what it says about the component that emits it (first match wins)
KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("errors", re.compile(r"error|5xx|fail|exception|fault|availab|success|timeout", re.I)),
    ("latency", re.compile(r"latency|duration|response|elapsed|_time|rtt", re.I)),
    (
        "saturation",
        re.compile(
            r"cpu|mem|heap|gc_|swap|disk|iops|iowait|io_wait|load|thread|conn|pool|saturat|throttl"
            r"|oom|net|bandwidth|bytes|packet|tcp|queue",
            re.I,
        ),
    ),
    ("traffic", re.compile(r"request|rps|qps|throughput|calls|invocation|count|rate", re.I)),
)
#: metrics whose bad direction is down (a drop of availability is the failure)
_DOWN_IS_BAD = re.compile(r"availab|success|uptime", re.I)

#: feature weights of the origin score (graph features only when a graph is known)
WEIGHTS: dict[str, float] = {
    "size": 1.0,
    "first": 1.0,
    "persistence": 0.5,
    "signature": 1.0,
    "callees_ok": 2.0,
    "reach": 2.0,
}
GRAPH_FEATURES = ("callees_ok", "reach")
#: metric kinds that make a component a suspect (a traffic change alone is a consequence)
SYMPTOMS = ("latency", "errors", "saturation")
#: a series counts as deviating beyond this robust z-score (median / MAD of its history)
THRESHOLD = 5.0
#: onset-order feature: a component deviating this long after the first scores 1/e
ONSET_DECAY_S = 600.0
#: how many origins become causes
LIMIT = 5
#: origin scores are shown scaled below this: a suspicion, never a confirmed cause
SCORE_CAP = 0.49


def metric_kind(metric: str) -> str:
    for kind, pattern in KINDS:
        if pattern.search(metric):
            return kind
    return "other"


def is_bad(a: Anomaly) -> bool:
    """Does the anomaly go the way that hurts (latency up, availability down…)?"""
    kind = metric_kind(a.metric)
    if kind == "errors":
        return a.direction == ("down" if _DOWN_IS_BAD.search(a.metric) else "up")
    if kind in ("latency", "saturation"):
        return a.direction == "up"
    return True


@dataclass(frozen=True)
class Graph:
    """The call graph: ``callees[s]`` are the services ``s`` depends on."""

    callees: Mapping[str, frozenset[str]]

    @property
    def known(self) -> bool:
        return bool(self.callees)

    @cached_property
    def _callers(self) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for service, callees in self.callees.items():
            for callee in callees:
                out.setdefault(callee, set()).add(service)
        return {k: frozenset(v) for k, v in out.items()}

    def callers(self, service: str) -> frozenset[str]:
        return self._callers.get(service, frozenset())

    def upstream(self, service: str) -> set[str]:
        """Every service that calls ``service``, directly or through others."""
        seen: set[str] = set()
        todo = [service]
        while todo:
            for caller in self.callers(todo.pop()):
                if caller not in seen:
                    seen.add(caller)
                    todo.append(caller)
        seen.discard(service)
        return seen

    def nodes(self) -> frozenset[str]:
        return frozenset(self.callees) | frozenset(self._callers)


def load_graph(con: Snapshot) -> Graph:
    """The ``dependencies`` view as a graph (empty when nothing was ingested)."""
    try:
        rows = con.execute("SELECT service, depends_on FROM dependencies").fetchall()
    except duckdb.CatalogException:
        return Graph({})
    out: dict[str, set[str]] = {}
    for service, callee in rows:
        out.setdefault(str(service), set()).add(str(callee))
    return Graph({k: frozenset(v) for k, v in out.items()})


@dataclass(frozen=True)
class Origin:
    """One suspected origin component, with its features and evidence."""

    component: str
    score: float
    resource_fault: bool
    onset: datetime
    features: dict[str, float]
    evidence_for: tuple[str, ...]
    evidence_against: tuple[str, ...]


def _persistence(a: Anomaly, horizon: datetime) -> float:
    if a.end is None:
        return 1.0
    span = (horizon - a.onset).total_seconds()
    return 1.0 if span <= 0 else max(0.0, min(1.0, (a.end - a.onset).total_seconds() / span))


def _num(x: float) -> str:
    return f"{x:.3g}"


def _names(items: Iterable[str], n: int = 3) -> str:
    items = sorted(items)
    head = ", ".join(items[:n])
    return head + (f" and {len(items) - n} more" if len(items) > n else "")


#: a component is no resource fault of its own when most other deviating components (at least
#: SHARED_MIN deviate, SHARED_SHARE of the others) saturated too or moved within SHARED_S of it:
#: a fleet-wide surge saturates everything, an origin's callers inherit latency and errors
SHARED_S = 300.0
SHARED_MIN = 4
SHARED_SHARE = 0.5


def rank_origins(
    anomalies: Sequence[Anomaly], graph: Graph, *, tz: str = "UTC", limit: int = LIMIT
) -> list[Origin]:
    """The components of ``anomalies``, most likely origin first."""
    bad = [a for a in anomalies if is_bad(a) and metric_kind(a.metric) in SYMPTOMS]
    if not bad:
        return []
    by_comp: dict[str, list[Anomaly]] = {}
    for a in bad:
        by_comp.setdefault(a.service, []).append(a)
    onset = {c: min(a.onset for a in xs) for c, xs in by_comp.items()}
    first = min(onset.values())
    horizon = max(max((a.end or a.onset) for a in bad), max(a.onset for a in bad))
    size = {c: max(math.log1p(abs(a.peak_score) / THRESHOLD) for a in xs) for c, xs in by_comp.items()}
    top_size = max(size.values()) or 1.0
    deviating = set(by_comp)
    saturating = {a.service for a in bad if metric_kind(a.metric) == "saturation"}
    use_graph = graph.known and bool(deviating & graph.nodes())
    weights = {k: w for k, w in WEIGHTS.items() if use_graph or k not in GRAPH_FEATURES}
    total_w = sum(weights.values())
    out: list[Origin] = []
    for comp, xs in by_comp.items():
        lead = max(xs, key=lambda a: abs(a.peak_score))
        kinds = {metric_kind(a.metric) for a in xs}
        saturated = sorted({a.metric for a in xs if metric_kind(a.metric) == "saturation"})
        lag = (onset[comp] - first).total_seconds()
        f = {
            "size": size[comp] / top_size,
            "first": math.exp(-lag / ONSET_DECAY_S),
            "persistence": max(_persistence(a, horizon) for a in xs),
            "signature": 1.0 if saturated else (0.5 if kinds & {"latency", "errors"} else 0.25),
        }
        pro = [
            f"{comp} deviated {'first' if lag <= 0 else fmt_duration(lag) + ' after the first'}, at "
            f"{fmt_local(onset[comp], tz)}: {lead.metric} {_num(lead.baseline)} → {_num(lead.observed)} "
            f"({abs(lead.peak_score):.0f}× its usual spread)"
        ]
        con_: list[str] = []
        if saturated:
            pro.append(
                f"its own resources saturated ({', '.join(saturated)}): a fault on the component itself"
            )
        else:
            con_.append("only latency, errors or traffic moved on it, no saturation of its own resources")
        if f["persistence"] >= 0.99:
            pro.append("it was still deviating at the end of the window")
        if use_graph:
            callees = graph.callees.get(comp, frozenset())
            sick = {c for c in callees if c in deviating}
            earlier = {c for c in sick if onset[c] < onset[comp]}
            same = sick - earlier
            if not sick:
                f["callees_ok"] = 1.0
                if callees:
                    pro.append(f"the {len(callees)} services it calls stayed healthy ({_names(callees)})")
                else:
                    pro.append("it calls no other known service")
            elif earlier:
                f["callees_ok"] = 0.0
                c0 = min(earlier, key=lambda c: onset[c])
                con_.append(
                    f"it calls {_names(earlier)}, which degraded first ({c0} at {fmt_local(onset[c0], tz)}): "
                    "it may have inherited the fault"
                )
            else:
                f["callees_ok"] = 0.25
                con_.append(f"it calls {_names(same)}, which degraded at the same time")
            up = graph.upstream(comp) & deviating
            f["reach"] = (len(up) + 1) / len(deviating)
            if up:
                late = {c for c in up if onset[c] >= onset[comp]}
                pro.append(
                    f"{len(up) + 1} of the {len(deviating)} deviating components are it or call it "
                    f"({len(late)} degraded at or after it)"
                )
            if comp not in graph.nodes():
                con_.append("it is not in the call graph")
        elif graph.known:
            con_.append("none of the deviating components is in the call graph")
        else:
            con_.append("no call graph known: ranked by onset order, size and signature only")
        others = {c for c in deviating if c != comp and onset[c] == onset[comp]}
        if others:
            con_.append(f"{len(others)} other components deviated at the same time")
        near = {
            c for c in deviating if c != comp and abs((onset[c] - onset[comp]).total_seconds()) <= SHARED_S
        }
        also_saturated = saturating - {comp}
        need = SHARED_SHARE * (len(deviating) - 1)
        shared = len(deviating) >= SHARED_MIN and (len(near) >= need or len(also_saturated) >= need)
        if shared and saturated:
            why = (
                f"{len(also_saturated)} of the other {len(deviating) - 1} deviating components saturated too"
                if len(also_saturated) >= need
                else f"{len(near)} of the other {len(deviating) - 1} deviating components moved within "
                f"{fmt_duration(SHARED_S)} of it"
            )
            con_.append(
                f"{why}: a cause they share (load, a common dependency) is more likely than a fault on it"
            )
        score = sum(w * f.get(k, 0.0) for k, w in weights.items()) / total_w
        out.append(
            Origin(
                component=comp,
                score=score,
                resource_fault=bool(saturated) and f.get("callees_ok", 1.0) > 0.0 and not shared,
                onset=onset[comp],
                features={k: round(v, 4) for k, v in f.items()},
                evidence_for=tuple(pro),
                evidence_against=tuple(con_),
            )
        )
    out.sort(key=lambda o: (-o.score, o.onset, o.component))
    return out[:limit]


def attach(causes: Sequence[Cause], origins: Sequence[Origin]) -> list[Cause]:
    """``causes`` (ranked, ``unknown`` on top) with the suspected origins named.

    The top ``unknown`` cause gets the best origin as its component (and that
    origin's evidence, and a score of at least the best candidate's, below 0.5); the
    next origins follow, among the other candidates by score.  A resource fault on
    top is reported as ``hosting``.
    """
    if not causes or causes[0].category != "unknown" or not origins:
        return list(causes)
    top, rest = causes[0], list(causes[1:])
    best = origins[0]
    head = replace(
        top,
        category="hosting" if best.resource_fault else "unknown",
        component=best.component,
        title=f"{'resource fault on' if best.resource_fault else 'suspected origin'} {best.component}",
        start=best.onset,
        score=round(min(SCORE_CAP, max(top.score, SCORE_CAP * best.score)), 4),
        evidence_for=(
            "no change, maintenance or hard failure explains the onset",
            *best.evidence_for,
        ),
        evidence_against=(*best.evidence_against, *top.evidence_for),
        features=best.features,
    )
    extra = [
        Cause(
            rank=0,
            category="hosting" if o.resource_fault else "unknown",
            change_id=None,
            component=o.component,
            title=f"{'resource fault on' if o.resource_fault else 'suspected origin'} {o.component}",
            start=o.onset,
            end=None,
            score=round(SCORE_CAP * o.score, 4),
            evidence_for=o.evidence_for,
            evidence_against=o.evidence_against,
            features=o.features,
        )
        for o in origins[1:]
    ]
    tail = sorted([*extra, *rest], key=lambda c: -c.score)  # stable: origins first on ties
    return [replace(c, rank=i) for i, c in enumerate([head, *tail], start=1)]
