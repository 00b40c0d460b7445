"""Step 2 — anomalies: where a metric stays away from its baseline.

For every point the robust score is ``z = (x - E) / D`` (expected value and
spread from :mod:`whatchanged.engine.baseline`, both causal).  An anomaly is
an interval where

* ``|z| >= threshold`` on at least ``min_duration_s`` of consecutive samples
  in one direction (the first of them is ``Anomaly.start``; the sample that
  completes the run is ``Anomaly.detected_at``, the moment an online detector
  can report it);
* it lasts while ``|z| >= exit_threshold`` in the same direction
  (hysteresis), and anomalies of the same series and direction less than
  ``merge_gap_s`` (10 min) apart are one.

:func:`alarms` turns anomalies into online alarms (what NAB scores): a series
re-arms only after ``rearm_s`` (6 h) without an anomaly.

The **onset** is refined by a change-point search on the residuals
``x - E`` in the window ``[start - onset_back_s, limit]``: a mean shift (step)
and a slope change (hinge, for drifts) are fitted at every split and the best
split wins.  Online, ``limit`` is ``detected_at`` (data up to the decision
only); in batch it is ``start + onset_ahead_s`` (a look-ahead, flagged on
incidents as ``onset_lookahead``).

Because the baseline uses only the past, a level shift to a flat new level
(bandwidth ~200 → capped near 50 Mbit/s) stays anomalous as long as the
same-time-of-day history disagrees with it; with a few hours of history only,
the recent level adopts the new level after about ``recent_s / 2`` and the
anomaly ends there (its onset is still found).

Entry points: :func:`detect_series` (one series: CLI ``detect``, NAB) and
:func:`detect_anomalies` (the warehouse, all series at once, vectorised over a
``[series, minute]`` matrix processed in chunks of series, read straight from
the warehouse's Parquet files by :func:`read_grid`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import duckdb
import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import Array, RobustBaseline, rows_for
from whatchanged.engine.errors import InputError
from whatchanged.engine.extent import DAY_DIR, metric_files
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


# -- one series ---------------------------------------------------------------------------------


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


# -- the warehouse --------------------------------------------------------------------------------


def _series_list(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, services: Sequence[str] | None
) -> list[tuple[str, str]]:
    where = "ts >= $lo AND ts < $hi"
    args: dict[str, Any] = {"lo": lo, "hi": hi}
    if services is not None:
        where += " AND list_contains($services, service)"
        args["services"] = list(services)
    rows = con.execute(
        f"SELECT DISTINCT service, metric FROM metrics WHERE {where} ORDER BY service, metric", args
    ).fetchall()
    return [(str(s), str(m)) for s, m in rows]


def load_matrix(
    con: duckdb.DuckDBPyConnection,
    series: Sequence[tuple[str, str]],
    lo: datetime,
    hi: datetime,
    *,
    step_s: float = 60.0,
) -> Array:
    """Values of ``series`` on the grid ``lo, lo + step, … < hi`` (mean per step, NaN if none)."""
    width = math.ceil((hi - lo).total_seconds() / step_s)
    out = np.full((len(series), width), np.nan)
    if not series:
        return out
    import pyarrow as pa

    ids = pa.table(
        {
            "service": [s for s, _ in series],
            "metric": [m for _, m in series],
            "sid": np.arange(len(series), dtype=np.int64),
        }
    )
    con.register("__wc_series", ids)
    try:
        tbl = con.execute(
            "SELECT i.sid, (epoch_us(m.ts) - $lo_us) // $step_us AS col, m.value "
            "FROM metrics m JOIN __wc_series i USING (service, metric) "
            "WHERE m.ts >= $lo AND m.ts < $hi AND m.value IS NOT NULL AND isfinite(m.value) "
            "AND m.service BETWEEN $first AND $last",  # sorted files: row groups are pruned
            {
                "first": min(s for s, _ in series),
                "last": max(s for s, _ in series),
                "lo": lo,
                "hi": hi,
                "lo_us": int(lo.timestamp() * 1_000_000),
                "step_us": int(step_s * 1_000_000),
            },
        ).fetchnumpy()
    finally:
        con.unregister("__wc_series")
    if not len(tbl["sid"]):
        return out
    flat = np.asarray(tbl["sid"], dtype=np.int64) * width + np.asarray(tbl["col"], dtype=np.int64)
    vals = np.asarray(tbl["value"], dtype=np.float64)
    size = len(series) * width
    sums = np.bincount(flat, weights=vals, minlength=size)
    counts = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return grid.reshape(len(series), width)


def _files_for(files: Sequence[str], lo: datetime, hi: datetime) -> list[str]:
    """The day-partitioned files that may hold rows in ``[lo, hi)`` (others are skipped)."""
    first, last = lo.astimezone(UTC).date().isoformat(), hi.astimezone(UTC).date().isoformat()
    out = []
    for f in files:
        d = DAY_DIR.search(f)
        if d is None or first <= d.group(1) <= last:
            out.append(f)
    return out


def _ints(arr: Any) -> NDArray[np.int64]:
    """Dictionary indices as integers, -1 for nulls."""
    if arr.null_count:
        arr = arr.fill_null(-1)
    return np.asarray(arr).astype(np.int64, copy=False)


class SeriesGrid:
    """Series read onto a regular grid, one float32 row per (service, metric), sorted by key."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: dict[tuple[str, str], NDArray[np.float32]] = {}
        self._counts: dict[tuple[str, str], NDArray[np.uint16]] = {}
        self._top: dict[tuple[str, str], int] = {}  # highest step written per series

    def add(self, key: tuple[str, str], cols: NDArray[np.int64], vals: NDArray[np.float32]) -> None:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = np.full(self.width, np.nan, dtype=np.float32)
        sorted_cols = cols.size < 2 or bool(np.all(cols[1:] > cols[:-1]))
        top = self._top.get(key, -1)
        if sorted_cols and key not in self._counts and int(cols[0]) > top:
            # the usual case: a later stretch of the series, one sample per step
            row[cols] = vals
            self._top[key] = int(cols[-1])
            return
        if not sorted_cols:  # several samples per step
            cols, inv = np.unique(cols, return_inverse=True)
            vals = (np.bincount(inv, weights=vals) / np.bincount(inv)).astype(np.float32)
            counts = np.bincount(inv).astype(np.uint16)
        else:
            counts = None
        self._top[key] = max(top, int(cols[-1]))
        seen = row[cols]
        if key not in self._counts and bool(np.isnan(seen).all()):
            row[cols] = vals
            if counts is not None:
                self._counts[key] = np.where(np.isnan(row), 0, 1).astype(np.uint16)
                self._counts[key][cols] = counts
            return
        # the same steps in several files: keep a running mean
        cnt = self._counts.get(key)
        if cnt is None:
            cnt = self._counts[key] = (~np.isnan(row)).astype(np.uint16)
        add = np.ones(cols.size, dtype=np.uint16) if counts is None else counts
        old = np.nan_to_num(row[cols]) * cnt[cols]
        cnt[cols] += add
        row[cols] = ((old + vals * add) / cnt[cols]).astype(np.float32)

    def matrix(self, keys: Sequence[tuple[str, str]]) -> NDArray[np.float32]:
        if not keys:
            return np.empty((0, self.width), dtype=np.float32)
        return np.stack([self.rows[k] for k in keys])


