"""The contextual detector as a stream: many series at once, chunk after chunk.

:mod:`whatchanged.engine.contextual` defines the contextual score (novelty of
the recent pattern, level, variability, their combination and the alarms).
This module computes exactly that score **incrementally** and **for many series
at once**: arrays are ``[series, step]``, a chunk of new steps is folded into a
:class:`Carry` that holds all a later chunk needs (the tail of the values the
lags reach, block summaries for the calibrations, the alarm state).  One
series scored in one chunk (``detect --input``, NAB) and the fleet scored day
by day (:mod:`whatchanged.engine.ctxchain`) run the same code, and a test
checks that cutting a series into chunks changes nothing.

What makes it cheap enough for the fleet:

* the novelty compares the context ending at ``t`` with the contexts ending at
  ``t - L`` for each lag ``L`` of a fixed set, **lag by lag** along the time axis
  (a difference, a square, a moving sum, the running k smallest) — no matrix of
  all pairs;
* every calibration (the recent maximum of a score, its median, the long gate's
  maximum) is taken over whole **blocks** of steps aligned on the global step
  index: :data:`CALIBRATION_BLOCKS` blocks of ``C // 50`` steps for a
  calibration of ``C`` steps, so the carry keeps 50-odd block summaries per
  score instead of thousands of steps;
* for many series (:data:`COMPILED_ROWS`) the inner loops (the novelty, the long gate's
  ranking, the gated ratios and their combination) are compiled with numba
  (:mod:`whatchanged.engine.ctxkernels`), with the same operations in the same order as the
  numpy passes that score a few series (:mod:`whatchanged.engine.ctxnumpy`): the same
  figures to the bit; many series are scored in two threads, the fine scale in one, the rest
  in the other.

Steps are numbered globally (``g``: the step index since the Unix epoch for the
fleet, ``origin // step`` + column for one series) so that the blocks fall at
the same places whatever the chunks.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any

import bottleneck as bn
import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.intervals import _onset

if TYPE_CHECKING:
    from whatchanged.engine.contextual import ContextParams
    from whatchanged.engine.intervals import DetectParams

Array = NDArray[np.float64]
#: the block number of "no block" (never leaves a window)
NEVER = np.iinfo(np.int64).max // 4
#: every calibration window is this many blocks (of ``C // CALIBRATION_BLOCKS`` steps)
CALIBRATION_BLOCKS = 50


def _cat(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    return b if a.shape[1] == 0 else np.concatenate([a, b], axis=1)


# --------------------------------------------------------------------------- calibration


@dataclass
class Calib:
    """Block summaries of one score stream, for its calibrations.

    ``ref(t)``: the maximum of the score over the last ``n`` whole blocks of ``size`` steps
    that end at or before ``t - delay``; ``floor(t)``: the median of those blocks' medians;
    ``count(t)``: how many finite scores those and all earlier blocks held (the warm-up).
    """

    size: int
    n: int
    delay: int
    ring: int
    rank: int  # ``ref`` is the rank-th largest block maximum (1: the maximum)
    medians: bool  # keep the blocks' medians (the floor); else ``floor`` is NaN
    tail: Array  # [S, g0 % size] the scores of the current, incomplete block
    bmax: Array  # [S, ring] the maxima of the last ``ring`` whole blocks (NaN: none)
    bmed: Array  # [S, ring] their medians
    cum: Array  # [S, ring - n] finite scores through each of the last whole blocks (the warm-up)
    # rank > 1: the ``rank`` largest block maxima of the window ending at the last whole block
    # (0: none; their block numbers, ``NEVER`` for none) and the reference of the last blocks
    top: Array
    top_block: NDArray[np.int64]
    refs: Array  # [S, ring - n] the rank-th largest for the windows ending at the last blocks

    @classmethod
    def empty(
        cls,
        rows: int,
        calibration: int,
        delay: int,
        g0: int,
        *,
        medians: bool = True,
        size: int | None = None,
        rank: int = 1,
    ) -> Calib:
        """``size`` steps a block (default: ``calibration // CALIBRATION_BLOCKS``)."""
        size = size or max(1, calibration // CALIBRATION_BLOCKS)
        n = max(1, -(-calibration // size))
        ring = n + delay // size + 3
        nan = np.full((rows, ring), np.nan)
        return cls(
            size,
            n,
            delay,
            ring,
            rank,
            medians,
            np.full((rows, g0 % size), np.nan),
            nan,
            nan.copy() if medians else np.zeros((rows, 0)),
            np.zeros((rows, ring - n)),
            np.zeros((rows, rank if rank > 1 else 0)),
            np.full((rows, rank if rank > 1 else 0), NEVER, dtype=np.int64),
            np.zeros((rows, ring - n if rank > 1 else 0)),
        )

    def push(self, v: Array, g0: int) -> tuple[Array, Array, Array]:
        """Fold the scores ``v`` (``[S, n]`` from global step ``g0``) in; return ``ref``,
        ``floor`` and ``count`` at each of those steps."""
        rows, n = v.shape
        b, tb = self.size, self.tail.shape[1]
        ext = _cat(self.tail, v)
        nb = ext.shape[1] // b
        blocks = ext[:, : nb * b].reshape(rows, nb, b)
        with np.errstate(invalid="ignore"):
            new_max = bn.nanmax(blocks, axis=2) if nb else np.zeros((rows, 0))
        new_count = np.isfinite(blocks).sum(axis=2).astype(np.float64)
        hmax = _cat(self.bmax, new_max)
        first_block = (g0 - tb) // b - self.ring  # the global block number of column 0 of the history
        # the last block each step may use: it ends at or before t - delay
        t = g0 + np.arange(n)
        j = (t - self.delay + 1) // b - 1 - first_block
        recent = self.ring - self.n  # the last blocks a step may use are among these
        cum = _cat(self.cum, self.cum[:, -1:] + np.cumsum(new_count, axis=1))
        # np.take, not cum[:, j]: that is column-major, and every pass over it later slow
        count = np.take(cum, j - self.n, axis=1)
        self.cum = cum[:, cum.shape[1] - recent :]
        if self.rank <= 1:
            ref = np.take(bn.move_max(hmax, self.n, axis=1, min_count=1), j, axis=1)
        else:  # the rank-th largest of the window's block maxima (NaN and missing ranks: 0)
            refs = _cat(self.refs, self._ranked(hmax, first_block, nb))
            ref = np.take(refs, j - self.n, axis=1)
            self.refs = refs[:, refs.shape[1] - recent :]
        keep = hmax.shape[1] - self.ring
        if self.medians:
            new_med = bn.nanmedian(blocks, axis=2) if nb else np.zeros((rows, 0))
            hmed = _cat(self.bmed, new_med)
            floor = np.take(bn.move_median(hmed, self.n, axis=1, min_count=1), j, axis=1)
            self.bmed = hmed[:, keep:]
        else:
            floor = np.full_like(ref, np.nan)
        self.bmax = hmax[:, keep:]
        self.tail = ext[:, nb * b :]
        return ref, floor, count

    def _ranked(self, hist: Array, first_block: int, nb: int) -> Array:
        """The rank-th largest of the window ending at each of the ``nb`` new blocks (the last
        columns of ``hist``, whose column 0 is block ``first_block``; NaN counts 0), keeping the
        ``rank`` largest of the window as it moves: a new block's maximum replaces the smallest
        of them when larger; where one of them leaves the window, the window is sorted afresh
        (rarely: a block is among a row's ``rank`` largest about ``rank / n`` of the time).
        Compiled (:func:`whatchanged.engine.ctxkernels.ranked_rows`) for many series."""
        if not _compiled(hist.shape[0]):
            from whatchanged.engine.ctxnumpy import ranked

            return ranked(hist, first_block, nb, self.n, self.top, self.top_block)
        from whatchanged.engine.ctxkernels import ranked_rows

        out = np.empty((hist.shape[0], nb))
        self.top = np.ascontiguousarray(self.top)
        self.top_block = np.ascontiguousarray(self.top_block)
        ranked_rows(np.ascontiguousarray(hist), first_block, nb, self.n, self.top, self.top_block, out)
        return out


def gated_ratio(
    a: Array,
    ref: Array,
    floor: Array,
    count: Array,
    top: Array | None,
    *,
    warmup: int,
    novelty_floor: float,
    long_gate: float,
    strong_ratio: float | None = None,
    strong_gate: float = 0.0,
    weight: float = 1.0,
) -> Array:
    """``a / ref`` where the gates let it count (see :mod:`whatchanged.engine.contextual`), else 0,
    times ``weight``: ``a`` at least ``novelty_floor`` × ``floor`` and ``long_gate`` × ``top``
    (the long window's reference; none yet: 0) — or, with ``strong_ratio``, a ratio of at least
    that and ``a`` at least ``strong_gate`` × ``top``.  For many series one compiled pass
    (:func:`whatchanged.engine.ctxkernels.gated_into`); all arrays of one shape."""
    if not _compiled(a.shape[0]):
        from whatchanged.engine import ctxnumpy

        return ctxnumpy.gated_ratio(
            a,
            ref,
            floor,
            count,
            top,
            warmup=warmup,
            novelty_floor=novelty_floor,
            long_gate=long_gate,
            strong_ratio=strong_ratio,
            strong_gate=strong_gate,
            weight=weight,
        )
    from whatchanged.engine.ctxkernels import gated_into

    def c(v: Array) -> Array:
        out: Array = np.ascontiguousarray(v, dtype=np.float64)
        return out

    out = np.empty(a.shape)
    gated_into(
        c(a),
        c(ref),
        c(floor),
        c(count),
        c(top) if top is not None else np.zeros((a.shape[0], 0)),
        float(warmup),
        float(novelty_floor),
        float(long_gate),
        strong_ratio is not None,
        float(strong_ratio or 0.0),
        float(strong_gate),
        float(weight),
        out,
    )
    return out


def novelty_ratio(
    a: Array,
    refs: tuple[Array, Array, Array, Array | None],
    p: ContextParams,
    warmup: int,
    weight: float = 1.0,
) -> Array:
    """A novelty's gated ratio × ``weight`` (``refs``: what :meth:`NoveltyStream.push` returns
    beside it)."""
    return gated_ratio(
        a,
        *refs,
        warmup=warmup,
        novelty_floor=p.novelty_floor,
        long_gate=p.long_gate,
        strong_ratio=p.strong_ratio,
        strong_gate=p.strong_gate,
        weight=weight,
    )


# --------------------------------------------------------------------------- novelty


def lag_set(window: int, history: int, *, recent: int, stride: int = 0) -> NDArray[np.int64]:
    """The lags the novelty compares a context with: every lag from ``window`` (contexts that do
    not overlap) to ``recent``, then every ``stride``-th up to ``history`` (0: none)."""
    lags = set(range(window, min(recent, history) + 1))
    if stride > 0:
        lags.update(range(max(recent, window), history + 1, stride))
    return np.array(sorted(lags), dtype=np.int64)


#: this many series or more are scored with the compiled loops (:mod:`ctxkernels`), fewer with
#: the numpy passes (:mod:`ctxnumpy`): the same figures to the bit, but numba's import and the
#: loading of its loops cost a new process about 0.3 s, more than a few series' loops
COMPILED_ROWS = 64


def _compiled(rows: int) -> bool:
    return rows >= COMPILED_ROWS


#: threads a chunk of many series is scored in: the calling one and ``THREADS - 1`` more (at
#: most 2: the fleet's machines have 2 cores)
THREADS = min(2, os.cpu_count() or 1)
#: fewer series than this a thread: one thread does all (handing work over costs more)
ROWS_PER_THREAD = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _helper() -> ThreadPoolExecutor:
    """The second thread.  Work handed to it never waits for other work handed to it (no
    deadlock however many callers share it)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, THREADS - 1), thread_name_prefix="ctxstream")
        return _pool


def _threads(rows: int) -> int:
    return max(1, min(THREADS, rows // ROWS_PER_THREAD))


def lag_novelty(ext: Array, n: int, lags: NDArray[np.int64], window: int, k: int) -> Array:
    """Mean distance of the contexts ending at the last ``n`` columns of ``ext`` to their ``k``
    nearest contexts ending ``L`` steps before, ``L`` in ``lags`` (NaN: fewer than ``k`` of them
    known; a context holding NaN — before the first value — is never near).  ``ext`` holds at
    least ``max(lags) + window - 1`` columns before those ``n``.

    Lag by lag: a difference, a square, the window's sum by pairs of doubling width (no running
    sum, so a large value leaving the window leaves no rounding error behind it) and a running
    minimum (``k = 1``) or a sorted stack of the ``k`` smallest, in float64: for many series
    compiled with numba (:mod:`whatchanged.engine.ctxkernels`), one series at a time, the series
    shared among :data:`THREADS` threads; for a few numpy passes
    (:mod:`whatchanged.engine.ctxnumpy`), the same figures."""
    return lag_novelty_tail(ext, ext[:, :0], n, lags, window, k, 0)[0]


def lag_novelty_tail(
    head: NDArray[Any],
    new: NDArray[Any],
    n: int,
    lags: NDArray[np.int64],
    window: int,
    k: int,
    keep: int,
    *,
    threads: int | None = None,
) -> tuple[Array, NDArray[Any]]:
    """:func:`lag_novelty` of ``ext``, the columns of ``head`` then those of ``new`` (a carried
    tail and a chunk of the same dtype: no copy into one array), and the last ``keep`` columns
    of ``ext`` (the next tail); ``threads``: 1 in work already handed to the second thread."""
    if k < 1 or window < 1:
        raise ValueError(f"lag_novelty needs k >= 1 and window >= 1 (k={k}, window={window})")
    rows = head.shape[0]
    width = head.shape[1] + new.shape[1]
    out = np.full((rows, n), np.nan)
    if n == 0 or rows == 0:
        ext = _cat(head, new)
        return out, ext[:, ext.shape[1] - keep :].copy()
    if head.dtype not in (np.float32, np.float64):
        head = head.astype(np.float64)
    head = np.ascontiguousarray(head)
    new = np.ascontiguousarray(new, dtype=head.dtype)
    if not 0 <= keep <= width or not n <= width:
        raise ValueError(f"lag_novelty: {n} steps and a tail of {keep} from {width} columns")
    if not _compiled(rows):
        from whatchanged.engine import ctxnumpy

        ext = _cat(head, new) if new.shape[1] else head
        return ctxnumpy.lag_novelty(ext, n, lags, window, k), ext[:, width - keep :]
    from whatchanged.engine.ctxkernels import novelty_rows

    lags = np.ascontiguousarray(lags, dtype=np.int64)
    tail = np.empty((rows, keep), dtype=head.dtype)
    threads = min(threads or THREADS, _threads(rows))
    cuts = [rows * i // threads for i in range(threads + 1)]
    parts = list(itertools.pairwise(cuts))
    jobs = [
        _helper().submit(novelty_rows, head, new, n, lags, window, k, lo, hi, out, tail)
        for lo, hi in parts[1:]
    ]
    lo, hi = parts[0]
    novelty_rows(head, new, n, lags, window, k, lo, hi, out, tail)  # the first part here
    for job in jobs:
        job.result()
    return out, tail


def variability(changes: Array, window: int) -> Array:
    """How much a series moves from step to step: the mean of the last ``window`` absolute
    changes (``changes``: ``[S, T]``), the largest left out — one jump (a level shift, its end,
    the end of a gap) is no change of variability.  NaN for the first ``window - 1`` steps."""
    total = bn.move_sum(changes, window, axis=1, min_count=window)
    out: Array = (total - bn.move_max(changes, window, axis=1, min_count=window)) / (window - 1)
    return out


def forward_fill(x: Array, last: Array) -> Array:
    """Missing steps carry the last value seen (``last``: before the chunk; NaN: none yet)."""
    v = _cat(last[:, None], x)
    ok = ~np.isnan(v)
    idx = np.where(ok, np.arange(v.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out: Array = np.take_along_axis(v, idx, axis=1)[:, 1:]
    return out


@dataclass
class NoveltyStream:
    """The novelty of one scale and its gated ratio, carried from chunk to chunk."""

    window: int
    k: int
    lags: NDArray[np.int64]
    filled_tail: Array  # [S, max lag + window - 1]
    missing_tail: NDArray[np.bool_]  # [S, window + 2]
    short: Calib
    long: Calib | None
    age: Array  # [S] steps seen (the long reference leaves out the first ``gate_warmup``)
    gate_warmup: int

    @classmethod
    def empty(
        cls,
        rows: int,
        *,
        window: int,
        k: int,
        lags: NDArray[np.int64],
        calibration: int,
        delay: int,
        long_calibration: int | None,
        g0: int,
        long_block: int = 12,
        long_rank: int = 1,
        gate_warmup: int = 0,
    ) -> NoveltyStream:
        width = int(lags.max()) + window - 1
        return cls(
            window,
            k,
            lags,
            np.full((rows, width), np.nan, dtype=np.float32),
            np.ones((rows, window + 2), dtype=bool),
            Calib.empty(rows, calibration, delay, g0),
            Calib.empty(rows, long_calibration, delay, g0, medians=False, size=long_block, rank=long_rank)
            if long_calibration
            else None,
            np.zeros(rows),
            gate_warmup,
        )

    def push(
        self, filled: Array, missing: NDArray[np.bool_], g0: int, threads: int | None = None
    ) -> tuple[Array, tuple[Array, Array, Array, Array | None]]:
        """The novelty of each new step and its calibrations (``ref, floor, count, long_ref``);
        ``threads``: as :func:`lag_novelty_tail`'s."""
        w, n = self.window, filled.shape[1]
        # the values as float32 (as the warehouse stores them): the carried tail keeps them exactly
        new = filled.astype(np.float32)
        old = self.filled_tail
        # the first step of each new step's context (NaN: before the first value)
        first = _cat(old[:, old.shape[1] - w + 1 :], new)[:, :n]
        a, self.filled_tail = lag_novelty_tail(
            old, new, n, self.lags, w, self.k, old.shape[1], threads=threads
        )
        # a context with more than a third of its steps filled in, or holding a run of three
        # missing steps, or reaching before the first value, is not scored (no alarm from a gap)
        m = _cat(self.missing_tail, missing).astype(np.int64)
        c = np.cumsum(m, axis=1)
        lead = m.shape[1] - n
        filled_in = c[:, lead:] - c[:, lead - w : m.shape[1] - w]
        run = m[:, 2:] & m[:, 1:-1] & m[:, :-2]  # run[j]: steps j..j+2 all missing
        rc = np.cumsum(run, axis=1)
        # runs ending inside the context: ending columns lead-w+1 .. lead+i  ->  run index end-2
        hi = rc[:, lead - 2 :]
        lo = rc[:, lead - 2 - w : rc.shape[1] - w]
        bad = (filled_in * 3 > w) | (hi - lo > 0) | np.isnan(first)
        a = np.where(bad, np.nan, a)
        self.missing_tail = _cat(self.missing_tail, missing)[:, -self.missing_tail.shape[1] :]
        ref, floor, count = self.short.push(a, g0)
        long_ref = None
        if self.long is not None:
            young = self.age[:, None] + np.arange(n)[None, :] < self.gate_warmup
            long_ref = self.long.push(np.where(young, np.nan, a), g0)[0]
        self.age = self.age + n
        return a, (ref, floor, count, long_ref)


# --------------------------------------------------------------------------- the carry


@dataclass
class Coarse:
    """One coarse scale: the novelty of the means of ``factor`` steps, known at each block's
    last step and held until the next block's."""

    factor: int
    weight: float
    stream: NoveltyStream
    tail: Array  # [S, g % factor] the current block's filled values
    missing: NDArray[np.bool_]
    held: Array  # [S] the latest whole block's weighted ratio


@dataclass
class Pending:
    """An alarm whose anomaly goes on at the end of the chunk."""

    alarm: int  # global step
    onset: int
    up: bool
    baseline: float
    peak: float
    observed: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Event:
    """One alarm of one series (global steps); ``end`` None while its anomaly goes on."""

    row: int
    onset: int
    alarm: int
    end: int | None
    up: bool
    baseline: float
    peak: float
    observed: float


@dataclass
class Carry:
    """All a later chunk needs, for ``rows`` series; ``g`` is the next global step."""

    g: int
    last: Array  # last value seen (forward fill)
    fine: NoveltyStream | None
    coarse: list[Coarse]
    var_tail: Array  # [S, spread_window] the last step-to-step changes
    var_calib: Calib | None
    var_long: Calib | None
    z_calib: Calib
    resid_tail: Array  # [S, onset_back] the last residuals, |z| and expected values (onsets)
    absz_tail: Array
    exp_tail: Array
    allowed: NDArray[np.int64]  # the first global step a new alarm may be raised at
    prev_end: NDArray[np.int64]  # where the previous alarm's anomaly ended
    pending: dict[int, Pending]


#: array fields of a carry that are settings, not one row per series
_NOT_ROWS = {"lags"}


def copy_rows(dst: Carry, src: Carry, dst_rows: NDArray[np.intp], src_rows: NDArray[np.intp]) -> None:
    """``dst``'s series at ``dst_rows`` take the state of ``src``'s at ``src_rows`` (two carries
    of the same settings and step: how a day's carry follows its series into the next day's
    rows)."""
    _copy_arrays(dst, src, dst_rows, src_rows)
    where = dict(zip(src_rows.tolist(), dst_rows.tolist(), strict=True))
    dst.pending = {where[r]: pend for r, pend in src.pending.items() if r in where}


def _copy_arrays(dst: Any, src: Any, dst_rows: NDArray[np.intp], src_rows: NDArray[np.intp]) -> None:
    for f in fields(dst):
        a, b = getattr(dst, f.name), getattr(src, f.name)
        if is_dataclass(a):
            _copy_arrays(a, b, dst_rows, src_rows)
        elif isinstance(a, list):
            for x, y in zip(a, b, strict=True):
                _copy_arrays(x, y, dst_rows, src_rows)
        elif isinstance(a, np.ndarray) and f.name not in _NOT_ROWS and a.ndim >= 1:
            a[dst_rows] = b[src_rows]


def scaled(n: int, scale: int, minimum: int = 1) -> int:
    return max(minimum, n // scale)


def new_carry(rows: int, g0: int, p: ContextParams) -> Carry:
    """An empty carry for ``rows`` series starting at global step ``g0`` (``p``: ContextParams)."""
    fine = None
    if p.fine_weight > 0:
        fine = NoveltyStream.empty(
            rows,
            window=p.window,
            k=p.neighbours,
            lags=lag_set(p.window, p.history, recent=p.recent, stride=p.stride),
            calibration=p.calibration,
            delay=p.delay,
            long_calibration=p.long_calibration if p.long_gate > 0 else None,
            g0=g0,
            long_block=p.long_block,
            long_rank=p.long_rank,
            gate_warmup=p.gate_warmup,
        )
    coarse = []
    for c, weight in ((p.coarse, p.coarse_weight), (p.coarse2, p.coarse2_weight)):
        if c <= 1 or weight <= 0:
            continue
        stream = NoveltyStream.empty(
            rows,
            window=p.window,
            k=p.coarse_neighbours,
            lags=lag_set(
                p.window, scaled(p.history, c, 2 * p.window), recent=p.coarse_recent, stride=p.coarse_stride
            ),
            calibration=scaled(p.calibration, c, 10),
            delay=scaled(p.delay, c),
            long_calibration=scaled(p.long_calibration, c, 10) if p.long_gate > 0 else None,
            g0=g0 // c,
            long_block=scaled(p.long_block, c),
            long_rank=p.long_rank,
            gate_warmup=p.gate_warmup // c,
        )
        part = g0 % c
        coarse.append(
            Coarse(
                c,
                weight,
                stream,
                np.full((rows, part), np.nan),
                np.ones((rows, part), dtype=bool),
                np.zeros(rows),
            )
        )
    var_calib = var_long = None
    if p.spread_weight > 0:
        var_calib = Calib.empty(rows, p.calibration, p.delay, g0)
        var_long = (
            Calib.empty(rows, p.long_calibration, p.delay, g0, medians=False, size=p.long_block)
            if p.spread_long_gate > 0
            else None
        )
    return Carry(
        g=g0,
        last=np.full(rows, np.nan),
        fine=fine,
        coarse=coarse,
        var_tail=np.full((rows, p.spread_window), np.nan),
        var_calib=var_calib,
        var_long=var_long,
        z_calib=Calib.empty(rows, p.z_calibration, p.delay, g0, medians=False),
        resid_tail=np.full((rows, p.onset_back), np.nan),
        absz_tail=np.full((rows, p.onset_back), np.nan),
        exp_tail=np.full((rows, p.onset_back), np.nan),
        allowed=np.full(rows, np.iinfo(np.int64).min // 2, dtype=np.int64),
        prev_end=np.full(rows, np.iinfo(np.int64).min // 2, dtype=np.int64),
        pending={},
    )


# --------------------------------------------------------------------------- one chunk


def combine(ratios: list[Array], second_weight: float) -> Array:
    """The largest ratio plus ``second_weight`` × the second largest (NaN counts 0, infinity
    1e12); for many series one compiled pass a ratio
    (:func:`whatchanged.engine.ctxkernels.combine_into`)."""
    if not _compiled(ratios[0].shape[0]):
        from whatchanged.engine import ctxnumpy

        return ctxnumpy.combine(ratios, second_weight)
    from whatchanged.engine.ctxkernels import combine_into

    top = np.full(ratios[0].shape, -np.inf)
    second = np.zeros_like(top)
    for r in ratios:
        combine_into(top, second, np.ascontiguousarray(r, dtype=np.float64))
    if second_weight:
        top += second_weight * second
    return top


@dataclass(frozen=True)
class Chunk:
    """What :func:`push` returns for the new steps: the score and the alarms' events."""

    score: Array
    events: list[Event]


def push(carry: Carry, x: Array, absz: Array, resid: Array, expected: Array, p: ContextParams) -> Chunk:
    """Score the new steps ``x`` (``[S, n]``, NaN: missing) of the series in ``carry``; ``absz``,
    ``resid`` and ``expected`` are the median baseline's ``|z|``, ``x - E`` and ``E`` at the same
    steps.  ``carry`` is updated in place to the end of the chunk."""
    n = x.shape[1]
    g0 = carry.g
    missing = np.isnan(x)
    filled = forward_fill(x, carry.last)
    ratios: list[Array] = []
    # many series: the fine scale (the most work) in the second thread, the rest here
    alone = _threads(x.shape[0]) == 1
    fine = None
    if carry.fine is not None and not alone:
        fine = _helper().submit(carry.fine.push, filled, missing, g0, 1)
    elif carry.fine is not None:
        a, refs = carry.fine.push(filled, missing, g0)
        ratios.append(novelty_ratio(a, refs, p, p.warmup, p.fine_weight))
    ratios.extend(_coarse(sc, filled, missing, g0, p, None if alone else 1) for sc in carry.coarse)
    ref_z, _, count_z = carry.z_calib.push(absz, g0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rz = np.where(count_z >= p.warmup, absz / ref_z, np.nan)
        ratios.append(np.where(absz >= p.z_min, p.z_weight * rz, np.nan))
    if carry.var_calib is not None:
        d = np.abs(np.diff(_cat(carry.last[:, None], filled), axis=1))
        ext = _cat(carry.var_tail, d)
        w = p.spread_window
        v = variability(ext, w)[:, -n:]
        carry.var_tail = ext[:, -w:]
        ref, floor, count = carry.var_calib.push(v, g0)
        long_ref_v = carry.var_long.push(v, g0)[0] if carry.var_long is not None else None
        ratios.append(
            gated_ratio(
                v,
                ref,
                floor,
                count,
                long_ref_v,
                warmup=p.warmup,
                novelty_floor=p.spread_floor,
                long_gate=p.spread_long_gate,
                weight=p.spread_weight,
            )
        )
    carry.last = np.where(np.isnan(filled[:, -1]), carry.last, filled[:, -1]) if n else carry.last
    if fine is not None:
        a, refs = fine.result()
        ratios.insert(0, novelty_ratio(a, refs, p, p.warmup, p.fine_weight))
    score = combine(ratios, p.second_weight)
    events = _alarms(carry, score, x, absz, resid, expected, p, g0)
    if p.onset_back:
        back = p.onset_back
        carry.resid_tail = _cat(carry.resid_tail, resid)[:, -back:]
        carry.absz_tail = _cat(carry.absz_tail, absz)[:, -back:]
        carry.exp_tail = _cat(carry.exp_tail, expected)[:, -back:]
    carry.g = g0 + n
    return Chunk(score, events)


def _coarse(
    sc: Coarse, filled: Array, missing: NDArray[np.bool_], g0: int, p: ContextParams, threads: int | None
) -> Array:
    """The weighted ratio of one coarse scale at each new step (carry updated)."""
    c = sc.factor
    rows, n = filled.shape
    lead = sc.tail.shape[1]
    ext = _cat(sc.tail, filled)
    mext = _cat(sc.missing, missing)
    nb = ext.shape[1] // c
    held = np.empty((rows, n))
    if nb:
        bx = ext[:, : nb * c].reshape(rows, nb, c).mean(axis=2)
        bm = mext[:, : nb * c].reshape(rows, nb, c).sum(axis=2) * 3 > c
        ca, refs = sc.stream.push(bx, bm, (g0 - lead) // c, threads)
        rc = novelty_ratio(ca, refs, p, scaled(p.warmup, c, 10), sc.weight)
        rc = np.nan_to_num(rc, nan=0.0)
        # each block's ratio is known at its last step and holds until the next block's
        ends = (np.arange(nb) + 1) * c - 1 - lead  # chunk columns
        which = np.searchsorted(ends, np.arange(n), side="right") - 1
        held[:] = np.where(which[None, :] >= 0, np.take(rc, np.maximum(which, 0), axis=1), sc.held[:, None])
        sc.held = rc[:, -1]
    else:
        held[:] = sc.held[:, None]
    sc.tail, sc.missing = ext[:, nb * c :], mext[:, nb * c :]
    return held


OBSERVED = 12  # an alarm's observed value: the median of its first steps


def _alarms(
    carry: Carry,
    score: Array,
    x: Array,
    absz: Array,
    resid: Array,
    expected: Array,
    p: ContextParams,
    g0: int,
) -> list[Event]:
    """The alarms of the chunk and the ends of the anomalies that go on (carry updated)."""
    _rows, n = score.shape
    with np.errstate(invalid="ignore"):
        hit = score >= p.threshold
        calm = ~((score >= 1.0) | (absz >= p.exit_z))
    rext = _cat(carry.resid_tail, resid)
    zext = _cat(carry.absz_tail, absz)
    eext = _cat(carry.exp_tail, expected)
    lead = carry.resid_tail.shape[1]
    events: list[Event] = []
    busy = set(np.flatnonzero(hit.any(axis=1)).tolist()) | set(carry.pending)
    for r in sorted(busy):
        i = 0  # next chunk column to look at
        pend = carry.pending.pop(r, None)
        while True:
            if pend is not None:  # an anomaly goes on: its end is its first calm step
                after = np.flatnonzero(calm[r, i:])
                stop = i + int(after[0]) if after.size else n
                seg = absz[r, i:stop]
                if np.isfinite(seg).any():
                    pend.peak = max(pend.peak, float(np.nanmax(seg)))
                room = OBSERVED - len(pend.observed)
                if room > 0:
                    pend.observed += [v for v in x[r, i : min(stop, i + room)].tolist() if v == v]
                if not after.size:
                    carry.pending[r] = pend
                    events.append(_event(r, pend, None))
                    break
                end = g0 + stop
                events.append(_event(r, pend, end))
                carry.prev_end[r] = end
                carry.allowed[r] = max(int(carry.allowed[r]), end + p.rest)
                pend = None
                i = stop
            nxt = np.flatnonzero(hit[r, i:] & (g0 + np.arange(i, n) >= carry.allowed[r]))
            if not nxt.size:
                break
            t = i + int(nxt[0])
            lo = max(int(carry.prev_end[r]) - g0, t - p.onset_back, -lead)
            onset = _onset(rext[r], t + lead, lo + lead, t + lead) - lead if t > lo else t
            seg_r = rext[r, onset + lead : t + lead + 1]
            up = bool(np.nansum(seg_r) >= 0) if np.isfinite(seg_r).any() else True
            pend = Pending(g0 + t, g0 + onset, up, float(eext[r, onset + lead]), 0.0)
            seg = zext[r, onset + lead : t + lead]
            if np.isfinite(seg).any():
                pend.peak = float(np.nanmax(seg))
            carry.allowed[r] = g0 + t + p.rest + 1
            i = t
    return events


def _event(row: int, pend: Pending, end: int | None) -> Event:
    obs = float(np.median(pend.observed)) if pend.observed else float("nan")
    return Event(row, pend.onset, pend.alarm, end, pend.up, pend.baseline, round(pend.peak, 3), obs)


def params_key(p: ContextParams) -> dict[str, Any]:
    """The settings as a JSON-able dict (cache keys)."""
    return {f.name: getattr(p, f.name) for f in fields(p)}


def series_inputs(grid: Array, step_s: float, base: DetectParams) -> tuple[Array, Array, Array]:
    """``|z|``, ``x - E`` and ``E`` of one regular series under the median baseline."""
    b = base.baseline().fit(grid[None, :], step_s=step_s).result_
    expected = b.expected[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (grid - expected) / b.spread[0]
    absz = np.where(np.isfinite(z), np.abs(z), np.nan)
    return absz, grid - expected, expected


def score_series(grid: Array, g0: int, step_s: float, p: ContextParams, base: DetectParams) -> Chunk:
    """One series scored in one chunk (``grid``: its regular values, NaN missing)."""
    absz, resid, expected = series_inputs(grid, step_s, base)
    carry = new_carry(1, g0, p)
    return push(carry, grid[None, :], absz[None, :], resid[None, :], expected[None, :], p)
