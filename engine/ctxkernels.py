"""The stream's inner loops, compiled with numba (imported by :mod:`ctxstream` only when a chunk
is scored, so that a process that never scores one does not pay numba's import, about 0.15 s).

The novelty (:func:`novelty_rows`), one series at a time: its values (NaN as +inf, as before)
in one float64 row, then lag by lag a difference, a square, the window's sums by pairs of
doubling width and the running ``k`` smallest, each a short loop over arrays that stay in the
first-level cache.  The arithmetic is
that of the numpy passes it replaced, operation for operation (the same pairs summed in the
same order, NaN propagated as ``np.minimum`` does), so the results are the same to the bit.
The other loops (:func:`ranked_rows`, :func:`gated_into`, :func:`combine_into`) each replace a
few numpy passes over ``[series, step]`` arrays with one, with the same operations.

The compiled code is cached on disk (``cache=True``): numba writes it beside this file, or,
where the package's folder is not writable, under the user's cache folder (numba's own
fallback; ``NUMBA_CACHE_DIR`` overrides both).  Where neither is writable the loops are
compiled in each process that scores a chunk (about 3 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit
from numpy.typing import NDArray

F = TypeVar("F", bound=Callable[..., Any])

#: what ``np.nan_to_num`` makes of an infinite value (NaN itself becomes +inf: never near)
BIG = float(np.finfo(np.float64).max)


def _jit(f: F) -> F:
    # error_model numpy: a division by zero gives inf or NaN as in numpy, not an exception
    try:
        return cast(F, njit(cache=True, nogil=True, error_model="numpy")(f))
    except RuntimeError:  # no folder to cache in (numba: "no locator available"): compiled anew
        return cast(F, njit(cache=False, nogil=True, error_model="numpy")(f))


@_jit
def _plan(window: int) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """The parts whose sum is a window's sum: (level, start) of each, level ``l`` holding the
    sums of ``2**l`` steps; and the highest level needed."""
    lev = np.empty(64, np.int64)
    st = np.empty(64, np.int64)
    parts, size, start, level = 0, 1, 0, 0
    while True:
        if window & size:
            lev[parts] = level
            st[parts] = start
            parts += 1
            start += size
        if size * 2 > window:
            break
        size *= 2
        level += 1
    return lev[:parts], st[:parts], level


@_jit
def novelty_rows(
    head: NDArray[Any],
    new: NDArray[Any],
    n: int,
    lags: NDArray[np.int64],
    window: int,
    k: int,
    r0: int,
    r1: int,
    out: NDArray[np.float64],
    keep: NDArray[Any],
) -> None:
    """:func:`ctxstream.lag_novelty` for rows ``r0`` to ``r1`` of ``ext``, the columns of ``head``
    then those of ``new`` (a carried tail and a chunk, not copied into one array), into the same
    rows of ``out`` (``[rows, n]``); the last ``keep.shape[1]`` values of each row into ``keep``
    (the next tail)."""
    wh = head.shape[1]
    width = wh + new.shape[1]
    kw = keep.shape[1]
    span = n + window - 1  # the query contexts' steps
    q0 = width - span
    lev, st, top = _plan(window)
    parts = lev.shape[0]
    xr = np.empty(width)
    buf = np.empty((top + 1, span))
    best = np.empty((k, n))
    ss = np.empty(n)
    for r in range(r0, r1):
        hrow = head[r]
        nrow = new[r]
        krow = keep[r]
        for j in range(width):
            v = float(hrow[j]) if j < wh else float(nrow[j - wh])
            if j >= width - kw:
                krow[j - (width - kw)] = hrow[j] if j < wh else nrow[j - wh]
            if math.isnan(v):
                v = np.inf  # never near: an infinite distance
            elif v == np.inf:
                v = BIG
            elif v == -np.inf:
                v = -BIG
            xr[j] = v
        best[:, :] = np.inf
        query = xr[q0:]
        for li in range(lags.shape[0]):
            lag = lags[li]
            if lag > q0:
                continue
            # slices, not offsets: numba then knows the indices are not negative and the loops
            # are vectorised (five times faster)
            past = xr[q0 - lag : q0 - lag + span]
            if window == 10 and k == 1:  # the default window, in two passes instead of six:
                # the sums of two squares, then (d0 + d1) + (((d2 + d3) + (d4 + d5)) + ((d6 + d7)
                # + (d8 + d9))) as the general path sums them, and the running minimum
                m = span - 1
                qa, qb, pa_, pb_, d2 = query[:m], query[1 : m + 1], past[:m], past[1 : m + 1], buf[1]
                for t in range(m):
                    da = qa[t] - pa_[t]
                    db = qb[t] - pb_[t]
                    d2[t] = da * da + db * db
                w0, w2, w4, w6, w8 = d2[:n], d2[2 : n + 2], d2[4 : n + 4], d2[6 : n + 6], d2[8 : n + 8]
                b = best[0]
                for t in range(n):
                    s = w0[t] + ((w2[t] + w4[t]) + (w6[t] + w8[t]))
                    bt = b[t]
                    b[t] = s if (s < bt or s != s) else bt  # np.minimum: NaN wins
                continue
            d0 = buf[0]
            for t in range(span):
                d = query[t] - past[t]  # inf - inf where the query itself is unseen: NaN
                d0[t] = d * d
            size = 1
            for lvl in range(1, top + 1):  # sums of 2 ** lvl steps
                m = span - 2 * size + 1
                lo = buf[lvl - 1][:m]
                hi = buf[lvl - 1][size : size + m]
                cur = buf[lvl][:m]
                for t in range(m):
                    cur[t] = lo[t] + hi[t]
                size *= 2
            pa = buf[lev[0]][st[0] : st[0] + n]
            if parts == 1:
                for t in range(n):
                    ss[t] = pa[t]
            else:
                pb = buf[lev[1]][st[1] : st[1] + n]
                for t in range(n):
                    ss[t] = pa[t] + pb[t]
                for j in range(2, parts):
                    pj = buf[lev[j]][st[j] : st[j] + n]
                    for t in range(n):
                        ss[t] = ss[t] + pj[t]
            if k == 1:  # np.minimum: NaN wins
                b = best[0]
                for t in range(n):
                    s = ss[t]
                    bt = b[t]
                    b[t] = s if (s < bt or s != s) else bt
                continue
            for t in range(n):  # insert into the sorted stack (np.minimum, np.maximum)
                s = ss[t]
                for i in range(k):
                    bi = best[i, t]
                    if bi != bi or s != s:
                        low = bi if bi != bi else s
                        high = low
                    elif s < bi:
                        low, high = s, bi
                    else:
                        low, high = bi, s
                    best[i, t] = low
                    s = high
        o = out[r]
        for t in range(n):
            last = best[k - 1, t]
            if not math.isfinite(last):
                o[t] = np.nan  # fewer than k known
            elif k == 1:
                o[t] = math.sqrt(last)
            else:
                acc = math.sqrt(best[0, t])
                for i in range(1, k):
                    acc = acc + math.sqrt(best[i, t])
                o[t] = acc / k


@_jit
def _zero_nan(v: float) -> float:
    """``np.nan_to_num(v, nan=0.0)``."""
    if v != v:
        return 0.0
    if v == np.inf:
        return BIG
    if v == -np.inf:
        return -BIG
    return v


@_jit
def ranked_rows(
    hist: NDArray[np.float64],
    first_block: int,
    nb: int,
    n: int,
    top: NDArray[np.float64],
    blocks: NDArray[np.int64],
    out: NDArray[np.float64],
) -> None:
    """:meth:`ctxstream.Calib._ranked`, row by row (``hist``: the block maxima, NaN as 0)."""
    rows, width = hist.shape
    k = top.shape[1]
    never = np.iinfo(np.int64).max // 4
    for r in range(rows):
        tr = top[r]
        br = blocks[r]
        for i in range(nb):
            col = width - nb + i
            b = first_block + col
            start = b - n + 1
            gone = False
            for q in range(k):
                if br[q] < start:
                    gone = True
            m = _zero_nan(hist[r, col])
            low = 0
            for q in range(1, k):
                if tr[q] < tr[low]:
                    low = q
            if m > tr[low]:
                tr[low] = m
                br[low] = b
            if gone:  # sort the window afresh
                lo = max(0, col - n + 1)
                size = col + 1 - lo
                window = np.empty(size)
                for q in range(size):
                    window[q] = _zero_nan(hist[r, lo + q])
                if size >= k:
                    idx = np.argsort(window, kind="mergesort")[size - k :]
                    for q in range(k):
                        tr[q] = window[idx[q]]
                        br[q] = first_block + lo + idx[q]
                else:
                    for q in range(k):
                        if q < size:
                            tr[q] = window[q]
                            br[q] = first_block + lo + q
                        else:
                            tr[q] = 0.0
                            br[q] = never
            smallest = tr[0]
            for q in range(1, k):
                smallest = min(smallest, tr[q])
            out[r, i] = smallest


@_jit
def gated_into(
    a: NDArray[np.float64],
    ref: NDArray[np.float64],
    floor: NDArray[np.float64],
    count: NDArray[np.float64],
    top: NDArray[np.float64],
    warmup: float,
    novelty_floor: float,
    long_gate: float,
    strong: bool,
    strong_ratio: float,
    strong_gate: float,
    weight: float,
    out: NDArray[np.float64],
) -> None:
    """:func:`ctxstream.gated_ratio` × ``weight`` in one pass (``top`` of no columns: none)."""
    rows, n = a.shape
    has_top = top.shape[1] > 0 and long_gate > 0
    for i in range(rows):
        for t in range(n):
            av = a[i, t]
            r = av / ref[i, t] if count[i, t] >= warmup else np.nan
            gate = math.isfinite(av) and math.isfinite(r)
            if novelty_floor > 0:
                gate = gate and av >= novelty_floor * floor[i, t]
            if has_top:
                tv = _zero_nan(top[i, t])
                ok = av >= long_gate * tv
                if strong:
                    ok = ok or (r >= strong_ratio and av >= strong_gate * tv)
                gate = gate and ok
            out[i, t] = weight * (r if gate else 0.0)


@_jit
def combine_into(top: NDArray[np.float64], second: NDArray[np.float64], r: NDArray[np.float64]) -> None:
    """One more ratio into the largest (``top``) and second largest (``second``) so far, NaN as 0
    and infinity as 1e12 (:func:`ctxstream.combine`)."""
    rows, n = r.shape
    for i in range(rows):
        for t in range(n):
            v = r[i, t]
            if v != v:
                v = 0.0
            elif v == np.inf:
                v = 1e12
            elif v == -np.inf:
                v = -BIG
            tv = top[i, t]
            second[i, t] = max(second[i, t], min(tv, v))
            top[i, t] = max(tv, v)
