"""Detection carried day by day: the baseline's state per UTC day, cached, so a question
about today reads today's data and a few kilobytes per series of the days before.

:class:`~whatchanged.engine.baseline.RobustBaseline` and the heavy-tail guard of
:mod:`whatchanged.engine.detect` look back up to eight days (seven previous days
at the same time of day, the recent level, a day of residual spread) and the guard
as far as the data goes.  Recomputing that history for every question costs
seconds per day of history.  But every look-back works on *block-level* numbers:

* ``bm``     the 10-minute block medians of the raw values;
* ``clean``  the same with the blocks the first pass found anomalous left out;
* ``sb``     the 30-minute block medians of ``|x - E|`` against the first pass;
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
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import bottleneck as bn
import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import MAD_TO_SIGMA, Array, block_median, rows_for, window_median
from whatchanged.engine.detect import DetectParams
from whatchanged.engine.extent import DAY_DIR
from whatchanged.engine.model import Anomaly
from whatchanged.engine.storage import stale_temp_files
from whatchanged.engine.warehouse import to_numpy

DAY_S = 86400
#: intervals are searched from the UTC midnight at least this long before the question
WINDOW_BACK_S = 6 * 3600.0
#: days of block history a state carries (seven previous days + the recent window)
HISTORY_DAYS = 8
FORMAT = 3
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
    b: int  # columns per baseline block
    bs: int  # columns per scale block
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
    bm: Array  # (n, per_day) raw block medians
    clean: Array  # (n, per_day) block medians, anomalous blocks NaN
    sb: Array  # (n, scale blocks) first-pass residual medians
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
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "keys"}
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
            arrays = {f.name: z[f.name] for f in fields(cls) if f.name != "keys"}
            return cls([(k[0], k[1]) for k in keys], **arrays)

    def subset(self, keys: Sequence[Key]) -> DayState:
        """This state for ``keys`` only, in that order (a key it lacks: a row without data)."""
        rows = self.rows(keys)
        return DayState(
            list(keys),
            _take(self.bm, rows),
            _take(self.clean, rows),
            _take(self.sb, rows),
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
    per_scale = g.bs // g.b
    old, col = since if since is not None else (None, 0)
    kb = (col // g.b) // per_scale  # first scale block recomputed
    b0 = kb * per_scale  # its first block
    k0 = col // g.b  # first block whose values change
    bm_day = block_median(x[:, k0 * g.b :], g.b)
    # extending, the seasonal levels are known (the day's and the day before's: the recent
    # window reaches back at most a day): only those days' blocks are read
    back = hist[-1:] if b0 < g.w_recent else []
    known1 = known2 = None
    if old is not None:
        bm_day = np.concatenate([old.bm[:, :k0], bm_day], axis=1)
        hb = len(back) * g.per_day
        bm = np.concatenate([*_days(back, keys, "bm", g), bm_day], axis=1)
        known1 = np.concatenate([*_days(back, keys, "season1_b", g), old.season1_b], axis=1)
        known2 = np.concatenate([*_days(back, keys, "season2_b", g), old.season2_b], axis=1)
    else:
        bm = np.concatenate([_history(hist, keys, "bm", g.per_day), bm_day], axis=1)
    e1, r1, s1 = _expected_tail(bm, g, params, hb + b0, known1)
    expected1 = np.repeat(e1, g.b, axis=1)
    sb_tail = block_median(np.abs(x[:, b0 * g.b :] - expected1), g.bs)
    sb_day = np.concatenate([old.sb[:, :kb], sb_tail], axis=1) if old is not None else sb_tail
    sb = np.concatenate([_history(hist[-1:], keys, "sb", g.cols // g.bs), sb_day], axis=1)
    scale_tail = _windows(sb, 1, g.w_scale, 1, g.cols // g.bs + kb)
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
    acc, top = _guard(x, state, prev, params, g, gap_days=gap, since=(old.acc_max, col) if old else None)
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
    if not old_cols <= col < g.cols or col < g.b:
        return False
    b0 = (col // g.bs) * (g.bs // g.b)
    return b0 >= g.w_recent or day_before


def _guard(
    x: Array,
    state: DayState,
    prev: DayState | None,
    params: DetectParams,
    g: Geometry,
    *,
    gap_days: int,
    since: tuple[Array, int] | None,
) -> tuple[Array, Array]:
    """The guard's accumulator for the day's columns (from column ``since[1]`` on, carried
    from the running maximum ``since[0]``, when given) and its running maximum at the last
    column, before the ramp is taken off."""
    if since is None:
        _z, _thr, acc, _e, top = _scores(x, state, prev, params, g, gap_days=gap_days)
        return acc, top
    start_max, col = since
    expected, spread = point_arrays(state, g, params)
    z = np.subtract(x[:, col:], expected[:, col:])
    with np.errstate(invalid="ignore", divide="ignore"):
        z /= spread[:, col:]
    n, t = z.shape
    buf = np.empty((n, t + 1))
    _log_abs(z, buf[:, 1:])
    buf[:, 0] = start_max
    ramp = np.arange(-1, g.cols, dtype=np.float64) * g.rate
    buf[:, 1:] += ramp[col + 1 :]
    np.maximum.accumulate(buf, axis=1, out=buf)
    top = buf[:, -1].copy()
    acc = buf[:, 1:]
    acc -= ramp[col + 1 :]
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
    scale = np.repeat(scale_b, g.bs // g.b, axis=1)
    floor = np.maximum(params.rel_floor * np.abs(recent_b), 1e-9)
    spread = np.maximum(MAD_TO_SIGMA * scale, floor)
    out: Array = np.where(np.isnan(scale), np.nan, spread)
    return out


def point_arrays(state: DayState, g: Geometry, params: DetectParams) -> tuple[Array, Array]:
    """Expected value and spread at every column of the day."""
    expected = np.repeat(state.expected_b, g.b, axis=1)
    spread = np.repeat(_spread(state.scale_b, state.recent_b, g, params), g.b, axis=1)
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


# -- the cache ------------------------------------------------------------------------------------


def day_files(files: Sequence[str]) -> dict[date, list[str]]:
    """Files per UTC day of the day-partitioned metrics table (files without a day: skipped)."""
    out: dict[date, list[str]] = {}
    for f in files:
        m = DAY_DIR.search(f)
        if m:
            out.setdefault(date.fromisoformat(m.group(1)), []).append(f)
    return {d: sorted(v) for d, v in sorted(out.items())}


def home_of(files: Sequence[str]) -> Path | None:
    """The warehouse folder holding ``<home>/metrics/date=…/file.parquet``."""
    for f in files:
        p = Path(f)
        for parent in p.parents:
            if parent.name == "metrics":
                return parent.parent
    return None


def chain_keys(by_day: dict[date, list[str]], params: DetectParams, step_s: float) -> dict[date, str]:
    """Cache key per day: the detector settings and the rows of that day and every day before,
    named by each day's :func:`~whatchanged.engine.compact.day_digest` (a compaction, which
    moves rows between files, leaves it as it was)."""
    from whatchanged.engine.compact import day_digest

    h = hashlib.sha1(json.dumps([FORMAT, step_s, astuple(params)], default=str).encode())
    out = {}
    for d, fs in by_day.items():
        h.update(("\x00" + d.isoformat() + "\x01" + day_digest(fs)).encode())
        out[d] = h.copy().hexdigest()[:20]
    return out


def read_day(files: Sequence[str], day: date, g: Geometry) -> tuple[list[Key], Array]:
    """The raw grid of one UTC day: sorted series keys and ``(n, cols)`` values rounded to
    float32 as stored (mean per step, NaN: no sample), read from the day's Parquet files
    with pyarrow.  Service and metric stay dictionary indices, looked at once per run of
    rows of one series (the files are sorted by series: a few thousand runs for millions
    of rows), never as Python strings per row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lo_us = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1_000_000)
    step_us = int(g.step_s * 1_000_000)
    dense = _dense_day(files, lo_us, step_us, g)
    if dense is not None:
        return dense
    services: dict[str, int] = {}
    metrics: dict[str, int] = {}
    # per batch: service and metric number of each run, run lengths, columns, values
    chunks: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.intp], NDArray[np.int64], Array]] = []
    for f in files:
        pf = pq.ParquetFile(f, read_dictionary=["service", "metric"])
        tbl = pf.read(columns=["service", "metric", "ts", "value"], use_threads=False)
        for batch in tbl.to_batches():
            if not batch.num_rows:
                continue
            svc, met = batch.column(0), batch.column(1)
            s_map = np.array(
                [services.setdefault(str(v), len(services)) for v in svc.dictionary.to_pylist()] + [-1],
                dtype=np.int64,
            )
            m_map = np.array(
                [metrics.setdefault(str(v), len(metrics)) for v in met.dictionary.to_pylist()] + [-1],
                dtype=np.int64,
            )
            s_idx = to_numpy(svc.indices.fill_null(-1) if svc.null_count else svc.indices)
            m_idx = to_numpy(met.indices.fill_null(-1) if met.null_count else met.indices)
            # the stored microseconds as they are (a cast would import pyarrow.compute: 30 ms)
            tcol = batch.column(2)
            tcol = tcol.view(pa.int64()) if tcol.type.bit_width == 64 else tcol.cast("int64")
            ts = to_numpy(tcol.fill_null(lo_us - step_us) if tcol.null_count else tcol)
            vcol = batch.column(3)
            if vcol.type != pa.float64():
                vcol = vcol.cast("double")
            val = to_numpy(vcol.fill_null(np.nan) if vcol.null_count else vcol)
            starts = np.flatnonzero(
                np.concatenate(([True], (s_idx[1:] != s_idx[:-1]) | (m_idx[1:] != m_idx[:-1])))
            )
            lengths = np.diff(np.append(starts, s_idx.size))
            # -1 (null) indexes the appended -1
            chunks.append((s_map[s_idx[starts]], m_map[m_idx[starts]], lengths, (ts - lo_us) // step_us, val))
    if not chunks:
        return [], np.empty((0, g.cols))
    s_names, m_names = list(services), list(metrics)
    n_m = len(m_names)
    run_s = np.concatenate([c[0] for c in chunks])
    run_m = np.concatenate([c[1] for c in chunks])
    valid = (run_s >= 0) & (run_m >= 0)
    run_pair = np.where(valid, run_s * n_m + run_m, 0)
    pairs = np.sort(run_pair[valid])  # np.unique imports numpy.ma
    present = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if pairs.size else pairs
    keys_unsorted = [(s_names[p // n_m], m_names[p % n_m]) for p in present.tolist()]
    order = sorted(range(len(keys_unsorted)), key=keys_unsorted.__getitem__)
    keys = [keys_unsorted[i] for i in order]
    if not keys:
        return [], np.empty((0, g.cols))
    rank = np.full(len(s_names) * n_m, -1, dtype=np.int64)
    rank[present[order]] = np.arange(len(keys), dtype=np.int64)
    row_rank = np.repeat(np.where(valid, rank[run_pair], -1), np.concatenate([c[2] for c in chunks]))
    col = np.concatenate([c[3] for c in chunks])
    vals = np.concatenate([c[4] for c in chunks])
    ok = (row_rank >= 0) & (col >= 0) & (col < g.cols) & np.isfinite(vals)
    flat = row_rank * g.cols + col
    if not ok.all():
        flat, vals = flat[ok], vals[ok]
    vals = vals.astype(np.float32).astype(np.float64)
    size = len(keys) * g.cols
    grid = np.full(size, np.nan)
    grid[flat] = vals
    if np.count_nonzero(grid == grid) != flat.size:  # several samples in a step: their mean
        counts = np.bincount(flat, minlength=size)
        sums = np.bincount(flat, weights=vals, minlength=size)
        with np.errstate(invalid="ignore"):
            grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        grid = grid.astype(np.float32).astype(np.float64)
    return keys, grid.reshape(len(keys), g.cols)


def _dense_day(files: Sequence[str], lo_us: int, step_us: int, g: Geometry) -> tuple[list[Key], Array] | None:
    """:func:`read_day` for a day stored whole: every series has one sample at each step of
    the day, in time order, and the files hold the series in key order, one after the other
    (how the warehouse writes a complete day).  The values then are the grid already, row by
    row, where the general path scatters them one by one into the same places, with several
    times the memory.  None when the files are laid out any other way (a gap, a repeat, a
    partial day, keys out of order): told from the footers before anything is decoded when
    the row counts or the time range do not fit, else from the columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = g.cols
    last_us = lo_us + (cols - 1) * step_us
    handles = []
    for f in files:
        pf = pq.ParquetFile(f, read_dictionary=["service", "metric"])
        meta = pf.metadata
        if meta.num_rows % cols:
            return None
        ts_at = pf.schema_arrow.get_field_index("ts")
        for r in range(meta.num_row_groups):
            stats = meta.row_group(r).column(ts_at).statistics
            if stats is None or not stats.has_min_max:
                return None
            low, high = (pa.scalar(v, pa.timestamp("us", tz="UTC")).value for v in (stats.min, stats.max))
            if low < lo_us or high > last_us:
                return None
        handles.append(pf)
    keys: list[Key] = []
    parts: list[NDArray[np.float32]] = []
    expected_ts = lo_us + np.arange(cols, dtype=np.int64) * step_us
    for pf in handles:
        tbl = pf.read(columns=["service", "metric", "ts", "value"], use_threads=False)
        if not tbl.num_rows:
            continue
        if any(c.num_chunks != 1 for c in tbl.columns):
            tbl = tbl.combine_chunks()
        svc, met, tcol, vcol = (c.chunk(0) for c in tbl.columns)
        if svc.null_count or met.null_count or tcol.null_count or tcol.type.bit_width != 64:
            return None
        if not (pa.types.is_dictionary(svc.type) and pa.types.is_dictionary(met.type)):
            return None
        runs = tbl.num_rows // cols
        s_idx = to_numpy(svc.indices).reshape(runs, cols)
        m_idx = to_numpy(met.indices).reshape(runs, cols)
        if not ((s_idx == s_idx[:, :1]).all() and (m_idx == m_idx[:, :1]).all()):
            return None
        if not (to_numpy(tcol.view(pa.int64())).reshape(runs, cols) == expected_ts).all():
            return None
        s_names = svc.dictionary.to_pylist()
        m_names = met.dictionary.to_pylist()
        keys.extend(
            (str(s_names[a]), str(m_names[b]))
            for a, b in zip(s_idx[:, 0].tolist(), m_idx[:, 0].tolist(), strict=True)
        )
        if vcol.type != pa.float64():
            vcol = vcol.cast("double")
        vals = to_numpy(vcol.fill_null(np.nan) if vcol.null_count else vcol)
        parts.append(vals.astype(np.float32).reshape(runs, cols))  # rounded as stored
        del tbl, svc, met, tcol, vcol, s_idx, m_idx, vals
    if not keys or any(a >= b for a, b in itertools.pairwise(keys)):
        return None  # out of order or a series twice: the general path sorts and averages
    grid = np.concatenate(parts).astype(np.float64) if len(parts) > 1 else parts[0].astype(np.float64)
    del parts
    bad = ~np.isfinite(grid)
    if bad.any():
        grid[bad] = np.nan  # an infinite value is no sample, as in the general path
    return keys, grid


class DayStates:
    """The states of every day of a warehouse's metrics, computed on demand in day order
    and cached on disk (``cache_dir``; None: in memory only)."""

    def __init__(
        self, files: Sequence[str], params: DetectParams, g: Geometry, cache_dir: Path | None
    ) -> None:
        self.by_day = day_files(files)
        self.days = list(self.by_day)
        self.params = params
        self.g = g
        self.keys = chain_keys(self.by_day, params, g.step_s)
        self.cache_dir = cache_dir
        # kept in memory: the latest states used (all of them without a cache on disk, where
        # an evicted state would cost the whole chain again) and the last raw grids read
        self._states: OrderedDict[date, DayState] = OrderedDict()
        self._raw: OrderedDict[date, tuple[list[Key], Array]] = OrderedDict()
        self.computed = 0  # states computed (not read from the cache) by this object
        self.extended = 0  # of which extended from a state of the same day with fewer files
        self.extended_new_only = 0  # of which read only the new samples' files (not the whole day)
        self._lock = threading.RLock()  # the API server's threads share one object

    def _path(self, d: date) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{d.isoformat()}-{self.keys[d]}.npz"

    def raw(self, d: date) -> tuple[list[Key], Array]:
        with self._lock:
            return self._raw_locked(d)

    def _grid_path(self, d: date) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{d.isoformat()}-{self.keys[d]}.grid.npy"

    def _raw_locked(self, d: date) -> tuple[list[Key], Array]:
        hit = self._raw.get(d)
        if hit is None:
            hit = self._cached_grid(d) or read_day(self.by_day[d], d, self.g)
            self._raw[d] = hit
            while len(self._raw) > RAW_KEPT:
                self._raw.popitem(last=False)
        self._raw.move_to_end(d)
        return hit

    def _cached_grid(self, d: date) -> tuple[list[Key], Array] | None:
        """The raw grid of ``d`` kept beside its state (rows: the state's keys), if any."""
        grid, path = self._grid_path(d), self._path(d)
        if grid is None or path is None or not grid.is_file() or not path.is_file():
            return None
        st = self._state_locked(d)
        try:
            x = np.load(grid, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if st is None or x.shape != (len(st.keys), self.g.cols):
            return None
        return st.keys, x.astype(np.float64)

    def _save_grid(self, d: date, x: Array) -> None:
        """Keep the raw grid of ``d`` (float32: the values as stored) for the latest
        :data:`GRIDS_KEPT` days: questions are mostly about them, and reading a day's Parquet
        files costs several times more than loading the grid."""
        path = self._grid_path(d)
        if path is None or d not in self.days[-GRIDS_KEPT:]:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, x.astype(np.float32))
        os.replace(tmp, path)
        recent = {day.isoformat() for day in self.days[-GRIDS_KEPT:]}
        for other in path.parent.glob("*.grid.npy"):
            if other != path and (other.name[:10] not in recent or other.name[:10] == path.name[:10]):
                with contextlib.suppress(OSError):
                    other.unlink()

    def _keep(self, d: date, st: DayState) -> DayState:
        self._states[d] = st
        self._states.move_to_end(d)
        if self.cache_dir is not None:
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
        return st

    def _known(self, d: date) -> bool:
        """The state of ``d`` is in memory or on disk."""
        path = self._path(d)
        return d in self._states or (path is not None and path.is_file())

    def previous(self, d: date) -> tuple[DayState | None, int]:
        """The latest state within :data:`HISTORY_DAYS` before ``d`` and the days without
        data between them."""
        for k in range(1, HISTORY_DAYS + 1):
            st = self.state(d - timedelta(days=k))
            if st is not None:
                return st, k - 1
        return None, 0

    def state(self, d: date) -> DayState | None:
        """The state of day ``d`` (None if the warehouse holds no metrics that day)."""
        with self._lock:
            return self._state_locked(d)

    def _state_locked(self, d: date) -> DayState | None:
        if d not in self.by_day:
            return None
        hit = self._states.get(d)
        if hit is not None:
            self._states.move_to_end(d)
            return hit
        path = self._path(d)
        if path is not None and path.is_file():
            try:
                return self._keep(d, DayState.load(path))
            except (OSError, ValueError, KeyError):
                pass
        # the days before first, oldest first (no deep recursion): from the latest one cached
        i = self.days.index(d)
        start = i
        while start > 0 and not self._known(self.days[start - 1]):
            start -= 1
        for earlier in self.days[start:i]:
            self.state(earlier)
        extended = self._extension(d)
        if extended is not None:  # minutes appended to a day analysed before: from where it stopped
            # (the day before's state is all it reads of the history)
            none: list[DayState | None] = [None] * (HISTORY_DAYS - 1)
            history = [*none, self.state(d - timedelta(days=1))]
        else:
            history = [self.state(d - timedelta(days=k)) for k in range(HISTORY_DAYS, 0, -1)]
        if extended is not None:
            keys, x, old, col = extended
            st = advance(x, keys, history, self.params, self.g, since=(old, col))
            self._raw[d] = (keys, x)
            self.extended += 1
        else:
            keys, x = self.raw(d)
            prev, _gap = _last_state(history)
            if prev is not None:  # carry the series of the previous days that have no data today
                live = [k for k, r in zip(prev.keys, _live_rows(history, prev.keys), strict=True) if r]
                if set(live) - set(keys):
                    keys, x = _with_rows(keys, x, live)
            st = advance(x, keys, history, self.params, self.g)
        self._keep(d, st)
        self.computed += 1
        if path is not None:
            try:
                meta: dict[str, Any] = {
                    "files": sorted(Path(f).name for f in self.by_day[d]),
                    "prev": self._prev_key(d),
                }
                rows = _rows_in(self.by_day[d])
                if rows is not None:
                    meta["rows"] = rows
                st.save(path, meta)
                _sweep(path)
                self._save_grid(d, x)
            except OSError:
                pass
        return st

    def _prev_key(self, d: date) -> str:
        i = self.days.index(d)
        return self.keys[self.days[i - 1]] if i else ""

    def _extension(self, d: date) -> tuple[list[Key], Array, DayState, int] | None:
        """What :func:`advance` needs to extend the cached state of ``d`` computed before the
        latest commits to it: that state, its raw grid with the new samples added, and the
        first column they fill.  None (compute the day afresh) unless the cache holds a state
        of ``d`` computed after the same days, with its grid, and the day's samples now are
        those samples, unchanged, and new ones after them, of no new series.  When the files
        then read are all still there, only the new files are read; else (a compaction merged
        them) the whole day, checked against the old grid."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return None
        names = {Path(f).name for f in self.by_day[d]}
        prev_key = self._prev_key(d)
        for path in self.cache_dir.glob(f"{d.isoformat()}-*.npz"):
            meta = read_meta(path)
            before = set(meta.get("files", [])) if meta and meta.get("prev") == prev_key else set()
            if not before or before == names:
                continue
            try:
                old = DayState.load(path)
                x = np.load(path.with_name(path.name[: -len(".npz")] + ".grid.npy"), allow_pickle=False)
            except (OSError, ValueError, KeyError):
                continue
            if x.shape != (len(old.keys), self.g.cols):
                continue
            x = x.astype(np.float64)
            had = ~np.isnan(x)
            read: tuple[list[Key], Array] | None = None
            if before < names:
                read = read_day([f for f in self.by_day[d] if Path(f).name not in before], d, self.g)
            else:  # compactions merged files read then: the new ones traced through them
                new_files = self._new_since(d, before, meta.get("rows") if meta else None)
                if new_files is not None:
                    with contextlib.suppress(OSError):  # removed meanwhile: the whole day
                        read = read_day(new_files, d, self.g)
            appended = read is not None
            new_keys, x_new = read if read is not None else read_day(self.by_day[d], d, self.g)
            rows = old.rows(new_keys)
            if (rows < 0).any():
                return None  # a new series
            if appended:  # only new samples were read: put them beside the old ones
                filled = ~np.isnan(x_new)
                if (filled & had[rows]).any():
                    return None  # a second sample in a step: a mean, computed afresh
                grid = x.copy()
                grid[rows] = np.where(filled, x_new, x[rows])
                new_cols = np.flatnonzero(filled.any(axis=0))
            else:
                grid = np.full_like(x, np.nan)
                grid[rows] = x_new
                if not np.array_equal(grid[had], x[had]):
                    return None  # a sample changed or went
                new_cols = np.flatnonzero((~np.isnan(grid) & ~had).any(axis=0))
            old_cols = np.flatnonzero(had.any(axis=0))
            if not new_cols.size or not old_cols.size:
                return None
            col = int(new_cols[0])
            day_before = self.state(d - timedelta(days=1)) is not None
            if not can_extend(int(old_cols[-1]) + 1, col, self.g, day_before=day_before):
                return None
            if appended:
                self.extended_new_only += 1
            return old.keys, grid, old, col
        return None

    def _new_since(self, d: date, before: set[str], rows_before: Any) -> list[str] | None:
        """The files holding exactly the rows of ``d`` committed after a state computed from the
        files ``before`` (names) holding ``rows_before`` rows, when compactions merged some of
        those files since (None: not known; the whole day is read).

        A compacted file holds the rows of the files its manifest replaced (a repeated key kept
        once).  Each live file of the day is traced back through the compactions' ``replaces``
        to files of ``before`` and files not in it (the new ones, read from the disk while
        :func:`~whatchanged.engine.compact.collect_garbage` leaves them there); where no
        file is reached twice, the day's rows are a part of the rows of ``before`` and of the
        new files, and all of them when the row counts (Parquet footers) add up."""
        files = self.by_day[d]
        home = home_of(files)
        if not isinstance(rows_before, int) or home is None or not files:
            return None
        from whatchanged.engine.errors import WarehouseError
        from whatchanged.engine.warehouse import Warehouse

        try:
            manifests = Warehouse(home).manifests()
        except (OSError, ValueError, WarehouseError):
            return None
        made_by: dict[str, str] = {}  # compacted file → its compaction
        replaced: dict[str, list[str]] = {}  # compaction → the files it replaced
        for m in manifests:
            merged = (m.get("replaces") or {}).get("metrics")
            if not isinstance(merged, list):
                continue
            txid = str(m.get("txid"))
            replaced[txid] = [Path(str(f)).name for f in merged]
            for f in m.get("tables", {}).get("metrics", {}).get("files", []):
                made_by[Path(str(f)).name] = txid

        def unit(name: str) -> str:
            return made_by.get(name, name) if name not in before else name

        def leaves(names: list[str], depth: int) -> set[str] | None:
            """The files of ``before`` and the uncompacted files ``names`` hold rows of
            (None: one reached twice, or too deep)."""
            if depth > 64:
                return None
            out: set[str] = set()
            for u in dict.fromkeys(unit(n) for n in names):
                got = leaves(replaced[u], depth + 1) if u in replaced and u not in before else {u}
                if got is None or got & out:
                    return None
                out |= got
            return out

        reached = leaves([Path(f).name for f in files], 0)
        if reached is None or not before <= reached:
            return None
        folder = Path(files[0]).parent
        new = [str(folder / n) for n in sorted(reached - before)]
        now, added = _rows_in(files), _rows_in(new)
        if now is None or added is None or now != rows_before + added:
            return None  # a repeated key kept once, or a file gone: the whole day
        return new


def _rows_in(files: Sequence[str]) -> int | None:
    """The rows of Parquet ``files`` from their footers (None: one unreadable or gone)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(sum(pq.read_metadata(f).num_rows for f in files))
    except (OSError, pa.ArrowException):
        return None


def read_meta(path: Path) -> dict[str, Any] | None:
    """What :meth:`DayState.save` was given as ``meta`` (None: unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError):
        return None
    return meta if isinstance(meta, dict) else None


def _live_rows(history: Sequence[DayState | None], keys: Sequence[Key]) -> list[bool]:
    """Whether each key has a block median in any of the ``history`` states."""
    live = np.zeros(len(keys), dtype=bool)
    for st in history:
        if st is not None:
            rows = st.rows(keys)
            has = np.zeros(len(keys), dtype=bool)
            ok = rows >= 0
            has[ok] = np.isfinite(st.bm[rows[ok]]).any(axis=1)
            live |= has
    return live.tolist()


def _with_rows(keys: list[Key], x: Array, extra: Sequence[Key]) -> tuple[list[Key], Array]:
    """``keys``/``x`` with rows of NaN added for ``extra`` keys, in sorted order."""
    merged = sorted(set(keys) | set(extra))
    index = {k: i for i, k in enumerate(keys)}
    out = np.full((len(merged), x.shape[1]), np.nan)
    for r, k in enumerate(merged):
        i = index.get(k)
        if i is not None:
            out[r] = x[i]
    return merged, out


def _sweep(path: Path) -> None:
    """Remove the other cached states of the same day (older data versions), and the
    ``.<name>.<pid>.tmp`` files of writers that no longer run (a killed ``analyze``)."""
    day = path.name[:10]
    for other in [*path.parent.glob(f"{day}-*.npz"), *stale_temp_files(path.parent)]:
        if other != path:
            with contextlib.suppress(OSError):
                other.unlink()


# -- anomalies in a window ------------------------------------------------------------------------


def _day_floor(t: datetime) -> date:
    return t.astimezone(UTC).date()


def _candidates(x: Array, st: DayState, g: Geometry, params: DetectParams) -> NDArray[np.bool_]:
    """Rows of ``x`` where some point may reach the detection threshold: within a block the
    expected value and the spread are constant, so the block's extremes tell (with a margin
    for rounding); the other rows cannot hold an anomaly and need no scores."""
    n = x.shape[0]
    by_block = x.reshape(n, g.per_day, g.b)
    top = bn.nanmax(by_block, axis=2)
    bottom = bn.nanmin(by_block, axis=2)
    spread = _spread(st.scale_b, st.recent_b, g, params)
    with np.errstate(invalid="ignore"):
        reach = np.maximum(top - st.expected_b, st.expected_b - bottom) >= 0.999 * params.threshold * spread
    out: NDArray[np.bool_] = reach.any(axis=1)
    return out


def _window_scores(
    states: DayStates,
    window: Sequence[tuple[date, DayState | None]],
    raws: dict[date, NDArray[np.float32]],
    keys: Sequence[Key],
    width: int,
) -> tuple[Array, Array, Array, Array | None]:
    """Values, expected values, scores and thresholds of ``keys`` over the window's days, side
    by side, cut at column ``width``."""
    g, params = states.g, states.params
    n = len(keys)
    columns: list[tuple[Array, Array, Array, Array | None]] = []
    for i, (d, st) in enumerate(window):
        cut = min(g.cols, width - i * g.cols)
        if cut <= 0:
            break
        if st is None:
            nan = np.full((n, cut), np.nan)
            columns.append((nan, nan, nan, np.full((n, cut), params.threshold)))
            continue
        x = _take(raws[d], st.rows(keys))
        prev, gap = states.previous(d)
        zd, td, _acc, ed = scores(x, st.subset(keys), prev, params, g, gap_days=gap)
        columns.append((x[:, :cut], ed[:, :cut], zd[:, :cut], td[:, :cut] if td is not None else None))

    def joined(k: int) -> Array:
        parts = [p for c in columns if (p := c[k]) is not None]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    return joined(0), joined(1), joined(2), joined(3) if params.tail_factor > 0 else None


def window_anomalies(
    states: DayStates,
    start: datetime,
    end: datetime,
    hi: datetime,
    *,
    services: Sequence[str] | None,
    online: bool,
    chunk: int = 256,
) -> list[Anomaly]:
    """Anomalies overlapping ``[start, end)`` from the scores of the whole days from
    :data:`WINDOW_BACK_S` before ``start`` up to ``hi`` (data at or after ``hi`` ignored)."""
    from whatchanged.engine.detect import _anomaly, _dt, intervals_of

    g, params = states.g, states.params
    first = _day_floor(start - timedelta(seconds=WINDOW_BACK_S))
    last = _day_floor(hi - timedelta(microseconds=1))
    if states.days:
        first = max(first, states.days[0])
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    present = [d for d in days if d in states.by_day]
    if not present:
        return []
    window = [(d, states.state(d)) for d in days]
    lo = datetime(first.year, first.month, first.day, tzinfo=UTC)
    # up to hi, and not past the last day with data
    width = (days.index(present[-1]) + 1) * g.cols
    end_col = min(width, math.ceil((hi - lo).total_seconds() / g.step_s))
    width = end_col
    first_col = max(0, math.floor((start - lo).total_seconds() / g.step_s))
    # the raw values of each day, rows as its state's; the series that may hold an anomaly
    raws: dict[date, NDArray[np.float32]] = {}
    maybe: set[Key] = set()
    for i, (d, st) in enumerate(window):
        if st is None or i * g.cols >= width:
            continue
        day_keys, x = states.raw(d)
        if day_keys != st.keys:  # the state may carry series without data that day
            rows_x = {k: r for r, k in enumerate(day_keys)}
            x = _take(x, np.array([rows_x.get(k, -1) for k in st.keys], dtype=np.intp))
        maybe.update(k for k, c in zip(st.keys, _candidates(x, st, g, params), strict=True) if c)
        raws[d] = x.astype(np.float32)  # the values as stored: exact, and half the memory
    keys = sorted(maybe)
    if services is not None:
        wanted = set(services)
        keys = [k for k in keys if k[0] in wanted]
    lo_us = int(lo.timestamp() * 1_000_000)
    step_us = int(g.step_s * 1_000_000)
    found: list[Anomaly] = []
    for a in range(0, len(keys), chunk):  # a chunk of series at a time: memory stays bounded
        part = keys[a : a + chunk]
        values, expected, z, thr = _window_scores(states, window, raws, part, width)
        intervals = intervals_of(
            values,
            values - expected,
            z,
            thr,
            expected,
            params=params,
            step_s=g.step_s,
            online=online,
            first_col=first_col,
        )
        for iv in intervals:
            s, m = part[iv.row]
            an = _anomaly(iv, s, m, lambda c: _dt(lo_us + c * step_us), step_us, online)
            if an.start < end:
                found.append(an)
    found.sort(key=lambda x: (x.onset, x.service, x.metric))
    return found
