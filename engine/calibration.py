"""Are the scores calibrated?  Reliability table, expected calibration error, and the
``unknown`` threshold the outcomes support.

A score of 0.8 should be right about 80 % of the time.  Given outcomes of
questions with a known truth — for each, the score of the best candidate (the
synthetic ``unknown`` cause left aside) and whether that candidate *is* the
true cause — :func:`reliability` bins the scores and gives, per bin, how many
outcomes fell in it, their mean score and how often the top candidate was
right.  A question whose truth is ``unknown`` (nothing explains it) counts as a
miss at whatever score its best candidate had: that is what the ``unknown``
threshold exists to catch.  A question with no candidate at all has score 0.

:func:`expected_calibration_error` is ``Σ (n_b / N) · |hit_b − mean_score_b|``.

:func:`choose_threshold` reads the ``unknown`` threshold off the table:

    walking the bins from the top down, the threshold is the lower edge of the
    lowest *supported* bin (at least ``min_support`` outcomes) reached before
    the first supported bin whose hit rate is below ``target``; bins with fewer
    outcomes are passed over (too thin to say either way) and can never be the
    threshold themselves.  ``None`` when no supported bin passes.

Everything below the threshold would be answered ``unknown``.  Because thin bins
are passed over, a chosen threshold above the current one does not mean the
current one is wrong: :func:`contradicts` says whether a supported bin at or
above a given threshold actually fails.  The engine's threshold
(``rank.UNKNOWN_BELOW``) is never changed here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

#: default bin edges: wide below 0.4 (few answers land there), 0.1 wide above, and an
#: edge at 0.5 so that the current threshold can come out as it is
DEFAULT_EDGES = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: the top cause must be right at least this often above the threshold …
TARGET = 0.5
#: … in a bin of at least this many outcomes
MIN_SUPPORT = 5


@dataclass(frozen=True)
class Outcome:
    """One question with a known truth, as the ranking answered it."""

    name: str
    score: float  # the best candidate's score (0 when there was no candidate)
    correct: bool  # the best candidate is the true cause
    truth_unknown: bool = False  # the truth is "nothing explains it"


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float  # exclusive, except for the last bin
    count: int
    hits: int
    mean_score: float  # NaN-free: 0 when empty

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.count if self.count else None

    @property
    def label(self) -> str:
        return f"[{self.lo:.1f}, {self.hi:.1f}{']' if self.hi >= 1.0 else ')'}"


def outcome_of(
    name: str, ranked: Sequence[tuple[str, float, bool]], *, truth_unknown: bool = False
) -> Outcome:
    """The outcome of one answer given as ``(category, score, is_truth)`` triples, best first.

    Entries of category ``unknown`` (the synthetic "nothing fits" cause) are skipped: the
    score that matters is the best real candidate's.
    """
    real = [r for r in ranked if r[0] != "unknown"]
    if not real:
        return Outcome(name, 0.0, False, truth_unknown)
    best = max(real, key=lambda r: r[1])  # ranked lists are sorted; max() guards the others
    return Outcome(name, float(best[1]), bool(best[2]) and not truth_unknown, truth_unknown)


def _check_edges(edges: Sequence[float]) -> None:
    if (
        len(edges) < 2
        or edges[0] != 0.0
        or edges[-1] != 1.0
        or any(b <= a for a, b in itertools.pairwise(edges))
    ):
        raise ValueError(f"edges: expected increasing values from 0.0 to 1.0, found {tuple(edges)}")


def reliability(outcomes: Sequence[Outcome], edges: Sequence[float] = DEFAULT_EDGES) -> list[Bin]:
    """Outcomes per score bin ``[lo, hi)`` (the last one ``[lo, 1.0]``), with the top cause's hit rate."""
    _check_edges(edges)
    bins = []
    last = len(edges) - 2
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        inside = [o for o in outcomes if lo <= o.score < hi or (i == last and o.score == hi)]
        n = len(inside)
        bins.append(
            Bin(
                lo=lo,
                hi=hi,
                count=n,
                hits=sum(o.correct for o in inside),
                mean_score=sum(o.score for o in inside) / n if n else 0.0,
            )
        )
    return bins


def expected_calibration_error(bins: Sequence[Bin]) -> float:
    """``Σ (n_b / N) · |hit_b − mean_score_b|`` over the non-empty bins (0 when there is none)."""
    total = sum(b.count for b in bins)
    if not total:
        return 0.0
    return sum(b.count / total * abs(b.hits / b.count - b.mean_score) for b in bins if b.count)


def choose_threshold(
    bins: Sequence[Bin], *, target: float = TARGET, min_support: int = MIN_SUPPORT
) -> float | None:
    """The ``unknown`` threshold the table supports (the rule is in the module docstring)."""
    chosen = None
    for b in reversed(bins):
        if b.count < min_support:
            continue
        if b.hits / b.count < target:
            break
        chosen = b.lo
    return chosen


def contradicts(
    bins: Sequence[Bin], threshold: float, *, target: float = TARGET, min_support: int = MIN_SUPPORT
) -> list[Bin]:
    """The supported bins at or above ``threshold`` whose hit rate is below ``target``."""
    return [b for b in bins if b.lo >= threshold and b.count >= min_support and b.hits / b.count < target]


def top1_at(outcomes: Sequence[Outcome], threshold: float) -> int:
    """How many answers are right when the best candidate is shown only at ``threshold`` or above
    (``unknown`` otherwise): a shown candidate must be the truth, ``unknown`` must be the truth."""
    return sum((o.correct if o.score >= threshold else o.truth_unknown) for o in outcomes)


def format_report(
    outcomes: Sequence[Outcome],
    *,
    current: float,
    edges: Sequence[float] = DEFAULT_EDGES,
    target: float = TARGET,
    min_support: int = MIN_SUPPORT,
) -> list[str]:
    """The reliability table, ECE and threshold as printable lines (benchmark and docs)."""
    bins = reliability(outcomes, edges)
    n = len(outcomes)
    lines = [f"{'score bin':12} {'n':>4} {'mean score':>10} {'top right':>9} {'hit rate':>8}"]
    for b in bins:
        rate = f"{b.hits / b.count:.2f}" if b.count else "-"
        mean = f"{b.mean_score:.2f}" if b.count else "-"
        lines.append(f"{b.label:12} {b.count:>4} {mean:>10} {b.hits:>9} {rate:>8}")
    lines.append(f"{n} outcomes, expected calibration error {expected_calibration_error(bins):.3f}")
    chosen = choose_threshold(bins, target=target, min_support=min_support)
    rule = f"hit rate >= {target:.0%} in every bin of >= {min_support} outcomes from the threshold up"
    if chosen is None:
        lines.append(f"chosen unknown threshold: none ({rule}: no supported bin passes)")
        return lines
    lines.append(
        f"chosen unknown threshold: {chosen:.2f} ({rule}); "
        f"top-1 with unknown below it {top1_at(outcomes, chosen)}/{n}"
    )
    if abs(chosen - current) > 1e-9:
        bad = contradicts(bins, current, target=target, min_support=min_support)
        why = (
            "the data contradicts it: " + ", ".join(f"{b.label} right {b.hits}/{b.count}" for b in bad)
            if bad
            else "the data does not contradict it: the bins between are too thin to say"
        )
        lines.append(
            f"DIFFERS from rank.UNKNOWN_BELOW = {current:.2f} (top-1 {top1_at(outcomes, current)}/{n} "
            f"with it); {why}; the constant is left unchanged"
        )
    else:
        lines.append(f"same as rank.UNKNOWN_BELOW = {current:.2f}")
    return lines
