"""Learning the ranking weights from responders' verdicts, safely.

A verdict (``POST /api/v1/incidents/{id}/feedback``, stored in the ``feedback``
table) names the change that caused an incident, or only its class.  It becomes
a :class:`Case`: the incident's candidates recomputed with their features, as
``explain`` does, and which of them is the cause —

* with a ``cause_change_id``: the candidate of that change (an aliased id such
  as ``ovh:FS#4321`` matches ``FS#4321``);
* with only a ``category``: the best candidate of that class under the default
  weights; ``unknown``: none of them (every candidate is a negative);
* a verdict that matches no candidate is skipped, with the reason.

The latest verdict on an incident wins (a responder correcting an earlier one).

A case labels every candidate (:meth:`Case.labelled`) for :func:`rank.fit
<whatchanged.engine.rank.fit>`, and can be answered again under any weights
(:meth:`Case.rank_under`, through :func:`rank.rank
<whatchanged.engine.rank.rank>` itself, ``unknown`` threshold included), so
that a backtest compares weights without running detection again:

* :func:`time_split` — fit on the older verdicts, measure top-1 on the newer;
* :func:`score` — top-1 / top-3 of a model over cases (the scenario suite's, say);
* :func:`verdict` — save only if nothing got worse;
* :func:`backtest` — all of it, for ``whatchanged fit --from-feedback``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from whatchanged.engine.calibration import Outcome
from whatchanged.engine.candidates import Candidate
from whatchanged.engine.errors import NotFoundError
from whatchanged.engine.model import Cause, Change
from whatchanged.engine.rank import DEFAULT_MODEL, FEATURES, Labelled, RankModel, rank
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot

#: a cause's identity among the candidates of one incident
Key = tuple[str, str | None, str | None, str]


def key_of(c: Cause) -> Key:
    return (c.category, c.change_id, c.component, c.title)


@dataclass(frozen=True)
class Verdict:
    """One row of the ``feedback`` table."""

    feedback_id: str
    incident_id: str
    cause_change_id: str | None
    category: str | None
    created: datetime


@dataclass(frozen=True)
class Case:
    """One incident with a known cause: its candidates (features kept) and which is the cause."""

    name: str
    causes: tuple[Cause, ...]  # the real candidates, ``unknown`` left out
    truth: Key | None  # None: nothing explains it (the truth is ``unknown``), or no candidate matched
    truth_unknown: bool = False
    created: datetime | None = None

    def labelled(self) -> list[Labelled]:
        return [Labelled(c.category, dict(c.features), key_of(c) == self.truth) for c in self.causes]

    def rank_under(self, model: RankModel) -> list[Cause]:
        """The causes as :func:`rank` orders them under ``model`` (``unknown`` first when nothing fits)."""
        return rank([_as_candidate(c) for c in self.causes], model)

    def rank_of_truth(self, model: RankModel) -> int | None:
        """1-based rank of the true cause under ``model`` (``unknown`` counts when it is the truth)."""
        for i, c in enumerate(self.rank_under(model), start=1):
            if (c.category == "unknown" and self.truth_unknown) or (
                c.category != "unknown" and self.truth is not None and key_of(c) == self.truth
            ):
                return i
        return None

    def outcome(self, model: RankModel) -> Outcome:
        """The calibration outcome under ``model``: best candidate's score, and whether it is the cause."""
        real = [c for c in self.rank_under(model) if c.category != "unknown"]
        if not real:
            return Outcome(self.name, 0.0, False, self.truth_unknown)
        return Outcome(self.name, real[0].score, key_of(real[0]) == self.truth, self.truth_unknown)


def _as_candidate(c: Cause) -> Candidate:
    start = c.start or datetime.fromtimestamp(0, UTC)
    change = Change(change_id=c.change_id, kind="", start=start, end=c.end) if c.change_id else None
    return Candidate(
        category=c.category,
        title=c.title,
        start=c.start,
        end=c.end,
        change=change,
        component=c.component,
        features=dict(c.features),
        evidence_for=c.evidence_for,
        evidence_against=c.evidence_against,
    )


def same_change(stored: str | None, named: str) -> bool:
    """``named`` is the change ``stored`` (exactly, or as the id after a provider prefix)."""
    return stored is not None and (
        stored == named or stored.endswith(":" + named) or named.endswith(":" + stored)
    )


