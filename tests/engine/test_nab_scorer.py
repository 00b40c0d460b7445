"""Our NAB scorer (benchmarks/nab.py) on hand-made cases."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("nab_bench", ROOT / "benchmarks" / "nab.py")
assert spec
assert spec.loader
nab = importlib.util.module_from_spec(spec)
sys.modules["nab_bench"] = nab
spec.loader.exec_module(nab)

STD = nab.Profile(tp=1.0, fp=0.11, fn=1.0)
LOW_FN = nab.Profile(tp=1.0, fp=0.11, fn=2.0)
# 100 rows: probation is rows 0..14; two windows
WINDOWS = [(20, 29), (60, 69)]


@pytest.mark.parametrize("p", [STD, LOW_FN])
def test_perfect_detector_scores_100_and_null_scores_0(p) -> None:
    perfect = nab.score_file(100, WINDOWS, [20, 60], p)
    assert perfect == pytest.approx(2 * p.tp)
    assert nab.normalised(perfect, 2, p) == pytest.approx(100)
    null = nab.score_file(100, WINDOWS, [], p)
    assert nab.normalised(null, 2, p) == pytest.approx(0)


def test_sigmoid_reward_and_penalties() -> None:
    assert nab.scaled_sigmoid(0) == 0
    assert nab.scaled_sigmoid(3.5) == -1
    # a detection at the last row of a window: y = -1/10
    late = nab.score_file(100, [(20, 29)], [29], STD)
    assert late == pytest.approx(nab.scaled_sigmoid(-0.1) / nab.scaled_sigmoid(-1.0))
    # only the first detection in a window counts
    assert nab.score_file(100, [(20, 29)], [20, 21, 25], STD) == pytest.approx(1.0)
    # a false positive before any window costs A_FP; probation rows are ignored
    assert nab.score_file(100, [(20, 29)], [5, 16, 20], STD) == pytest.approx(1.0 - 0.11)
    # a false positive after a window is weighted by its distance: y = (row - end) / (end - start)
    fp = nab.score_file(100, [(20, 29)], [20, 38], STD)
    assert fp == pytest.approx(1.0 + 0.11 * nab.scaled_sigmoid(1.0))
    assert math.isclose(nab.score_file(100, [(20, 29)], [20, 99], STD), 1.0 - 0.11)
