"""Contextual anomaly score for single series (CLI ``detect``, NAB).

The median/MAD score ``z`` of :mod:`whatchanged.engine.detect` says how far a
point is from its expected *level*; it cannot see a change of *shape* (a
series that keeps its level but changes its rhythm) and, on spiky series, the
point that matters is often no larger than the spikes already seen.  This
module adds a contextual score in the style of KNN-CAD (Burnaev & Ishimtsev
2016) and CAD OSE (Smirnov 2016): a point is anomalous when the *recent
pattern* ending at it looks like nothing in the series' recent past.

For each grid step ``t`` (all causal — only data up to ``t``):

* **context** ``c_t``: the last ``window`` values (missing steps carry the
  last value forward; a context more than a third filled in, or holding a gap
  of three steps or more, gets no score);
* **novelty** ``a_t``: the mean Euclidean distance from ``c_t`` to its
  ``neighbours`` nearest contexts among those ending in
  ``[t - history, t - window]`` (contexts that do not overlap ``c_t``);
* **novelty ratio** ``a_t / max(a_s, t - delay - calibration < s <= t - delay)``:
  how far the novelty beats the largest novelty of the recent past (a
  scale-free, self-calibrating score: a series that is always irregular
  raises its own bar),
  counted only when ``a_t >= novelty_floor ×`` the median novelty of the same
  steps (a record among near-equal values of pure noise is no alarm) and
  ``a_t >= long_gate ×`` the largest novelty of the last ``long_calibration``
  steps (a series that has shown much larger novelties does not alarm on
  every new short-term record) — unless the ratio is ``>= strong_ratio``;
* **coarse scale**: the same novelty, ratio and gates on the means of
  ``coarse`` steps (slower changes of pattern), known at each block's last step;
* **level ratio**: the same with the robust ``|z|`` of the median baseline
  (:mod:`whatchanged.engine.baseline`) over ``z_calibration`` steps, counted
  only when ``|z| >= z_min`` and weighted by ``z_weight``;
* **variability ratio**: the same ratio and gates on the mean absolute
  step-to-step change over ``spread_window`` steps, its largest change left out
  (:func:`variability`: a series that starts flapping at the same level and
  within its usual range), weighted by ``spread_weight``;
* **score** = the largest of the four ratios plus ``second_weight`` × the second
  largest.  An **alarm** is raised at the first step with ``score >= threshold``;
  then the series rests for ``rest`` steps after the alarm and after the end of
  its anomaly (no second alarm while it goes on, nor for its end).

Each alarm is returned as an :class:`~whatchanged.engine.model.Anomaly`:
``detected_at`` is the alarm's step; the **onset** is the change-point
search of :mod:`whatchanged.engine.detect` (step or hinge) on the residuals
``x - E`` in the ``onset_back`` steps up to it (data up to the alarm only);
the anomaly lasts while the score stays ``>= 1`` or ``|z| >= exit_z``.

Defaults were chosen on NAB (``benchmarks/nab.py``, docs/detection.md).  Cost:
``O(history × window)`` per point (block matrix products and a partial sort of
the distances), about 0.2 ms per point against ~1 µs for the median detector —
the reason it runs on single series only, not (yet) in the fleet pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import Array, nanmedian_last
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
    #: ... and at least ``long_gate`` × its maximum over the last ``long_calibration`` steps,
    #: unless its ratio is at least ``strong_ratio`` (a large short-term record always counts)
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
    #: weight of the novelty at the grid's own step (0: off — the costly part, ~30 ms per
    #: series and day of 1-minute data; ``benchmarks/nab.py --set fine_weight=0`` scores it)
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
    #: largest left out), as a ratio to its recent maximum (same calibration, delay and gates as the novelty), weighted
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


def forward_fill(x: Array) -> Array:
    """Missing values carry the last seen value (leading gaps: the first value seen, else 0)."""
    ok = ~np.isnan(x)
    if not ok.any():
        return np.zeros_like(x)
    idx = np.where(ok, np.arange(x.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    out[: int(np.argmax(ok))] = x[int(np.argmax(ok))]
    return out


def novelty(x: Array, *, window: int, neighbours: int, history: int, block: int = 512) -> Array:
    """``a_t``: mean distance of the context ending at ``t`` to its nearest past contexts.

    Causal: the context ending at ``t`` is compared with contexts ending in
    ``[t - history, t - window]``.  NaN until ``neighbours`` such contexts exist.
    Computed in blocks of ``block`` queries with one matrix product each.
    """
    n = x.size
    out = np.full(n, np.nan)
    if n < window:
        return out
    v = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), window)  # row j ends at j+window-1
    # centre on the series' first context so that squared norms stay small (better precision)
    v = v - v[0].mean()
    m = v.shape[0]
    sq = np.einsum("ij,ij->i", v, v)
    skip = window
    for q0 in range(0, m, block):
        q1 = min(m, q0 + block)
        r0, r1 = max(0, q0 - history), q1 - skip
        if r1 <= r0:
            continue
        d2 = sq[q0:q1, None] + sq[None, r0:r1] - 2.0 * (v[q0:q1] @ v[r0:r1].T)
        qi = np.arange(q0, q1)[:, None]
        ri = np.arange(r0, r1)[None, :]
        ok = (ri <= qi - skip) & (ri >= qi - history)
        d2 = np.where(ok, np.maximum(d2, 0.0), np.inf)
        k = min(neighbours, d2.shape[1])
        near = np.partition(d2, k - 1, axis=1)[:, :k]
        with np.errstate(invalid="ignore"):
            score = np.sqrt(near).mean(axis=1)
        score[ok.sum(axis=1) < neighbours] = np.nan
        out[q0 + window - 1 : q1 + window - 1] = score
    return out


def past_max_ratio(a: Array, calibration: int, delay: int, warmup: int = 1) -> Array:
    """``a_t / max(a_s : t - delay - calibration < s <= t - delay)`` (NaN in ``a`` ignored).

    NaN while fewer than ``warmup`` finite values precede ``t - delay``; ``inf`` when the
    reference maximum is 0 and ``a_t > 0``.
    """
    n = a.size
    out = np.full(n, np.nan)
    if n <= delay:
        return out
    finite = np.isfinite(a)
    aa = np.where(finite, a, 0.0)
    pad = np.concatenate([np.zeros(calibration - 1), aa])
    mx = np.lib.stride_tricks.sliding_window_view(pad, calibration).max(axis=1)  # max aa[t-C+1..t]
    ref = np.full(n, np.nan)
    ref[delay:] = mx[: n - delay]
    seen = np.cumsum(finite)
    enough = np.zeros(n, dtype=bool)
    enough[delay:] = seen[: n - delay] >= warmup
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(enough & finite, a / ref, np.nan)


def past_median(a: Array, calibration: int, delay: int, stride: int = 5) -> Array:
    """Median of every ``stride``-th finite ``a_s`` with ``t - delay - calibration < s <= t - delay``."""
    n = a.size
    ref = np.full(n, np.nan)
    if n <= delay:
        return ref
    pad = np.concatenate([np.full(calibration - 1, np.nan), np.where(np.isfinite(a), a, np.nan)])
    win = np.lib.stride_tricks.sliding_window_view(pad, calibration)[:, ::-1][:, ::stride]
    med = nanmedian_last(np.ascontiguousarray(win[: n - delay]))
    ref[delay:] = med
    return ref


@dataclass(frozen=True)
class ContextScores:
    """Per grid step: expected value, residual z, novelty, and the combined score."""

    expected: Array
    z: Array
    novelty: Array
    score: Array


def _novelty_ratio(
    x: Array, missing: NDArray[np.bool_], p: ContextParams, *, scale: int
) -> tuple[Array, Array]:
    """Novelty of ``x`` (one value per ``scale`` grid steps) and its gated ratio score.

    Windows counted in grid steps (``history``, ``calibration``...) are divided by ``scale``.
    """

    def steps(n: int, minimum: int = 1) -> int:
        return max(minimum, n // scale)

    a = novelty(x, window=p.window, neighbours=p.neighbours, history=steps(p.history, 2 * p.window))
    # a context with more than a third of its steps filled in, or holding a gap of more than
    # two steps, is not scored (no alarm from a gap)
    ones = np.ones(p.window, dtype=np.int64)
    filled = np.convolve(missing.astype(np.int64), ones)[: x.size]
    run = np.zeros_like(missing)
    run[2:] = missing[2:] & missing[1:-1] & missing[:-2]  # last step of a run of three missing steps
    gaps = np.convolve(run.astype(np.int64), ones)[: x.size]
    a = np.where((filled * 3 > p.window) | (gaps > 0), np.nan, a)
    cal, delay = steps(p.calibration, 10), steps(p.delay)
    r = past_max_ratio(a, cal, delay, steps(p.warmup, 10))
    gate = np.isfinite(a)
    with np.errstate(invalid="ignore"):
        if p.novelty_floor > 0:
            gate &= a >= p.novelty_floor * past_median(a, cal, delay)
        if p.long_gate > 0:
            long_ok = past_max_ratio(a, steps(p.long_calibration, 10), delay) >= p.long_gate
            gate &= long_ok | (r >= p.strong_ratio)
    return a, np.where(gate, r, 0.0)


def _gated_ratio(a: Array, p: ContextParams, *, strong: bool) -> Array:
    """``a``'s ratio to its recent maximum where the gates let it count, else 0."""
    r = past_max_ratio(a, p.calibration, p.delay, p.warmup)
    gate = np.isfinite(a)
    with np.errstate(invalid="ignore"):
        if p.novelty_floor > 0:
            gate &= a >= p.novelty_floor * past_median(a, p.calibration, p.delay)
        if p.long_gate > 0:
            long_ok = past_max_ratio(a, p.long_calibration, p.delay) >= p.long_gate
            gate &= long_ok | (r >= p.strong_ratio) if strong else long_ok
    return np.where(gate, r, 0.0)