def case_of(name: str, causes: Sequence[Cause], verdict: Verdict) -> Case | str:
    """The case a verdict makes of an incident's ranked causes, or why it cannot be used."""
    real = tuple(c for c in causes if c.category != "unknown")
    if verdict.cause_change_id:
        hit = next((c for c in real if same_change(c.change_id, verdict.cause_change_id)), None)
        if hit is None:
            return (
                f"{name}: the verdict names {verdict.cause_change_id}, which is not among its "
                f"{len(real)} candidates"
            )
        return Case(name, real, key_of(hit), created=verdict.created)
    if verdict.category == "unknown":
        return Case(name, real, None, truth_unknown=True, created=verdict.created)
    best = next((c for c in real if c.category == verdict.category), None)  # causes come best first
    if best is None:
        return f"{name}: the verdict says {verdict.category}, and no candidate is of that class"
    return Case(name, real, key_of(best), created=verdict.created)


def load_verdicts(con: Snapshot) -> list[Verdict]:
    """The latest verdict per incident, oldest first."""
    rows = con.execute(
        "SELECT feedback_id, incident_id, cause_change_id, category, created FROM feedback "
        "QUALIFY row_number() OVER (PARTITION BY incident_id ORDER BY created DESC, feedback_id DESC) = 1 "
        "ORDER BY created, feedback_id"
    ).fetchall()
    return [Verdict(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def cases_from_feedback(con: Snapshot, *, settings: Settings) -> tuple[list[Case], list[str]]:
    """Every usable verdict as a case (oldest first), and why the others were skipped."""
    from whatchanged.engine.explain import explain_incident
    from whatchanged.engine.incidents import get_incident

    cases: list[Case] = []
    skipped: list[str] = []
    for v in load_verdicts(con):
        try:
            incident = get_incident(con, v.incident_id)
        except NotFoundError as exc:
            skipped.append(str(exc))
            continue
        causes = explain_incident(con, incident, settings=settings, model=DEFAULT_MODEL).causes
        made = case_of(v.incident_id, causes, v)
        if isinstance(made, str):
            skipped.append(made)
        else:
            cases.append(made)
    return cases, skipped


# -- backtests --------------------------------------------------------------------------------


#: how strongly the fitted weights are held to the prior (the weights in use): an L2 penalty
#: ``STRENGTH/2 · ‖w − w_prior‖²`` per class, bias included
STRENGTH = 1.0


def fit_towards(examples: Sequence[Labelled], prior: RankModel, *, strength: float = STRENGTH) -> RankModel:
    """Per-class logistic weights fitted by Newton's method, regularised towards ``prior``.

    :func:`rank.fit <whatchanged.engine.rank.fit>` shrinks towards zero (scikit-learn's L2):
    on a handful of verdicts that forgets what the default weights know, and a class needs
    both a cause and a non-cause to be fitted at all.  Shrinking towards the weights in use
    instead, a few verdicts move them a little and many move them far; a class with only
    non-causes (an ``unknown`` verdict) is fitted too.  Classes without examples keep the prior.
    """
    import numpy as np

    if strength <= 0:
        raise ValueError(f"strength: expected a positive number, found {strength}")
    names = ("bias", *FEATURES)
    weights = {cat: dict(w) for cat, w in prior.weights.items()}
    for cat in sorted({e.category for e in examples}):
        rows = [e for e in examples if e.category == cat]
        x = np.array([[1.0, *(e.features.get(k, 0.0) for k in FEATURES)] for e in rows])
        y = np.array([float(e.is_cause) for e in rows])
        w0 = np.array([prior.weights.get(cat, {}).get(k, 0.0) for k in names])
        w = w0.copy()
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-(x @ w)))
            grad = x.T @ (p - y) + strength * (w - w0)
            hess = (x.T * (p * (1.0 - p))) @ x + strength * np.eye(len(names))
            step = np.linalg.solve(hess, grad)
            w -= step
            if float(np.max(np.abs(step))) < 1e-9:
                break
        weights[cat] = {k: float(v) for k, v in zip(names, w, strict=True)}
    return RankModel(weights, source="fitted", fitted_at=datetime.now(UTC).isoformat(timespec="seconds"))


def fit_cases(cases: Sequence[Case], prior: RankModel = DEFAULT_MODEL) -> RankModel:
    return fit_towards([lab for c in cases for lab in c.labelled()], prior)


