"""Contextual anomaly score: the detector NAB scores and the fleet runs.

The median/MAD score ``z`` of :mod:`whatchanged.engine.detect` says how far a
point is from its expected *level*; it cannot see a change of *shape* (a
series that keeps its level but changes its rhythm) and, on spiky series, the
point that matters is often no larger than the spikes already seen.  This
detector adds a contextual score in the style of KNN-CAD (Burnaev & Ishimtsev
2016) and CAD OSE (Smirnov 2016): a point is anomalous when the *recent
pattern* ending at it looks like nothing in the series' past.

For each grid step ``t`` (all causal — only data up to ``t``):

* **novelty** ``a_t``: the distance from the context ``c_t`` (the last
  ``window`` values, missing steps carrying the last value) to the contexts
  ending ``L`` steps before, ``L`` in a fixed lag set (every ``stride``-th lag
  up to ``history``), one neighbour: the nearest of them; a context more than a
  third filled in, or holding a run of three missing steps, is not scored;
* **novelty ratio**: ``a_t`` over its recent maximum (``calibration`` steps
  before ``t - delay``), counted only when ``a_t`` is at least
  ``novelty_floor`` × the recent median and at least ``long_gate`` × the
  ``long_rank``-th largest block maximum of the last ``long_calibration``
  steps (its first ``gate_warmup`` steps left out) — or when the ratio is at
  least ``strong_ratio`` and ``a_t`` at least ``strong_gate`` × that reference;
* **coarse scales**: the same on the means of ``coarse`` and ``coarse2`` steps
  (all their lags), known at each block's last step and held until the next;
* **level ratio**: ``|z|`` over its recent maximum (``z_calibration``),
  counted when ``|z| >= z_min``, weighted by ``z_weight``;
* **variability ratio**: the mean step-to-step change over ``spread_window``
  steps (its largest left out) over its recent maximum, with its own floor
  (``spread_floor``) and long gate (``spread_long_gate``), weighted;
* **score**: the largest ratio plus ``second_weight`` × the second largest; an
  **alarm** at the first step with ``score >= threshold``, then none for
  ``rest`` steps after it and after the end of its anomaly (the first step
  with ``score < 1`` and ``|z| < exit_z``).  The onset is the change-point
  search of the median detector on ``x - E`` in the ``onset_back`` steps before.

Every recent maximum and median is taken over whole blocks of steps (50 blocks
of ``C // 50`` steps for a window of ``C``; the long reference over blocks of
``long_block``), so that a day's result needs only a few block summaries of
the days before.  The arithmetic is :mod:`whatchanged.engine.ctxstream`: arrays
``[series, step]`` folded chunk by chunk into a carried state, the same code for
one series (:func:`detect_series_combined`: ``whatchanged detect --input``,
``benchmarks/nab.py``) and for the fleet day by day
(:mod:`whatchanged.engine.ctxchain`, on 5-minute means).  Defaults were chosen
on NAB (docs/detection.md §2b).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.detect import DEFAULT, DetectParams, grid_series
from whatchanged.engine.model import Anomaly


@dataclass(frozen=True)
class ContextParams:
    """Contextual detector settings, in grid steps (defaults chosen on NAB, see docs/detection.md)."""

    window: int = 10
    neighbours: int = 1
    history: int = 3000
    #: the lags: every one from ``window`` to ``recent``, then every ``stride``-th up to ``history``
    recent: int = 10
    stride: int = 10
    #: the coarse scales' lags (in their own steps) and neighbours
    coarse_recent: int = 3000
    coarse_stride: int = 0
    coarse_neighbours: int = 1
    calibration: int = 400
    delay: int = 5
    z_calibration: int = 3500
    #: the novelty must also be at least this many times its median over the calibration window
    novelty_floor: float = 3.0
    #: ... and at least ``long_gate`` × the long reference (below), unless its ratio is at least
    #: ``strong_ratio`` and it is at least ``strong_gate`` × that reference
    long_gate: float = 1.2
    #: the long gate's reference: the ``long_rank``-th largest of the ``long_block``-step block
    #: maxima of the last ``long_calibration`` steps, the first ``gate_warmup`` steps left out
    long_rank: int = 7
    long_block: int = 12
    gate_warmup: int = 250
    #: a short-term record of at least ``strong_ratio`` passes at ``strong_gate`` × that reference
    strong_gate: float = 0.4
    strong_ratio: float = 3.5
    long_calibration: int = 6000
    #: weight of the novelty at the grid's own step (0: off — the costly part, 300 lags a point)
    fine_weight: float = 0.9
    #: coarse scale: the same novelty on means of ``coarse`` steps (0: off), weighted
    coarse: int = 5
    coarse_weight: float = 0.9
    #: a third, coarser scale (0: off)
    coarse2: int = 24
    coarse2_weight: float = 1.0
    z_min: float = 5.0
    z_weight: float = 0.9
    #: variability: the mean absolute step-to-step change over ``spread_window`` steps (its
    #: largest left out), as a ratio to its recent maximum (same calibration and delay as the
    #: novelty), weighted
    spread_window: int = 24
    spread_weight: float = 0.8
    #: the variability's own floor (× its median) and long gate (× its long maximum)
    spread_floor: float = 3.0
    spread_long_gate: float = 1.0
    #: the score is the largest ratio plus ``second_weight`` × the second largest (two scores
    #: that agree count for more than one alone)
    second_weight: float = 0.2
    threshold: float = 1.05
    rest: int = 100
    #: no alarm before this many novelty scores exist (warm-up)
    warmup: int = 200
    exit_z: float = 3.0
    onset_back: int = 60


CONTEXT_DEFAULT = ContextParams()


def detect_series_combined(
    ts: Sequence[Any] | NDArray[Any],
    values: Sequence[float] | NDArray[np.float64],
    *,
    params: ContextParams = CONTEXT_DEFAULT,
    base: DetectParams = DEFAULT,
    service: str = "series",
    metric: str = "value",
) -> list[Anomaly]:
    """Online alarms of one series: contextual novelty combined with the median baseline score.

    One :class:`Anomaly` per alarm, in time order; ``detected_at`` is the step of
    the alarm, the onset is found with data up to it only (``onset_lookahead`` is
    always False).  ``peak_score`` is the peak ``|z|`` of the baseline score.
    """
    from whatchanged.engine.ctxstream import score_series

    grid, origin, step_us = grid_series(ts, values)
    if grid.size < 3:
        return []
    g0 = origin // step_us
    chunk = score_series(grid, g0, step_us / 1e6, params, base)

    def at(step: int) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=origin + (step - g0) * step_us)

    return [
        Anomaly(
            service=service,
            metric=metric,
            start=at(e.onset),
            onset=at(e.onset),
            end=None if e.end is None else at(e.end),
            direction="up" if e.up else "down",
            peak_score=e.peak,
            baseline=e.baseline,
            observed=e.observed,
            detected_at=at(e.alarm),
            onset_lookahead=False,
        )
        for e in chunk.events
    ]
