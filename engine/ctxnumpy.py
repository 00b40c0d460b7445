"""The contextual stream's inner loops as numpy passes: what :mod:`ctxstream` runs for a few
series (fewer than ``ctxstream.COMPILED_ROWS``: one series in ``detect --input`` or NAB), where
numba's import and the loading of its compiled loops (about 0.3 s in a new process) would cost
more than the loops themselves.  :mod:`whatchanged.engine.ctxkernels` computes the same, to the
bit (the same operations in the same order; tests compare them), for many series.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
#: the block number of "no block" (as ``ctxstream.NEVER``)
NEVER = np.iinfo(np.int64).max // 4


def _window_sums_into(d: Array, window: int, out: Array, scratch: list[Array]) -> None:
    """Sums of ``window`` consecutive rows of ``d`` (``[n, ...]``, time-major) into ``out``
    (``[n - window + 1, ...]``), by pairs of doubling width — no running sum, so a large
    value leaving the window leaves no rounding error behind it, and NaN stays in the
    windows holding it — with the partial sums in ``scratch`` (no allocation)."""
    m = d.shape[0] - window + 1
    cur, size, start, level = d, 1, 0, 0
    parts: list[Array] = []
    while True:
        if window & size:
            parts.append(cur[start : start + m])
            start += size
        if size * 2 > window:
            break
        nxt = scratch[level][: cur.shape[0] - size]
        np.add(cur[:-size], cur[size:], out=nxt)
        cur, size, level = nxt, size * 2, level + 1
    if len(parts) == 1:
        np.copyto(out, parts[0])
        return
    np.add(parts[0], parts[1], out=out)
    for p in parts[2:]:
        np.add(out, p, out=out)


#: values per lag a block of series holds in :func:`lag_novelty` (its arrays stay in the cache;
#: 2^13 – 2^15 measured alike, 2^16 a half slower)
CELLS = 1 << 15


def lag_novelty(ext: Array, n: int, lags: NDArray[np.int64], window: int, k: int) -> Array:
    """:func:`ctxstream.lag_novelty`.  Lag by lag: a difference, a square, the window's sum (:func:`_window_sums_into`) and a
    running minimum (``k = 1``) or a sorted stack of the ``k`` smallest; float64, time-major,
    a block of about :data:`CELLS` values a lag at a time, so that every operation runs on
    one contiguous array in the cache."""
    rows, width = ext.shape
    out = np.full((rows, n), np.nan)
    if n == 0 or rows == 0:
        return out
    w = window
    span = n + w - 1  # the query contexts' steps
    q0 = width - span
    lag_list = [int(v) for v in lags.tolist() if v <= q0]
    block = max(1, min(rows, CELLS // span))

    def part(r0: int) -> None:
        nr = min(block, rows - r0)
        xt = np.ascontiguousarray(ext[r0 : r0 + nr].T, dtype=np.float64)
        np.nan_to_num(xt, copy=False, nan=np.inf)  # never near: an infinite distance
        query = xt[q0:]
        dd, ss, lv = np.empty((span, nr)), np.empty((n, nr)), np.empty((n, nr))
        scratch = [np.empty((span, nr)) for _ in range(max(1, w.bit_length()))]
        best = np.full((k, n, nr), np.inf)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: the query itself unseen
            for lag in lag_list:
                np.subtract(query, xt[q0 - lag : width - lag], out=dd)
                np.multiply(dd, dd, out=dd)
                _window_sums_into(dd, w, ss, scratch)
                if k == 1:
                    np.minimum(best[0], ss, out=best[0])
                    continue
                for i in range(k):  # insert into the sorted stack
                    np.minimum(best[i], ss, out=lv)
                    np.maximum(best[i], ss, out=ss)
                    best[i][...] = lv
            a = np.sqrt(best).mean(axis=0) if k > 1 else np.sqrt(best[0])
        a[~np.isfinite(best[k - 1])] = np.nan
        out[r0 : r0 + nr] = a.T

    for r0 in range(0, rows, block):
        part(r0)
    return out


def ranked(hist: Array, first_block: int, nb: int, n: int, top: Array, blocks: NDArray[np.int64]) -> Array:
    """:meth:`ctxstream.Calib._ranked` (``top`` and ``blocks`` updated in place)."""
    hist = np.nan_to_num(hist, nan=0.0)
    rows = hist.shape[0]
    out = np.empty((rows, nb))
    k = top.shape[1]
    all_rows = np.arange(rows)
    for i in range(nb):
        col = hist.shape[1] - nb + i
        b = first_block + col
        start = b - n + 1
        gone = (blocks < start).any(axis=1)
        m = hist[:, col]
        low = np.argmin(top, axis=1)
        bigger = m > top[all_rows, low]
        top[bigger, low[bigger]] = m[bigger]
        blocks[bigger, low[bigger]] = b
        if gone.any():  # sort the window of those rows afresh
            r = np.flatnonzero(gone)
            lo = max(0, col - n + 1)
            window = hist[r, lo : col + 1]
            if window.shape[1] >= k:
                idx = np.argpartition(window, window.shape[1] - k, axis=1)[:, window.shape[1] - k :]
                top[r] = np.take_along_axis(window, idx, axis=1)
                blocks[r] = first_block + lo + idx
            else:
                top[r] = 0.0
                top[r, : window.shape[1]] = window
                blocks[r] = NEVER
                blocks[r, : window.shape[1]] = first_block + lo + np.arange(window.shape[1])
        out[:, i] = np.min(top, axis=1)
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
    """:func:`ctxstream.gated_ratio`."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        r = np.where(count >= warmup, a / ref, np.nan)
        gate = np.isfinite(a) & np.isfinite(r)
        if novelty_floor > 0:
            gate &= a >= novelty_floor * floor
        if top is not None and long_gate > 0:
            top = np.nan_to_num(top, nan=0.0)
            ok = a >= long_gate * top
            if strong_ratio is not None:
                ok |= (r >= strong_ratio) & (a >= strong_gate * top)
            gate &= ok
        out: Array = weight * np.where(gate, r, 0.0)
    return out


def combine(ratios: list[Array], second_weight: float) -> Array:
    """:func:`ctxstream.combine`."""
    top = np.nan_to_num(ratios[0], nan=0.0, posinf=1e12)
    second = np.zeros_like(top)
    for r in ratios[1:]:
        r = np.nan_to_num(r, nan=0.0, posinf=1e12)
        np.maximum(second, np.minimum(top, r), out=second)
        np.maximum(top, r, out=top)
    if second_weight:
        top += second_weight * second
    return top