@dataclass(frozen=True)
class Score:
    """Top-1 and top-3 of one model over some cases."""

    n: int
    top1: int
    top3: int

    def text(self, *, top3: bool = True) -> str:
        out = f"top-1 {self.top1}/{self.n}"
        return out + (f", top-3 {self.top3}/{self.n}" if top3 else "")


def score(cases: Sequence[Case], model: RankModel) -> Score:
    ranks = [c.rank_of_truth(model) for c in cases]
    return Score(len(cases), sum(r == 1 for r in ranks), sum(r is not None and r <= 3 for r in ranks))


@dataclass(frozen=True)
class TimeSplit:
    """Fit on the older verdicts, measure on the newer."""

    train: int
    test: int
    before: Score
    after: Score
    cut: datetime | None  # created time of the first held-out verdict


def time_split(cases: Sequence[Case], current: RankModel, *, holdout: float) -> TimeSplit | None:
    """``None`` when there are too few cases to hold any out (fewer than 2)."""
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout: expected a fraction in (0, 1), found {holdout}")
    ordered = sorted(cases, key=lambda c: (c.created or datetime.min.replace(tzinfo=UTC), c.name))
    if len(ordered) < 2:
        return None
    n_test = min(len(ordered) - 1, max(1, math.ceil(len(ordered) * holdout)))
    train, test = ordered[:-n_test], ordered[-n_test:]
    fitted = fit_cases(train, current)
    return TimeSplit(len(train), len(test), score(test, current), score(test, fitted), test[0].created)


@dataclass(frozen=True)
class Decision:
    save: bool
    reasons: list[str] = field(default_factory=list)  # what got worse


def verdict(split: TimeSplit | None, suite_before: Score | None, suite_after: Score | None) -> Decision:
    """Save only if nothing got worse: newer verdicts' top-1, the suite's top-1 and top-3."""
    worse = []
    if split is not None and split.after.top1 < split.before.top1:
        worse.append(
            f"newer verdicts top-1 {split.before.top1}/{split.test} -> {split.after.top1}/{split.test}"
        )
    if suite_before is not None and suite_after is not None:
        n = suite_before.n
        if suite_after.top1 < suite_before.top1:
            worse.append(f"scenario suite top-1 {suite_before.top1}/{n} -> {suite_after.top1}/{n}")
        if suite_after.top3 < suite_before.top3:
            worse.append(f"scenario suite top-3 {suite_before.top3}/{n} -> {suite_after.top3}/{n}")
    return Decision(not worse, worse)


@dataclass(frozen=True)
class Backtest:
    """Weights fitted on every case, compared with the weights in use; :attr:`decision` says
    whether saving them is safe."""

    fitted: RankModel
    current: RankModel
    split: TimeSplit | None
    suite_before: Score | None
    suite_after: Score | None
    decision: Decision


def backtest(
    cases: Sequence[Case], current: RankModel, *, holdout: float, suite: Sequence[Case] | None
) -> Backtest:
    """Fit on ``cases`` (held to ``current``), backtest on a time split and on ``suite`` (if any)."""
    split = time_split(cases, current, holdout=holdout)
    fitted = fit_cases(cases, current)
    before = score(suite, current) if suite is not None else None
    after = score(suite, fitted) if suite is not None else None
    return Backtest(fitted, current, split, before, after, verdict(split, before, after))


# -- cases as JSON (the scenario suite's are cached between runs) ------------------------------


def case_to_dict(c: Case) -> dict[str, Any]:
    return {
        "name": c.name,
        "causes": [x.to_dict() for x in c.causes],
        "truth": list(c.truth) if c.truth else None,
        "truth_unknown": c.truth_unknown,
        "created": c.created.isoformat() if c.created else None,
    }


def case_from_dict(d: dict[str, Any]) -> Case:
    def when(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    causes = tuple(
        Cause(
            rank=x["rank"],
            category=x["category"],
            change_id=x["change_id"],
            component=x["component"],
            title=x["title"],
            start=when(x["start"]),
            end=when(x["end"]),
            score=x["score"],
            evidence_for=tuple(x["evidence_for"]),
            evidence_against=tuple(x["evidence_against"]),
            features={k: float(v) for k, v in x["features"].items()},
        )
        for x in d["causes"]
    )
    t = d["truth"]
    truth: Key | None = (t[0], t[1], t[2], t[3]) if t else None
    return Case(d["name"], causes, truth, bool(d["truth_unknown"]), when(d["created"]))