def read_grid(
    files: Sequence[str],
    lo: datetime,
    hi: datetime,
    *,
    step_s: float = 60.0,
    services: Sequence[str] | None = None,
) -> SeriesGrid:
    """Every series of ``files`` on the grid ``lo, lo + step, … < hi`` (mean per step).

    Reads the Parquet files directly with pyarrow (service and metric as dictionary
    indices, never as Python strings), one run of rows per series at a time: the
    files are sorted by (service, metric, ts), so a series is a few contiguous runs.
    """
    import pyarrow.parquet as pq

    width = math.ceil((hi - lo).total_seconds() / step_s)
    grid = SeriesGrid(width)
    lo_us = int(lo.timestamp() * 1_000_000)
    step_us = int(step_s * 1_000_000)
    wanted = set(services) if services is not None else None
    for f in _files_for(files, lo, hi):
        tbl = pq.read_table(
            f, columns=["service", "metric", "ts", "value"], read_dictionary=["service", "metric"]
        )
        for batch in tbl.to_batches():
            if not batch.num_rows:
                continue
            svc, met = batch.column(0), batch.column(1)
            s_idx = _ints(svc.indices)
            m_idx = _ints(met.indices)
            s_names = svc.dictionary.to_pylist()
            m_names = met.dictionary.to_pylist()
            tcol = batch.column(2).cast("int64")
            ts = np.asarray(tcol.fill_null(lo_us - step_us) if tcol.null_count else tcol, dtype=np.int64)
            vcol = batch.column(3)
            val = np.asarray(vcol.fill_null(np.nan) if vcol.null_count else vcol, dtype=np.float64)
            col = (ts - lo_us) // step_us
            ok = (col >= 0) & (col < width) & np.isfinite(val) & (s_idx >= 0) & (m_idx >= 0)
            if not ok.all():
                if not ok.any():
                    continue
                s_idx, m_idx, col, val = s_idx[ok], m_idx[ok], col[ok], val[ok]
            pair = s_idx * (len(m_names) + 1) + m_idx
            starts = np.flatnonzero(np.concatenate(([True], pair[1:] != pair[:-1])))
            ends = np.append(starts[1:], pair.size)
            if starts.size > 4 * (len(s_names) * len(m_names)) + 64:  # not sorted: group first
                order = np.argsort(pair, kind="stable")
                pair, col, val = pair[order], col[order], val[order]
                s_idx, m_idx = s_idx[order], m_idx[order]
                starts = np.flatnonzero(np.concatenate(([True], pair[1:] != pair[:-1])))
                ends = np.append(starts[1:], pair.size)
            val32 = val.astype(np.float32)
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                key = (str(s_names[s_idx[a]]), str(m_names[m_idx[a]]))
                if wanted is not None and key[0] not in wanted:
                    continue
                grid.add(key, col[a:b], val32[a:b])
    return grid


