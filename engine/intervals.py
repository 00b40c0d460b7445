"""Step 2, the arithmetic of it: anomalous intervals of a score matrix, and one series.

:class:`DetectParams` holds the detector's settings (:data:`DEFAULT`); :func:`detect_matrix` and
:func:`intervals_of` find the runs of ``|z|`` beyond the threshold, with hysteresis, merging and
the onset's change-point search (:func:`find_intervals`); :func:`detect_series` runs the whole
detector on one series (CLI ``detect``, NAB).  The rule is written in
:mod:`whatchanged.engine.detect`, which applies it to the warehouse and re-exports these names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import Array, RobustBaseline, rows_for
from whatchanged.engine.errors import InputError
from whatchanged.engine.model import Anomaly

DAY_S = 86400.0


@dataclass(frozen=True)
class DetectParams:
    """Detector settings (defaults chosen on NAB, see docs/detection.md)."""

    threshold: float = 6.0
    exit_threshold: float = 3.0
    min_duration_s: float = 120.0
    merge_gap_s: float = 600.0
    #: alarms (:func:`alarms`): after an anomaly of a series, the next one raises an alarm
    #: only once the series has been normal this long (online re-arming)
    rearm_s: float = 21600.0
    onset_back_s: float = 7200.0
    onset_ahead_s: float = 900.0
    #: heavy-tail guard: a point must also exceed ``tail_factor`` × the decayed running
    #: maximum of past |z| (half-life ``tail_half_life_s``); 0 disables it
    tail_factor: float = 1.2
    tail_half_life_s: float = 172800.0
    #: the guard ignores the last ``tail_delay_s`` (at least the minimum duration), so a
    #: slow drift does not keep raising its own bar
    tail_delay_s: float = 10800.0
    # baseline
    block_s: float = 600.0
    recent_s: float = 14400.0
    season_days: int = 7
    season_weight: float = 0.5
    scale_block_s: float = 1800.0
    scale_window_s: float = 86400.0
    rel_floor: float = 0.01
    #: blocks whose median is this many spreads away are left out of the levels (second pass)
    exclude_z: float = 3.0

    def baseline(self) -> RobustBaseline:
        return RobustBaseline(
            block_s=self.block_s,
            recent_s=self.recent_s,
            season_days=self.season_days,
            season_weight=self.season_weight,
            scale_block_s=self.scale_block_s,
            scale_window_s=self.scale_window_s,
            rel_floor=self.rel_floor,
            exclude_z=self.exclude_z,
        )

    @property
    def history_s(self) -> float:
        """Data a baseline at ``t`` may use, before ``t``."""
        return (self.season_days + 1) * DAY_S + self.scale_window_s + 2 * self.block_s


DEFAULT = DetectParams()


@dataclass(frozen=True)
class Interval:
    """One anomaly in grid coordinates (row of the matrix, column indices)."""

    row: int
    start: int
    detected: int
    end: int  # last anomalous column (inclusive)
    ongoing: bool  # still anomalous at the last column
    up: bool
    peak: float
    onset: int
    expected: float
    observed: float


def _runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Starts and ends (exclusive) of True runs in a 1-D boolean array."""
    d = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def past_max(absz: Array, *, half_life_rows: float, delay: int = 1) -> Array:
    """Decayed running maximum of ``absz`` up to ``delay`` columns before each column (causal).

    ``m[t] = max_{s <= t - delay} absz[s] * 2 ** (-(t - delay - s) / half_life_rows)``,
    computed in the log domain with ``np.maximum.accumulate`` (no loop over time).  With
    ``delay`` = the minimum run length, the points of a run never raise their own bar.
    """
    n, t = absz.shape
    rate = math.log(2.0) / max(half_life_rows, 1e-9)
    cols = np.arange(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logz = np.where(np.isfinite(absz) & (absz > 0), np.log(np.where(absz > 0, absz, 1.0)), -np.inf)
    acc = np.maximum.accumulate(logz + cols * rate, axis=1) - cols * rate
    out = np.full((n, t), 0.0)
    if delay < t:
        out[:, delay:] = np.exp(acc[:, : t - delay])
    return out


def find_intervals(
    z: Array, *, params: DetectParams, step_s: float, threshold: Array | None = None
) -> list[tuple[int, int, int, int, bool]]:
    """Anomalous intervals of a score matrix: ``(row, start, detected, end_excl, up)``.

    Vectorised: the matrix is flattened with a NaN column between series, so
    runs never cross series.
    """
    n, t = z.shape
    m = rows_for(params.min_duration_s, step_s)
    gap = rows_for(params.merge_gap_s, step_s, minimum=0)
    flat = np.concatenate([z, np.full((n, 1), np.nan)], axis=1).ravel()
    thr: Array | float = params.threshold
    if threshold is not None:
        thr = np.concatenate([threshold, np.full((n, 1), np.inf)], axis=1).ravel()
    width = t + 1
    found: list[tuple[int, int, int, int, bool]] = []
    with np.errstate(invalid="ignore"):
        for up in (True, False):
            s = flat if up else -flat
            hi_s, hi_e = _runs(s >= thr)
            lo_s, lo_e = _runs(s >= params.exit_threshold)
            ok = (hi_e - hi_s) >= m
            hi_s = hi_s[ok]
            if not hi_s.size:
                continue
            # the hysteresis run that holds each qualifying run
            k = np.searchsorted(lo_s, hi_s, side="right") - 1
            k_unique, first = np.unique(k, return_index=True)
            starts = hi_s[first]
            ends = lo_e[k_unique]
            # merge same-series neighbours closer than the gap
            rows = starts // width
            keep = np.ones(starts.size, dtype=bool)
            if gap > 0 and starts.size > 1:
                close = (starts[1:] - ends[:-1] <= gap) & (rows[1:] == rows[:-1])
                keep[1:] = ~close
            group = np.cumsum(keep) - 1
            g_start = starts[keep]
            g_end = np.zeros(g_start.size, dtype=np.intp)
            np.maximum.at(g_end, group, ends)
            for a, e in zip(g_start.tolist(), g_end.tolist(), strict=True):
                r, c = divmod(a, width)
                found.append((r, c, c + m - 1, e - r * width, up))
    found.sort()
    return found


def _onset(resid: Array, start: int, lo: int, hi: int) -> int:
    """Best split in ``resid[lo:hi+1]`` (step or hinge model), as a column index ≤ ``start``."""
    seg = resid[lo : hi + 1]
    idx = np.flatnonzero(~np.isnan(seg))
    if idx.size < 3:
        return start
    y = seg[idx]
    pos = idx.astype(np.float64)
    n = y.size
    # step model: mean before and after split k (k = first index of the new segment)
    c1 = np.cumsum(y)
    c2 = np.cumsum(y * y)
    k = np.arange(1, n)
    left_n = k
    right_n = n - k
    sse_step = (
        c2[k - 1] - c1[k - 1] ** 2 / left_n + (c2[-1] - c2[k - 1]) - (c1[-1] - c1[k - 1]) ** 2 / right_n
    )
    # hinge model: y = a + b * max(0, pos - pos[k-1]) (continuous slope change)
    u = np.maximum(0.0, pos[None, :] - pos[k - 1][:, None])
    um = u.mean(axis=1)
    ym = y.mean()
    du = u - um[:, None]
    var_u = (du * du).sum(axis=1)
    cov = (du * (y - ym)[None, :]).sum(axis=1)
    b = np.divide(cov, var_u, out=np.zeros_like(cov), where=var_u > 0)
    sse_hinge = ((y - ym) ** 2).sum() - b * cov
    limit = start - lo
    allowed = idx[k] <= limit
    step_best = np.where(allowed, sse_step, np.inf)
    hinge_best = np.where(allowed, sse_hinge, np.inf)
    if not np.isfinite(step_best).any():
        return start
    ks = int(np.argmin(step_best))
    kh = int(np.argmin(hinge_best))
    if hinge_best[kh] < step_best[ks]:
        # a drift: the onset is the knee, the last point on the old line
        return lo + int(idx[k[kh] - 1])
    return lo + int(idx[k[ks]])


def detect_matrix(
    values: Array,
    *,
    step_s: float,
    params: DetectParams = DEFAULT,
    online: bool = True,
    first_col: int = 0,
) -> tuple[list[Interval], NDArray[np.bool_]]:
    """Anomalies of every row of ``values[series, step]``; also each row's short-history flag.

    Only intervals that end at or after ``first_col`` are returned (the
    columns before it are history).
    """
    base = params.baseline().fit(values, step_s=step_s).result_
    resid = values - base.expected
    with np.errstate(invalid="ignore", divide="ignore"):
        z = resid / base.spread
    thr = None
    if params.tail_factor > 0:
        guard = past_max(
            np.abs(z),
            half_life_rows=params.tail_half_life_s / step_s,
            delay=max(rows_for(params.min_duration_s, step_s), rows_for(params.tail_delay_s, step_s)),
        )
        thr = np.maximum(params.threshold, params.tail_factor * guard)
    found = intervals_of(
        values, resid, z, thr, base.expected, params=params, step_s=step_s, online=online, first_col=first_col
    )
    return found, base.short_history


def intervals_of(
    values: Array,
    resid: Array,
    z: Array,
    thr: Array | None,
    expected: Array,
    *,
    params: DetectParams,
    step_s: float,
    online: bool,
    first_col: int = 0,
) -> list[Interval]:
    """The anomalies of score rows ``z`` (thresholds ``thr``, None: ``params.threshold``),
    with onsets searched in the residuals ``resid``; those ending before ``first_col`` are left out."""
    t = values.shape[1]
    back = rows_for(params.onset_back_s, step_s)
    ahead = rows_for(params.onset_ahead_s, step_s)
    out: list[Interval] = []
    prev_end: dict[int, int] = {}  # row -> end (exclusive) of its latest interval
    for r, a, det, e, up in sorted(
        find_intervals(z, params=params, step_s=step_s, threshold=thr), key=lambda f: (f[0], f[1])
    ):
        # the onset search never reaches back into the row's previous anomaly
        lo = max(0, a - back, prev_end.get(r, 0))
        prev_end[r] = max(e, prev_end.get(r, 0))
        if e - 1 < first_col or det >= t:
            continue
        hi = det if online else min(t - 1, a + ahead)
        onset = _onset(resid[r], a, lo, hi)
        zz = np.abs(z[r, a:e])
        seg = values[r, a:e]
        out.append(
            Interval(
                row=r,
                start=a,
                detected=det,
                end=e - 1,
                ongoing=e >= t,
                up=up,
                peak=float(np.nanmax(zz)) if np.isfinite(zz).any() else 0.0,
                onset=onset,
                expected=float(expected[r, onset]),
                observed=float(np.nanmedian(seg)) if np.isfinite(seg).any() else math.nan,
            )
        )
    return out


def _to_datetimes(ts: Iterable[Any]) -> NDArray[np.int64]:
    """Timestamps (datetime, numpy datetime64, pandas) as epoch microseconds."""
    arr = np.asarray(list(ts) if not isinstance(ts, np.ndarray) else ts)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[us]").astype(np.int64)
    out = []
    for v in arr.tolist():
        if isinstance(v, datetime):
            v = v if v.tzinfo else v.replace(tzinfo=UTC)
            out.append(round(v.timestamp() * 1e6))
        elif isinstance(v, int | float):
            out.append(round(float(v) * 1e6))
        else:
            raise InputError("timestamps must be datetimes or epoch seconds", expected="a time", found=v)
    return np.asarray(out, dtype=np.int64)


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def grid_series(
    ts: Sequence[Any] | NDArray[Any], values: Sequence[float] | NDArray[np.float64]
) -> tuple[NDArray[np.float64], int, int]:
    """Put one series on a regular grid: ``(grid, origin_us, step_us)``.

    The step is the median spacing; samples in the same step are averaged; steps
    without a sample are NaN: what :func:`detect_series` and the contextual detector analyse.
    """
    t_us = _to_datetimes(ts)
    v = np.asarray(values, dtype=np.float64)
    if t_us.size != v.size:
        raise InputError("timestamps and values differ in length", expected=str(t_us.size), found=v.size)
    if t_us.size == 0:
        return np.zeros(0), 0, 60_000_000
    order = np.argsort(t_us, kind="stable")
    t_us, v = t_us[order], v[order]
    diffs = np.diff(t_us)
    step_us = int(np.median(diffs[diffs > 0])) if (diffs > 0).any() else 60_000_000
    origin = int(t_us[0])
    col = np.rint((t_us - origin) / step_us).astype(np.int64)
    width = int(col[-1]) + 1
    ok = ~np.isnan(v)
    sums = np.bincount(col[ok], weights=v[ok], minlength=width)
    counts = np.bincount(col[ok], minlength=width)
    with np.errstate(invalid="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return grid, origin, step_us


def detect_series(
    ts: Sequence[Any] | NDArray[Any],
    values: Sequence[float] | NDArray[np.float64],
    *,
    params: DetectParams = DEFAULT,
    online: bool = True,
    service: str = "series",
    metric: str = "value",
) -> list[Anomaly]:
    """Anomalies of one series (timestamps need not be regular: they are put on a grid).

    The grid step is the median spacing of the timestamps; samples falling in
    the same step are averaged; steps without a sample are missing data.
    ``Anomaly.detected_at`` is when an online detector reports it.
    """
    flat, origin, step_us = grid_series(ts, values)  # raises on a length mismatch
    if len(values) < 3:
        return []
    grid = flat[None, :]
    step_s = step_us / 1e6
    intervals, _ = detect_matrix(grid, step_s=step_s, params=params, online=online)
    return [
        _anomaly(iv, service, metric, lambda c: _dt(origin + c * step_us), step_us, online)
        for iv in intervals
    ]


def _anomaly(
    iv: Interval,
    service: str,
    metric: str,
    at: Any,
    step_us: int,  # noqa: ARG001 (positional in engine/daystate.py's call, which this pass leaves alone)
    online: bool,
) -> Anomaly:
    return Anomaly(
        service=service,
        metric=metric,
        start=at(iv.start),
        onset=at(iv.onset),
        end=None if iv.ongoing else at(iv.end + 1),
        direction="up" if iv.up else "down",
        peak_score=round(iv.peak, 3),
        baseline=iv.expected,
        observed=iv.observed,
        detected_at=at(iv.detected),
        onset_lookahead=not online and iv.onset > iv.detected,
    )
