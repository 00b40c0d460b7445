"""Anomalies in a window of days from the cached day states (:class:`DayStates`): the
scores of the whole days around the question, only for the series that may reach the
threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import bottleneck as bn
import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import Array
from whatchanged.engine.daystate import (
    WINDOW_BACK_S,
    DayState,
    Geometry,
    Key,
    _spread,
    _take,
    scores,
)
from whatchanged.engine.daystate_cache import DayStates
from whatchanged.engine.detect import DetectParams
from whatchanged.engine.model import Anomaly


def _day_floor(t: datetime) -> date:
    return t.astimezone(UTC).date()


def _candidates(
    x: NDArray[np.floating], st: DayState, g: Geometry, params: DetectParams, cut: int
) -> NDArray[np.bool_]:
    """Rows of ``x`` where some point before column ``cut`` may reach the detection threshold:
    within a block the expected value and the spread are constant, so the block's extremes
    tell (with a margin for rounding); the other rows cannot hold an anomaly and need no
    scores (the columns from ``cut`` on are not scored)."""
    n = x.shape[0]
    nb = min(g.per_day, -(-cut // g.block))  # the blocks holding the columns before cut
    by_block = x[:, : nb * g.block].reshape(n, nb, g.block)
    top = bn.nanmax(by_block, axis=2)
    bottom = bn.nanmin(by_block, axis=2)
    spread = _spread(st.scale_b, st.recent_b, g, params)[:, :nb]
    expected = st.expected_b[:, :nb]
    with np.errstate(invalid="ignore"):
        reach = np.maximum(top - expected, expected - bottom) >= 0.999 * params.threshold * spread
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
    states.prefetch([d for i, (d, st) in enumerate(window) if st is not None and i * g.cols < width])
    for i, (d, st) in enumerate(window):
        if st is None or i * g.cols >= width:
            continue
        day_keys, x = states.raw(d)
        if day_keys != st.keys:  # the state may carry series without data that day
            rows_x = {k: r for r, k in enumerate(day_keys)}
            x = _take(x, np.array([rows_x.get(k, -1) for k in st.keys], dtype=np.intp))
        cut = min(g.cols, width - i * g.cols)
        maybe.update(k for k, c in zip(st.keys, _candidates(x, st, g, params, cut), strict=True) if c)
        raws[d] = np.asarray(x, dtype=np.float32)  # the values as stored: exact, half the memory
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