def variability(filled: Array, window: int) -> Array:
    """How much the series moves from step to step: the mean absolute change over the last
    ``window`` steps of ``filled`` (missing steps carrying the last value), its largest change
    left out (one jump — a level shift, its end, the end of a gap — is no change of
    variability).  Causal; NaN for the first ``window - 1`` steps."""
    import bottleneck as bn

    n = filled.size
    out = np.full(n, np.nan)
    if n <= window or window < 2:
        return out
    d = np.abs(np.diff(filled, prepend=filled[0]))
    total = bn.move_sum(d, window, min_count=window)
    out = (total - bn.move_max(d, window, min_count=window)) / (window - 1)
    return np.asarray(out, dtype=np.float64)


def hold(x: Array, steps: int) -> Array:
    """``x`` (known every ``steps`` steps, NaN between) carried over the next ``steps - 1`` steps."""
    out = np.nan_to_num(x, nan=0.0)
    src = out.copy()
    for i in range(1, steps):
        out[i:] = np.maximum(out[i:], src[:-i])
    return out


def combine(ratios: Sequence[Array], second_weight: float) -> Array:
    """The largest of the ratios plus ``second_weight`` × the second largest: a second score
    that agrees makes a record count for more (NaN counts 0)."""
    stack: Array = np.sort(np.nan_to_num(np.stack(ratios), nan=0.0, posinf=1e12), axis=0)
    top: Array = stack[-1]
    if stack.shape[0] == 1 or second_weight == 0:
        return top
    out: Array = top + second_weight * stack[-2]
    return out


