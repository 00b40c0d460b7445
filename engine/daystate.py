"""Detection carried day by day: the baseline's state per UTC day, cached, so a question
about today reads today's data and a few kilobytes per series of the days before.

:class:`~whatchanged.engine.baseline.RobustBaseline` and the heavy-tail guard of
:mod:`whatchanged.engine.detect` look back up to eight days (seven previous days
at the same time of day, the recent level, a day of residual spread) and the guard
as far as the data goes.  Recomputing that history for every question costs
seconds per day of history.  But every look-back works on *block-level* numbers:

* ``block_medians``     the 10-minute block medians of the raw values;
* ``clean``  the same with the blocks the first pass found anomalous left out;
* ``residual_medians``  the 30-minute block medians of ``|x - E|`` against the first pass;
* ``acc``    the guard's decayed running maximum at the end of the day, and its last
             ``delay`` columns (the guard ignores the latest ``delay`` minutes).

A :class:`DayState` holds those for one day plus what turns raw values of that day
into scores (the final expected value per block, the spread per scale block, the
recent level per block).  The state of day ``D`` is a function of the raw values of
day ``D`` and the states of the eight days before (the guard: of all days before),
so the states are computed in day order from the first day of data, once, and kept
in ``<home>/_cache/daystate/`` under a key naming the files of every day up to
``D`` and the detector settings: a new commit of data for day ``D`` changes the key
of ``D`` and of the days after it, never of the days before.

The numbers are those of :meth:`RobustBaseline.fit` and :func:`detect_matrix` run
on one grid from the first day of data (tests compare both); only the anomaly
intervals are looked for in a window of whole days starting at least
:data:`WINDOW_BACK_S` before the question, so an anomaly that started before that
window is reported from the window's start.

Applies when the grid step divides the baseline's blocks and the blocks divide a
day (the defaults: 1-minute steps, 10- and 30-minute blocks); otherwise
:func:`whatchanged.engine.detect.detect_anomalies` uses one grid over the history.

This module is the state and its arithmetic; the raw grid of a day is read by
:mod:`whatchanged.engine.daygrid`, the states are cached by
:mod:`whatchanged.engine.daystate_cache` and the anomalies of a window are found by
:mod:`whatchanged.engine.daywindow`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import MAD_TO_SIGMA, Array, block_median, rows_for, window_median
from whatchanged.engine.detect import DetectParams

DAY_S = 86400
#: intervals are searched from the UTC midnight at least this long before the question
WINDOW_BACK_S = 6 * 3600.0
#: days of block history a state carries (seven previous days + the recent window)
HISTORY_DAYS = 8
FORMAT = 3
#: the names some fields are stored under in a state file (the format's, kept short)
_STORED_AS = {"block_medians": "bm", "residual_medians": "sb"}
#: raw day grids and states kept in memory by a :class:`DayStates`
RAW_KEPT = 3
STATES_KEPT = HISTORY_DAYS + 4
#: the raw grids of the latest days are kept on disk beside their states
GRIDS_KEPT = 3

Key = tuple[str, str]


@dataclass
class Geometry:
    """Grid sizes of a detector on 1-day chunks."""

    step_s: float
    cols: int  # columns per day
    block: int  # columns per baseline block
    scale_block: int  # columns per scale block
    per_day: int  # blocks per day
    w_recent: int  # blocks in the recent window
    w_scale: int  # scale blocks in the scale window
    delay: int  # guard delay (columns)
    rate: float  # guard decay per column (log domain)

    @classmethod
    def of(cls, params: DetectParams, step_s: float) -> Geometry | None:
        cols = DAY_S / step_s
        b = max(1, round(params.block_s / step_s))
        bs = max(1, round(params.scale_block_s / step_s))
        if cols != int(cols) or int(cols) % bs or bs % b or params.season_days > HISTORY_DAYS - 1:
            return None
        w_recent = max(1, round(params.recent_s / (step_s * b)))
        w_scale = max(1, round(params.scale_window_s / (step_s * bs)))
        per_day = int(cols) // b
        if w_recent + 2 > per_day or w_scale > int(cols) // bs:
            return None
        delay = max(rows_for(params.min_duration_s, step_s), rows_for(params.tail_delay_s, step_s))
        if delay > int(cols):
            return None
        rate = math.log(2.0) / max(params.tail_half_life_s / step_s, 1e-9)
        return cls(step_s, int(cols), b, bs, per_day, w_recent, w_scale, delay, rate)


@dataclass
class DayState:
    """One day's block-level baseline state for a sorted list of series (rows)."""

    keys: list[Key]
    block_medians: Array  # (n, per_day) raw block medians
    clean: Array  # (n, per_day) block medians, anomalous blocks NaN
    residual_medians: Array  # (n, scale blocks) first-pass residual medians
    expected_b: Array  # (n, per_day) final expected value per block
    scale_b: Array  # (n, scale blocks) MAD of the residuals per scale block (before 1.4826)
    recent_b: Array  # (n, per_day) first-pass recent level per block
    acc_end: Array  # (n,) guard: log of the decayed maximum at the last column
    acc_tail: Array  # (n, delay) guard accumulator over the last ``delay`` columns
    acc_max: Array  # (n,) guard: its running maximum before the decay ramp is taken off (extend)
    season1_b: Array  # (n, per_day) first-pass seasonal level per block (from the days before)
    season2_b: Array  # (n, per_day) the same from the blocks left clean (extend)
    season: NDArray[np.bool_]  # (n,) a seasonal level existed some time

    def save(self, path: Path, meta: dict[str, Any] | None = None) -> None:
        """Write the state (``meta``: what :func:`read_meta` gives back, e.g. the files read)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        arrays = {
            _STORED_AS.get(f.name, f.name): getattr(self, f.name) for f in fields(self) if f.name != "keys"
        }
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                keys=np.array(["\x1f".join(k) for k in self.keys], dtype=str),
                meta=np.array(json.dumps(meta or {})),
                **arrays,
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> DayState:
        with np.load(path, allow_pickle=False) as z:
            keys = [tuple(str(k).split("\x1f", 1)) for k in z["keys"].tolist()]
            arrays = {f.name: z[_STORED_AS.get(f.name, f.name)] for f in fields(cls) if f.name != "keys"}
            return cls([(k[0], k[1]) for k in keys], **arrays)

    def subset(self, keys: Sequence[Key]) -> DayState:
        """This state for ``keys`` only, in that order (a key it lacks: a row without data)."""
        rows = self.rows(keys)
        return DayState(
            list(keys),
            _take(self.block_medians, rows),
            _take(self.clean, rows),
            _take(self.residual_medians, rows),
            _take(self.expected_b, rows),
            _take(self.scale_b, rows),
            _take(self.recent_b, rows),
            _take(self.acc_end[:, None], rows, -np.inf)[:, 0],
            _take(self.acc_tail, rows, -np.inf),
            _take(self.acc_max[:, None], rows, -np.inf)[:, 0],
            _take(self.season1_b, rows),
            _take(self.season2_b, rows),
            _take(self.season.astype(np.float64)[:, None], rows, 0.0)[:, 0] > 0,
        )

    def rows(self, keys: Sequence[Key]) -> NDArray[np.intp]:
        """Row of each key in this state, -1 if absent."""
        index = {k: i for i, k in enumerate(self.keys)}
        return np.array([index.get(k, -1) for k in keys], dtype=np.intp)


def _take(a: NDArray[np.floating[Any]], rows: NDArray[np.intp], fill: float = np.nan) -> Array:
    """Rows of ``a`` (``-1``: a row of ``fill``)."""
    out = np.full((rows.size, *a.shape[1:]), fill, dtype=np.float64)
    ok = rows >= 0
    out[ok] = a[rows[ok]]
    return out


def _windows(hist: Array, first_lag: int, count: int, stride: int, out_from: int) -> Array:
    """``window_median`` of :mod:`baseline` for the columns from ``out_from`` on (only the
    columns their windows reach are read)."""
    first = max(0, out_from - max(0, first_lag + (count - 1) * stride))
    out: Array = window_median(hist[:, first:], first_lag, count, stride)[:, out_from - first :]
    return out


def _expected_tail(
    blocks: Array, g: Geometry, params: DetectParams, out_from: int, season_day: Array | None = None
) -> tuple[Array, Array, Array]:
    """``RobustBaseline._expected_blocks`` for the blocks from ``out_from`` on (the rest is
    history), and the seasonal level of the last day's blocks (``season_day``, when known:
    it depends only on the days before; then ``out_from`` is at least ``w_recent`` blocks into
    that day)."""
    n, nb = blocks.shape
    recent = _windows(blocks, 1, g.w_recent, 1, out_from)
    if params.season_days > 0 and params.season_weight > 0:
        # season_b is needed for the recent window before out_from too (its median S̄)
        s_from = max(0, out_from - g.w_recent)
        if season_day is not None:
            season_all = np.full((n, nb), np.nan)
            season_all[:, nb - season_day.shape[1] :] = season_day
        else:
            near_from = max(0, s_from - params.season_days * g.per_day)
            near = np.full((n, nb), np.nan)
            near[:, near_from:] = _windows(blocks, -1, 3, 1, near_from)
            season_all = np.full((n, nb), np.nan)
            season_all[:, s_from:] = _windows(near, g.per_day, params.season_days, g.per_day, s_from)
        season = season_all[:, out_from:]
        shape = np.nan_to_num(season - _windows(season_all, 1, g.w_recent, 1, out_from))
        level = recent + shape
        weight = np.where(np.isnan(season), 0.0, params.season_weight)
        expected = np.where(np.isnan(recent), season, weight * np.nan_to_num(season) + (1 - weight) * level)
    else:
        season = np.full_like(recent, np.nan)
        expected = recent
    return expected, recent, season


def _history(states: Sequence[DayState | None], keys: Sequence[Key], field: str, width: int) -> Array:
    """The ``field`` arrays of ``states`` (oldest first, ``None``: no data that day) side by side,
    rows aligned to ``keys``."""
    parts = []
    for st in states:
        if st is None:
            parts.append(np.full((len(keys), width), np.nan))
        else:
            parts.append(_take(getattr(st, field), st.rows(keys)))
    return np.concatenate(parts, axis=1) if parts else np.empty((len(keys), 0))


def advance(
    x: Array,
    keys: list[Key],
    history: Sequence[DayState | None],
    params: DetectParams,
    g: Geometry,
    *,
    since: tuple[DayState, int] | None = None,
) -> DayState:
    """The state of a day from its raw grid ``x`` (``(n, cols)``, NaN: no sample) and the
    states of the :data:`HISTORY_DAYS` days before it (oldest first; ``None``: no data).

    ``since=(old, col)`` extends ``old``, the state of the same day computed on the same
    grid without its columns from ``col`` on (no sample there then; same keys, same
    history): every number of a block depends only on the blocks before it (and on the
    days before), so the blocks before the scale block holding ``col`` are kept and only
    the rest is computed, and the guard goes on from ``old``'s running maximum.  The
    result equals the full computation exactly (``tests/engine/test_daystate.py``).
    ``col`` must pass :func:`can_extend`: the seasonal levels of the day, which depend only
    on the days before, are then ``old``'s, and with the day before's the recent windows read
    only those two days."""
    n = len(keys)
    hist: list[DayState | None] = [None] * max(0, HISTORY_DAYS - len(history))
    hist += list(history)[-HISTORY_DAYS:]
    hb = HISTORY_DAYS * g.per_day
    per_scale = g.scale_block // g.block
    old, col = since if since is not None else (None, 0)
    kb = (col // g.block) // per_scale  # first scale block recomputed
    b0 = kb * per_scale  # its first block
    k0 = col // g.block  # first block whose values change
    # the columns read (from the first recomputed scale block on) in float64: the grid may be
    # float32, the values as stored (exact in float64; only that part is copied)
    x0 = b0 * g.block
    xt: Array = np.asarray(x[:, x0:], dtype=np.float64)
    bm_day = block_median(xt[:, k0 * g.block - x0 :], g.block)
    # extending, the seasonal levels are known (the day's and the day before's: the recent
    # window reaches back at most a day): only those days' blocks are read
    back = hist[-1:] if b0 < g.w_recent else []
    known1 = known2 = None
    if old is not None:
        bm_day = np.concatenate([old.block_medians[:, :k0], bm_day], axis=1)
        hb = len(back) * g.per_day
        bm = np.concatenate([*_days(back, keys, "block_medians", g), bm_day], axis=1)
        known1 = np.concatenate([*_days(back, keys, "season1_b", g), old.season1_b], axis=1)
        known2 = np.concatenate([*_days(back, keys, "season2_b", g), old.season2_b], axis=1)
    else:
        bm = np.concatenate([_history(hist, keys, "block_medians", g.per_day), bm_day], axis=1)
    e1, r1, s1 = _expected_tail(bm, g, params, hb + b0, known1)
    expected1 = np.repeat(e1, g.block, axis=1)
    sb_tail = block_median(np.abs(xt - expected1), g.scale_block)
    sb_day = np.concatenate([old.residual_medians[:, :kb], sb_tail], axis=1) if old is not None else sb_tail
    sb = np.concatenate(
        [_history(hist[-1:], keys, "residual_medians", g.cols // g.scale_block), sb_day], axis=1
    )
    scale_tail = _windows(sb, 1, g.w_scale, 1, g.cols // g.scale_block + kb)
    spread_b = _spread(scale_tail, r1, g, params)
    if params.exclude_z > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            zb = np.abs(bm_day[:, b0:] - e1) / spread_b
        clean_day = np.where(zb >= params.exclude_z, np.nan, bm_day[:, b0:])
        if old is not None:
            clean_day = np.concatenate([old.clean[:, :b0], clean_day], axis=1)
        days = back if old is not None else hist
        clean = np.concatenate([*_days(days, keys, "clean", g), clean_day], axis=1)
        e2, _r2, s2 = _expected_tail(clean, g, params, hb + b0, known2)
        expected_b = np.where(np.isnan(e2), e1, e2)
        season_b = np.where(np.isnan(s2), s1, s2)
    else:
        clean_day, expected_b, season_b, s2 = bm_day, e1, s1, s1
    prev, gap = _last_state(hist)
    if old is not None:  # the season of the blocks from b0 on is that of the days before: as it was
        season = old.season.copy()
        expected_b = np.concatenate([old.expected_b[:, :b0], expected_b], axis=1)
        scale_b = np.concatenate([old.scale_b[:, :kb], scale_tail], axis=1)
        recent_b = np.concatenate([old.recent_b[:, :b0], r1], axis=1)
    else:
        season = np.asarray((~np.isnan(season_b)).any(axis=1), dtype=np.bool_)
        if prev is not None:
            season |= _take(prev.season.astype(np.float64)[:, None], prev.rows(keys), 0.0)[:, 0] > 0
        scale_b, recent_b = scale_tail, r1
    state = DayState(
        keys,
        bm_day,
        clean_day,
        sb_day,
        expected_b,
        scale_b,
        recent_b,
        np.full(n, -np.inf),
        np.full((n, g.delay), -np.inf),
        np.full(n, -np.inf),
        s1 if old is None else np.concatenate([old.season1_b[:, :b0], s1], axis=1),
        s2 if old is None else np.concatenate([old.season2_b[:, :b0], s2], axis=1),
        season,
    )
    acc, top = _guard(xt, state, prev, params, g, gap_days=gap, since=(old.acc_max, col, x0) if old else None)
    state.acc_end = acc[:, -1].copy()
    state.acc_max = top
    if old is None or acc.shape[1] >= g.delay:
        state.acc_tail = acc[:, -g.delay :].copy()
    else:  # the columns before ``col`` are the old state's
        state.acc_tail = np.concatenate([old.acc_tail[:, : g.delay - acc.shape[1]], acc], axis=1)
    return state


def _days(states: Sequence[DayState | None], keys: Sequence[Key], field: str, g: Geometry) -> list[Array]:
    """``[_history(...)]`` of a per-block ``field`` for ``states``, or ``[]`` when there are none."""
    return [_history(states, keys, field, g.per_day)] if states else []


def can_extend(old_cols: int, col: int, g: Geometry, *, day_before: bool) -> bool:
    """Whether :func:`advance` can extend a state whose grid had data only before column
    ``old_cols`` with data from column ``col`` on: none in the day's first block (the season
    of its last block reads it), and the state of the day before (``day_before``) when the
    recent window of the first block recomputed reaches into that day."""
    if not old_cols <= col < g.cols or col < g.block:
        return False
    b0 = (col // g.scale_block) * (g.scale_block // g.block)
    return b0 >= g.w_recent or day_before


def _guard(
    x: Array,
    state: DayState,
    prev: DayState | None,
    params: DetectParams,
    g: Geometry,
    *,
    gap_days: int,
    since: tuple[Array, int, int] | None,
) -> tuple[Array, Array]:
    """The guard's accumulator for the day's columns (from column ``since[1]`` on, carried
    from the running maximum ``since[0]``, when given; ``x`` then holds the day's columns from
    ``since[2]`` on) and its running maximum at the last column, before the ramp is taken off."""
    if since is None:
        _z, _thr, acc, _e, top = _scores(x, state, prev, params, g, gap_days=gap_days)
        return acc, top
    start_max, col, x0 = since
    # past the last column with a sample the log |z| are -inf: the running maximum stays
    # where it is, so only the columns up to it are scored (the rest is that maximum less
    # the ramp, the same floats)
    filled = np.flatnonzero(~np.isnan(x[:, col - x0 :]).all(axis=0))
    stop = col + (int(filled[-1]) + 1 if filled.size else 0)
    b_lo, b_hi = col // g.block, -(-stop // g.block)
    expected = np.repeat(state.expected_b[:, b_lo:b_hi], g.block, axis=1)
    spread = np.repeat(_spread(state.scale_b, state.recent_b, g, params)[:, b_lo:b_hi], g.block, axis=1)
    lo, hi = col - b_lo * g.block, stop - b_lo * g.block
    z = np.subtract(x[:, col - x0 : stop - x0], expected[:, lo:hi])
    with np.errstate(invalid="ignore", divide="ignore"):
        z /= spread[:, lo:hi]
    n, t = z.shape
    ramp = np.arange(-1, g.cols, dtype=np.float64) * g.rate
    buf = np.empty((n, g.cols - col + 1))
    buf[:, 0] = start_max
    run = buf[:, : t + 1]
    _log_abs(z, run[:, 1:])
    run[:, 1:] += ramp[col + 1 : stop + 1]
    np.maximum.accumulate(run, axis=1, out=run)
    top = buf[:, t].copy()
    acc = buf[:, 1:]
    acc[:, :t] -= ramp[col + 1 : stop + 1]
    np.subtract(top[:, None], ramp[stop + 1 :], out=acc[:, t:])
    return acc, top


def _log_abs(z: Array, out: Array) -> None:
    """``log |z|`` into ``out``; NaN and ±inf (no sample, an infinite score) as -inf: not counted."""
    np.abs(z, out=out)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log(out, out=out)  # -inf at 0, NaN where z is NaN
    out[~(out < np.inf)] = -np.inf


def _spread(scale_b: Array, recent_b: Array, g: Geometry, params: DetectParams) -> Array:
    """Spread per block, as ``RobustBaseline.fit`` has it at the block's columns:
    ``max(1.4826 * scale, max(rel_floor * |recent|, 1e-9))``, NaN where either is NaN
    (constant within a block: :class:`Geometry` has scale blocks made of whole blocks)."""
    scale = np.repeat(scale_b, g.scale_block // g.block, axis=1)
    floor = np.maximum(params.rel_floor * np.abs(recent_b), 1e-9)
    spread = np.maximum(MAD_TO_SIGMA * scale, floor)
    out: Array = np.where(np.isnan(scale), np.nan, spread)
    return out


def point_arrays(state: DayState, g: Geometry, params: DetectParams) -> tuple[Array, Array]:
    """Expected value and spread at every column of the day."""
    expected = np.repeat(state.expected_b, g.block, axis=1)
    spread = np.repeat(_spread(state.scale_b, state.recent_b, g, params), g.block, axis=1)
    return expected, spread


def _last_state(history: Sequence[DayState | None]) -> tuple[DayState | None, int]:
    """The latest state of ``history`` (oldest first) and how many days without data follow it."""
    for k, st in enumerate(reversed(history)):
        if st is not None:
            return st, k
    return None, 0


def scores(
    x: Array,
    state: DayState,
    prev: DayState | None,
    params: DetectParams,
    g: Geometry,
    *,
    gap_days: int = 0,
) -> tuple[Array, Array | None, Array, Array]:
    """Robust scores ``z``, the threshold per point (None without the guard), the guard's
    accumulator and the expected values for one day, carrying the guard from ``prev``, the latest earlier day with
    data (``gap_days`` days without data in between)."""
    z, thr, acc, expected, _top = _scores(x, state, prev, params, g, gap_days=gap_days)
    return z, thr, acc, expected


def _scores(
    x: Array,
    state: DayState,
    prev: DayState | None,
    params: DetectParams,
    g: Geometry,
    *,
    gap_days: int = 0,
) -> tuple[Array, Array | None, Array, Array, Array]:
    """:func:`scores` and the guard's running maximum at the last column before the ramp is
    taken off (what :func:`advance` carries to extend the day)."""
    expected, spread = point_arrays(state, g, params)
    n, t = x.shape
    z = np.subtract(x, expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        z /= spread
    del spread
    # the guard's accumulator, in place: column 0 carries the day before, 1.. the log |z|
    buf = np.empty((n, t + 1))
    _log_abs(z, buf[:, 1:])
    if prev is not None:
        rows = prev.rows(state.keys)
        carry = _take(prev.acc_end[:, None], rows, -np.inf)[:, 0]
        tail = _take(prev.acc_tail, rows, -np.inf)
        if gap_days:  # the accumulator decays over the days without data
            gap = gap_days * g.cols
            steps = np.arange(max(1, gap - g.delay + 1), gap + 1, dtype=np.float64)
            decayed = carry[:, None] - steps * g.rate
            tail = np.concatenate([tail, decayed], axis=1)[:, -g.delay :]
            carry = decayed[:, -1]
    else:
        carry = np.full(n, -np.inf)
        tail = np.full((n, g.delay), -np.inf)
    buf[:, 0] = carry
    ramp = np.arange(-1, t, dtype=np.float64) * g.rate
    buf += ramp
    np.maximum.accumulate(buf, axis=1, out=buf)
    top = buf[:, -1].copy()
    buf -= ramp
    acc = buf[:, 1:]
    if params.tail_factor <= 0:
        return z, None, acc, expected, top
    # the guard at column c is the accumulator at c - delay (the day before for the first columns)
    thr = np.empty((n, t))
    thr[:, : g.delay] = tail  # without a day before: -inf, the guard starts at 0
    thr[:, g.delay :] = acc[:, : t - g.delay]
    np.exp(thr, out=thr)
    thr *= params.tail_factor
    np.maximum(thr, params.threshold, out=thr)
    return z, thr, acc, expected, top
