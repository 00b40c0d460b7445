"""Step 1 — robust baselines per (service, metric).

The baseline of a series at time ``t`` is an *expected value* and a *spread*
computed only from data strictly before ``t`` (it is causal, so the same
numbers serve online and batch analysis):

* **recent level** ``R(t)``: the median of the block medians of the last
  ``recent_s`` seconds (blocks of ``block_s``; the block holding ``t`` is
  excluded, so ``R`` lags by at most one block);
* **seasonal level** ``S(t)``: the median, over the previous
  ``season_days`` days, of each day's median of the block at the same time of
  day and its two neighbours (a median of medians: 3 + ``season_days`` values
  sorted per block instead of ``3 * season_days``);
* **expected value** ``E(t) = w * S(t) + (1 - w) * (R(t) + S(t) - S̄(t))``
  (``S̄``: the median of ``S`` over the recent window, so the recent level
  moves along the daily shape) with ``w = season_weight`` when a previous day
  is available at that time of day, else ``E = R`` (only the recent level: a
  few hours of history are enough to run, and the result says so with
  ``short_history``);
* **spread** ``D(t) = 1.4826 * MAD`` of the residuals ``x - E``: the median
  of the per-block medians of ``|x - E|`` over the previous ``scale_window_s``
  seconds (blocks of ``scale_block_s``), floored at ``rel_floor * |R(t)|``
  so that a flat series does not turn every wiggle into an anomaly;
* **second pass** (``exclude_z > 0``): blocks whose median is at least
  ``exclude_z`` spreads from the first pass's ``E`` are left out of ``R`` and
  ``S`` and both are computed again, so an outage (a latency plateau at a
  timeout, a capped bandwidth) does not become the normal level and the
  return to normal is not an anomaly of its own; a level whose blocks are
  all excluded keeps the first pass's value, so a lasting shift is adopted
  after ``recent_s``.

Everything works on a 2-D array ``values[series, step]`` on a regular grid
(``NaN`` = no sample) with numpy only: medians over blocks and over stacks
of strided windows, never a per-point Python loop.  Column 0 must sit on a
block boundary (the warehouse aligns its grid to UTC midnight, so results do
not depend on the queried range).

Output conventions: ``expected`` and ``spread`` have the shape of the input;
``NaN`` where the baseline is not yet defined (the first ``scale_block_s``
of data: the warm-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bottleneck as bn
import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

#: MAD → standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826


def nanmedian_last(a: Array) -> Array:
    """Median over the last axis ignoring NaN (NaN when a row is all NaN).

    ``np.nanmedian`` is slow on many short rows; sorting puts NaN last and the
    middle is picked by the count of finite values.
    """
    s = np.sort(a, axis=-1)
    n = np.sum(~np.isnan(a), axis=-1)
    lo = np.clip((n - 1) // 2, 0, None)
    hi = np.clip(n // 2, 0, None)
    v_lo = np.take_along_axis(s, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(s, hi[..., None], axis=-1)[..., 0]
    out: Array = np.where(n > 0, 0.5 * (v_lo + v_hi), np.nan)
    return out


def block_median(x: Array, size: int) -> Array:
    """Median of each run of ``size`` columns (the last block may be shorter)."""
    n, t = x.shape
    nb = -(-t // size)
    pad = nb * size - t
    if pad:
        x = np.concatenate([x, np.full((n, pad), np.nan)], axis=1)
    out: Array = bn.nanmedian(np.asarray(x, dtype=np.float64).reshape(n, nb, size), axis=-1)
    return out


def window_median(blocks: Array, first_lag: int, count: int, stride: int = 1) -> Array:
    """For each block ``j``: the NaN-aware median of ``blocks[:, j - first_lag - i * stride]``
    for ``i < count`` (NaN outside the array).

    Bottleneck's moving median (a double heap, O(log count) per block) along the blocks, or
    along each residue class of ``stride`` for strided windows; it gives the same numbers
    as :func:`window_median_sorted` bit for bit (``0.5 * (a + b)`` and ``(a + b) / 2`` round
    alike).  ``first_lag`` may be negative (look-ahead).
    """
    n, nb = blocks.shape
    right = max(0, -first_lag)
    # position j' = j - first_lag ends the window; pad so that every j' < nb + right exists
    length = -(-(nb + right) // stride) * stride
    padded = np.full((n, length), np.nan)
    padded[:, :nb] = blocks
    if stride == 1:
        moved = bn.move_median(padded, min(count, length), min_count=1, axis=1)
    else:
        by_class = padded.reshape(n, length // stride, stride)
        moved = bn.move_median(by_class, min(count, length // stride), min_count=1, axis=1)
        moved = moved.reshape(n, length)
    out = np.full((n, nb), np.nan)
    lo = max(0, first_lag)  # j' = j - first_lag >= 0
    hi = min(nb, length + first_lag)
    if hi > lo:
        out[:, lo:hi] = moved[:, lo - first_lag : hi - first_lag]
    return out


def window_median_sorted(blocks: Array, first_lag: int, count: int, stride: int = 1) -> Array:
    """:func:`window_median` by sorting a strided view of a NaN-padded copy (the reference
    the tests compare the moving median with)."""
    n, nb = blocks.shape
    span = (count - 1) * stride
    left = max(0, first_lag + span)
    right = max(0, -first_lag)
    padded = np.full((n, left + nb + right), np.nan)
    padded[:, left : left + nb] = blocks
    # view[:, j, i] = padded[:, left + j - first_lag - span + i * stride]
    offset = left - first_lag - span
    base = padded[:, offset:]
    s0, s1 = base.strides
    view = np.lib.stride_tricks.as_strided(base, shape=(n, nb, count), strides=(s0, s1, s1 * stride))
    return nanmedian_last(view)


@dataclass(frozen=True)
class BaselineResult:
    """Expected value and spread per point; history per series."""

    expected: Array  # (series, steps)
    spread: Array  # (series, steps), > 0 where defined
    history_s: NDArray[np.float64]  # (series,) seconds of data before the last point
    short_history: NDArray[np.bool_]  # (series,) True: no same-time-of-day data from a previous day


class RobustBaseline:
    """Median/MAD baseline from the same time of day on previous days and the recent level.

    Keyword-only parameters (seconds); :meth:`fit` returns ``self`` and sets
    ``result_``.
    """

    def __init__(
        self,
        *,
        block_s: float = 600.0,
        recent_s: float = 3600.0,
        season_s: float = 86400.0,
        season_days: int = 7,
        season_weight: float = 0.5,
        scale_block_s: float = 1800.0,
        scale_window_s: float = 86400.0,
        rel_floor: float = 0.01,
        exclude_z: float = 3.0,
    ) -> None:
        if not 0.0 <= season_weight <= 1.0:
            raise ValueError(f"season_weight: expected a number in [0, 1], found {season_weight!r}")
        self.block_s = block_s
        self.recent_s = recent_s
        self.season_s = season_s
        self.season_days = season_days
        self.season_weight = season_weight
        self.scale_block_s = scale_block_s
        self.scale_window_s = scale_window_s
        self.rel_floor = rel_floor
        self.exclude_z = exclude_z

    def _expected_blocks(
        self, block_medians: Array, w_recent: int, per_day: int
    ) -> tuple[Array, Array, Array]:
        """Expected value, recent level and seasonal level per block, from the blocks' medians."""
        recent_b = window_median(block_medians, 1, w_recent)
        season_days = min(self.season_days, (block_medians.shape[1] - 1) // per_day) if per_day > 2 else 0
        if season_days > 0 and self.season_weight > 0:
            # same time of day on the previous days: the median over the days of each day's
            # block and its two neighbours (a median of medians: 3 + season_days values
            # sorted instead of 3 × season_days)
            near = window_median(block_medians, -1, 3)
            season_b = window_median(near, per_day, season_days, per_day)
            # the recent level moved along the seasonal shape since the recent window
            shape = np.nan_to_num(season_b - window_median(season_b, 1, w_recent))
            level = recent_b + shape
            weight = np.where(np.isnan(season_b), 0.0, self.season_weight)
            expected_b = np.where(
                np.isnan(recent_b), season_b, weight * np.nan_to_num(season_b) + (1 - weight) * level
            )
        else:
            season_b = np.full_like(recent_b, np.nan)
            expected_b = recent_b
        return expected_b, recent_b, season_b

    def fit(self, values: Array, *, step_s: float) -> RobustBaseline:
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        _n, t = x.shape
        block_rows = max(1, round(self.block_s / step_s))
        block_medians = block_median(x, block_rows)
        n_blocks = block_medians.shape[1]
        w_recent = max(1, round(self.recent_s / (step_s * block_rows)))
        per_day = round(self.season_s / (step_s * block_rows))
        expected_b, recent_b, season_b = self._expected_blocks(block_medians, w_recent, per_day)
        expected = np.repeat(expected_b, block_rows, axis=1)[:, :t]
        recent = np.repeat(recent_b, block_rows, axis=1)[:, :t]

        resid = np.abs(x - expected)
        scale_rows = max(1, round(self.scale_block_s / step_s))
        scale_medians = block_median(resid, scale_rows)
        w_scale = max(1, round(self.scale_window_s / (step_s * scale_rows)))
        scale_b = window_median(scale_medians, 1, w_scale)
        scale = np.repeat(scale_b, scale_rows, axis=1)[:, :t]
        floor = np.maximum(self.rel_floor * np.abs(recent), 1e-9)
        spread = np.maximum(MAD_TO_SIGMA * scale, floor)
        spread = np.where(np.isnan(scale), np.nan, spread)

        if self.exclude_z > 0:
            # second pass: the levels forget the blocks that were anomalous against the first
            # pass (an outage must not become the normal level); a level with every block
            # excluded falls back to the first pass (a lasting shift is adopted after recent_s)
            with np.errstate(invalid="ignore", divide="ignore"):
                zb = np.abs(block_medians - expected_b) / spread[:, ::block_rows][:, :n_blocks]
            clean = np.where(zb >= self.exclude_z, np.nan, block_medians)
            e2, r2, s2 = self._expected_blocks(clean, w_recent, per_day)
            expected_b = np.where(np.isnan(e2), expected_b, e2)
            recent_b = np.where(np.isnan(r2), recent_b, r2)
            season_b = np.where(np.isnan(s2), season_b, s2)
            expected = np.repeat(expected_b, block_rows, axis=1)[:, :t]

        seen = ~np.isnan(x)
        first = np.where(seen.any(axis=1), seen.argmax(axis=1), t)
        last = np.where(seen.any(axis=1), t - 1 - seen[:, ::-1].argmax(axis=1), -1)
        history = np.clip(last - first, 0, None).astype(np.float64) * step_s
        has_season = (~np.isnan(season_b)).any(axis=1)
        short: NDArray[np.bool_] = np.asarray(~has_season, dtype=np.bool_)
        self.result_ = BaselineResult(expected, spread, history, short)
        return self


def rows_for(seconds: float, step_s: float, *, minimum: int = 1) -> int:
    """How many grid steps cover ``seconds`` (at least ``minimum``)."""
    return max(minimum, math.ceil(seconds / step_s - 1e-9))