def _day_floor(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


def detect_anomalies(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    *,
    services: Sequence[str] | None = None,
    online: bool = True,
    params: DetectParams = DEFAULT,
    step_s: float = 60.0,
    chunk: int = 256,
    history_s: float | None = None,
) -> list[Anomaly]:
    """Anomalies of every (service, metric) of the warehouse overlapping ``[start, end)``.

    The grid starts at UTC midnight ``history_s`` (default: what the baseline
    can use) before ``start``, so a result does not depend on the queried
    range.  Online, data after ``end`` is ignored; in batch, up to
    ``onset_ahead_s`` after it is read to refine onsets.
    """
    if history_s is None and (chained := _chained(con, params, step_s)) is not None:
        hi = end if online else end + timedelta(seconds=params.onset_ahead_s)
        from whatchanged.engine.daystate import window_anomalies

        return window_anomalies(chained, start, end, hi, services=services, online=online)
    hist = params.history_s if history_s is None else history_s
    lo = _day_floor(start - timedelta(seconds=hist))
    first = con.execute("SELECT min(ts) FROM metrics").fetchall()[0][0]
    if first is not None and _day_floor(first) > lo:
        lo = _day_floor(first)  # no grid before the data: cheaper, and still range-independent
    hi = end if online else end + timedelta(seconds=params.onset_ahead_s)
    first_col = math.floor((start - lo).total_seconds() / step_s)
    end_col = math.ceil((end - lo).total_seconds() / step_s)
    step_us = int(step_s * 1_000_000)
    lo_us = int(lo.timestamp() * 1_000_000)
    files = metric_files(con)
    if files is not None:
        files = _files_for(files, lo, hi)
        # nothing to analyse in [start, end): skip reading the history (the row-group
        # statistics on ts answer this without decoding the data)
        window = _files_for(files, start, end)
        if (
            not window
            or not con.execute(
                "SELECT EXISTS (SELECT 1 FROM read_parquet($files) WHERE ts >= $start AND ts < $end)",
                {"files": window, "start": start, "end": end},
            ).fetchall()[0][0]
        ):
            return []
    grid: SeriesGrid | None = None
    if files is not None:
        grid = read_grid(files, lo, hi, step_s=step_s, services=services)
        # the series with data in [start, end)
        series = sorted(k for k, row in grid.rows.items() if np.isfinite(row[first_col:end_col]).any())
    else:
        series = _series_list(con, start, end, services)
    found: list[Anomaly] = []
    for i in range(0, len(series), chunk):
        part = series[i : i + chunk]
        values = grid.matrix(part) if grid is not None else load_matrix(con, part, lo, hi, step_s=step_s)
        if grid is not None:
            for k in part:  # free the rows as they are used
                del grid.rows[k]
        # float32 grids are fine for the medians and scores; the type says float64
        intervals, _ = detect_matrix(
            cast(Array, values), step_s=step_s, params=params, online=online, first_col=first_col
        )
        del values
        for iv in intervals:
            a = _anomaly(
                iv, part[iv.row][0], part[iv.row][1], lambda c: _dt(lo_us + c * step_us), step_us, online
            )
            if a.start < end:
                found.append(a)
    found.sort(key=lambda a: (a.onset, a.service, a.metric))
    return found


_CHAINS: dict[tuple[Any, ...], Any] = {}
_CHAINS_LOCK = threading.Lock()


def _chained(con: duckdb.DuckDBPyConnection, params: DetectParams, step_s: float) -> Any:
    """The day-by-day states (:mod:`whatchanged.engine.daystate`) of the warehouse behind
    ``con``, or None when they do not apply (a view that is not a file listing, a grid
    that does not cut days into whole blocks).  One per file listing, kept per process."""
    from whatchanged.engine.daystate import DayStates, Geometry, home_of

    files = metric_files(con)
    g = Geometry.of(params, step_s)
    if files is None or g is None:
        return None
    key = (tuple(files), params, step_s)
    with _CHAINS_LOCK:
        hit = _CHAINS.get(key)
        if hit is None:
            home = home_of(files)
            writable = home is not None and os.access(home, os.W_OK)
            cache = home / "_cache" / "daystate" if home is not None and writable else None
            hit = DayStates(files, params, g, cache)
            while len(_CHAINS) >= 2:  # each holds the raw grids of the days it read
                _CHAINS.pop(next(iter(_CHAINS)))
            _CHAINS[key] = hit
    return hit


def prepare_states(
    con: duckdb.DuckDBPyConnection, params: DetectParams = DEFAULT, step_s: float = 60.0
) -> tuple[int, int]:
    """Compute and cache the day-by-day detection state of every day of the warehouse behind
    ``con`` that has none yet (after an ingest, before a batch run): later questions read it
    instead of recomputing the history.  Returns (days with data, states computed)."""
    chained = _chained(con, params, step_s)
    if chained is None or not chained.days:
        return 0, 0
    chained.state(chained.days[-1])
    return len(chained.days), int(chained.computed)


def alarms(anomalies: Sequence[Anomaly], params: DetectParams = DEFAULT) -> list[Anomaly]:
    """The anomalies that raise an alarm: per series, the first one, then each that starts
    at least ``rearm_s`` after the previous anomaly ended (an ongoing one keeps the series
    disarmed).  Causal: it only looks at anomalies detected before."""
    out: list[Anomaly] = []
    last_end: dict[tuple[str, str], datetime | None] = {}
    gap = timedelta(seconds=params.rearm_s)
    for a in sorted(anomalies, key=lambda a: (a.service, a.metric, a.start)):
        key = (a.service, a.metric)
        if key in last_end:
            prev = last_end[key]
            if prev is None or a.start < prev + gap:
                if prev is not None and (a.end is None or a.end > prev):
                    last_end[key] = a.end
                continue
        out.append(a)
        last_end[key] = a.end
    out.sort(key=lambda a: (a.detected_at or a.start, a.service, a.metric))
    return out


def with_params(**changes: Any) -> DetectParams:
    """``DEFAULT`` with some fields changed (benchmarks and the CLI)."""
    return replace(DEFAULT, **changes)