def context_scores(
    grid: Array, *, step_s: float, params: ContextParams = CONTEXT_DEFAULT, base: DetectParams = DEFAULT
) -> ContextScores:
    """The combined score of one regular series (``NaN`` = missing step); causal."""
    b = base.baseline().fit(grid[None, :], step_s=step_s).result_
    expected = b.expected[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (grid - expected) / b.spread[0]
    absz = np.where(np.isfinite(z), np.abs(z), np.nan)
    filled = forward_fill(grid)
    missing = np.isnan(grid)
    ratios: list[Array] = []
    if params.fine_weight > 0:
        a, rk = _novelty_ratio(filled, missing, params, scale=1)
        ratios.append(params.fine_weight * rk)
    else:
        a = np.full(grid.size, np.nan)
    if params.coarse > 1 and params.coarse_weight > 0:
        c = params.coarse
        nb = grid.size // c
        blocks_x = filled[: nb * c].reshape(nb, c).mean(axis=1)
        blocks_missing = missing[: nb * c].reshape(nb, c).sum(axis=1) * 3 > c
        _, rc = _novelty_ratio(blocks_x, blocks_missing, params, scale=c)
        coarse = np.full(grid.size, np.nan)
        coarse[np.arange(nb) * c + c - 1] = params.coarse_weight * rc  # known at the block's last step
        ratios.append(hold(coarse, c))
    rz = past_max_ratio(absz, params.z_calibration, params.delay, params.warmup)
    with np.errstate(invalid="ignore"):
        ratios.append(np.where(absz >= params.z_min, params.z_weight * rz, np.nan))
    if params.spread_weight > 0:
        v = variability(filled, params.spread_window)
        ratios.append(params.spread_weight * _gated_ratio(v, params, strong=False))
    score = combine(ratios, params.second_weight)
    return ContextScores(expected, z, a, score)


def alarm_steps(
    score: Array, threshold: float, rest: int, calm: NDArray[np.bool_] | None = None
) -> list[int]:
    """Steps where ``score >= threshold``, at least ``rest`` steps after the previous alarm and,
    with ``calm`` (True where the series is back to normal), at least ``rest`` steps after the
    previous alarm's anomaly ended (its first calm step after it): an anomaly that goes on, or
    its end, raises no second alarm."""
    out: list[int] = []
    allowed = 0
    with np.errstate(invalid="ignore"):
        hits = np.flatnonzero(score >= threshold)
    for t in hits.tolist():
        if t < allowed:
            continue
        out.append(t)
        allowed = t + rest + 1
        if calm is not None:
            after = np.flatnonzero(calm[t + 1 :])
            allowed = max(allowed, t + 1 + int(after[0]) + rest if after.size else score.size)
    return out


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
