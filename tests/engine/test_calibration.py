"""Reliability table, calibration error and the ``unknown`` threshold on hand-made outcomes."""

from __future__ import annotations

import pytest

from whatchanged.engine.calibration import (
    Outcome,
    choose_threshold,
    contradicts,
    expected_calibration_error,
    format_report,
    outcome_of,
    reliability,
    top1_at,
)

EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)


def _many(score: float, hits: int, misses: int) -> list[Outcome]:
    return [Outcome(f"h{score}-{i}", score, True) for i in range(hits)] + [
        Outcome(f"m{score}-{i}", score, False) for i in range(misses)
    ]


def test_bins_are_half_open_and_the_last_holds_one() -> None:
    outs = [
        Outcome("a", 0.0, False),
        Outcome("b", 0.2, True),
        Outcome("c", 0.9, True),
        Outcome("d", 1.0, True),
    ]
    bins = reliability(outs, EDGES)
    assert [(b.lo, b.hi, b.count, b.hits) for b in bins] == [
        (0.0, 0.2, 1, 0),
        (0.2, 0.4, 1, 1),
        (0.4, 0.6, 0, 0),
        (0.6, 0.8, 0, 0),
        (0.8, 0.9, 0, 0),
        (0.9, 1.0, 2, 2),
    ]
    assert bins[-1].label == "[0.9, 1.0]"
    assert bins[0].label == "[0.0, 0.2)"
    assert bins[2].hit_rate is None
    assert bins[-1].mean_score == pytest.approx(0.95)


def test_expected_calibration_error() -> None:
    # 10 at 0.95 all right (gap 0.05), 10 at 0.3 with 5 right (gap 0.2): (10·0.05 + 10·0.2) / 20
    bins = reliability(_many(0.95, 10, 0) + _many(0.3, 5, 5), EDGES)
    assert expected_calibration_error(bins) == pytest.approx(0.125)
    assert expected_calibration_error(reliability([], EDGES)) == 0.0
    perfect = reliability(_many(0.5, 5, 5), EDGES)
    assert expected_calibration_error(perfect) == pytest.approx(0.0)


def test_threshold_is_the_lowest_supported_passing_bin_above_the_first_failure() -> None:
    outs = _many(0.95, 9, 1) + _many(0.85, 4, 1) + _many(0.7, 3, 2) + _many(0.5, 1, 4) + _many(0.1, 0, 6)
    bins = reliability(outs, EDGES)
    assert choose_threshold(bins, target=0.5, min_support=5) == 0.6
    # a stricter target stops higher: [0.6, 0.8) is right 3/5 only
    assert choose_threshold(bins, target=0.7, min_support=5) == 0.8
    assert [b.label for b in contradicts(bins, 0.4, target=0.5, min_support=5)] == ["[0.4, 0.6)"]
    assert contradicts(bins, 0.6, target=0.5, min_support=5) == []


def test_thin_bins_are_passed_over_and_never_chosen() -> None:
    # [0.4, 0.6) has 2 outcomes, both wrong: too thin to stop the walk, too thin to be the threshold
    outs = _many(0.95, 6, 0) + _many(0.5, 0, 2) + _many(0.3, 4, 1)
    bins = reliability(outs, EDGES)
    assert choose_threshold(bins, min_support=5) == 0.2
    assert choose_threshold(bins, min_support=7) is None  # no bin has 7


def test_no_threshold_when_the_top_bin_fails() -> None:
    assert choose_threshold(reliability(_many(0.95, 1, 5), EDGES), min_support=5) is None


def test_unknown_truths_are_misses_and_right_below_the_threshold() -> None:
    outs = [
        outcome_of("rel", [("application_release", 0.97, True), ("hosting", 0.1, False)]),
        outcome_of("nothing", [("unknown", 0.3, False), ("hosting", 0.31, False)], truth_unknown=True),
        outcome_of("empty", [], truth_unknown=True),
        outcome_of("wrong", [("hosting", 0.8, False), ("application_release", 0.6, True)]),
    ]
    assert [(o.score, o.correct) for o in outs] == [(0.97, True), (0.31, False), (0.0, False), (0.8, False)]
    assert top1_at(outs, 0.5) == 3  # rel, nothing, empty
    assert top1_at(outs, 0.9) == 3
    assert top1_at(outs, 0.0) == 1


def test_report_says_when_the_threshold_differs_from_the_engine() -> None:
    outs = _many(0.95, 9, 1) + _many(0.7, 1, 4)
    lines = format_report(outs, current=0.5, edges=EDGES, min_support=5)
    assert "chosen unknown threshold: 0.80" not in "\n".join(lines)
    text = "\n".join(lines)
    assert "chosen unknown threshold: 0.90" in text
    assert "DIFFERS from rank.UNKNOWN_BELOW = 0.50" in text
    assert "[0.6, 0.8) right 1/5" in text
    same = "\n".join(format_report(_many(0.95, 9, 1), current=0.9, edges=EDGES, min_support=5))
    assert "same as rank.UNKNOWN_BELOW = 0.90" in same


def test_bad_edges_are_refused() -> None:
    with pytest.raises(ValueError, match=r"edges: expected increasing values from 0\.0 to 1\.0"):
        reliability([], (0.0, 0.5, 0.4, 1.0))
