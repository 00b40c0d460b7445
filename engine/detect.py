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
the warehouse's Parquet files by :func:`read_grid`).  The parameters, the interval
arithmetic and the one-series detector live in :mod:`whatchanged.engine.intervals`; this
module reads the warehouse and re-exports them.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import Array
from whatchanged.engine.extent import DAY_DIR
from whatchanged.engine.intervals import (
    DAY_S,
    DEFAULT,
    DetectParams,
    Interval,
    detect_matrix,
    detect_series,
    find_intervals,
    grid_series,
    intervals_of,
    past_max,
)
from whatchanged.engine.intervals import (
    _anomaly as _anomaly,
)
from whatchanged.engine.intervals import (
    _dt as _dt,
)
from whatchanged.engine.intervals import (
    _onset as _onset,
)
from whatchanged.engine.model import Anomaly
from whatchanged.engine.snapshot import Snapshot

# -- one series ---------------------------------------------------------------------------------


# -- the warehouse --------------------------------------------------------------------------------


def load_matrix(
    con: Snapshot,
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
    con: Snapshot,
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
        from whatchanged.engine.daywindow import window_anomalies

        median = window_anomalies(chained, start, end, hi, services=services, online=online)
        ctx = _contextual(chained)
        if ctx is None:
            return median
        return with_contextual(median, ctx.anomalies(start, end, end, services=services))
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
    files = _files_for(con.files("metrics"), lo, hi)
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
    grid = read_grid(files, lo, hi, step_s=step_s, services=services)
    # the series with data in [start, end)
    series = sorted(k for k, row in grid.rows.items() if np.isfinite(row[first_col:end_col]).any())
    found: list[Anomaly] = []
    for i in range(0, len(series), chunk):
        part = series[i : i + chunk]
        values = grid.matrix(part)
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


def _chained(con: Snapshot, params: DetectParams, step_s: float) -> Any:
    """The day-by-day states (:mod:`whatchanged.engine.daystate`) of the warehouse behind
    ``con``, or None when they do not apply (a grid that does not cut days into whole
    blocks).  One per data version of the metrics, kept per
    process."""
    from whatchanged.engine.daystate import Geometry
    from whatchanged.engine.daystate_cache import DayStates

    g = Geometry.of(params, step_s)
    if g is None:
        return None
    key = (con.data_version(("metrics",)), params, step_s)
    with _CHAINS_LOCK:
        hit = _CHAINS.get(key)
        if hit is None:
            cache_dir = con.cache_dir
            cache = cache_dir / "daystate" if cache_dir is not None else None
            hit = DayStates(con.files("metrics"), params, g, cache, manifests=con.manifests)
            while len(_CHAINS) >= 2:  # each holds the raw grids of the days it read
                _CHAINS.pop(next(iter(_CHAINS)))
            _CHAINS[key] = hit
    return hit


def prepare_states(con: Snapshot, params: DetectParams = DEFAULT, step_s: float = 60.0) -> tuple[int, int]:
    """Compute and cache the day-by-day detection state of every day of the warehouse behind
    ``con`` that has none yet (after an ingest, before a batch run), the contextual detector's
    results included: later questions read it instead of recomputing the history.  Returns
    (days with data, states computed)."""
    chained = _chained(con, params, step_s)
    if chained is None or not chained.days:
        return 0, 0
    ctx = _contextual(chained)
    if ctx is not None:
        ctx.analyze()  # the day states with it, a day ahead
    chained.state(chained.days[-1])
    return len(chained.days), int(chained.computed)


#: each day-state chain's contextual results, as long as the chain is kept (:data:`_CHAINS`)
_CTX: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _contextual(chained: Any) -> Any:
    """The contextual detector's day-by-day results over the day states ``chained`` (one per
    chain, kept as long as the chain is), or None when it is switched off."""
    if not FLEET_CONTEXTUAL:
        return None
    from whatchanged.engine.contextual import CONTEXT_DEFAULT
    from whatchanged.engine.ctxchain import CtxChain

    with _CHAINS_LOCK:
        hit = _CTX.get(chained)
        if hit is None:
            hit = _CTX[chained] = CtxChain(chained, CONTEXT_DEFAULT)
    return hit


#: the fleet runs the contextual detector beside the median one (docs/detection.md §2c;
#: WHATCHANGED_CONTEXTUAL=0 turns it off)
FLEET_CONTEXTUAL = os.environ.get("WHATCHANGED_CONTEXTUAL", "1").strip() != "0"


def with_contextual(found: list[Anomaly], ctx: Sequence[Anomaly]) -> list[Anomaly]:
    """The median detector's anomalies and the contextual ones of the series and times they
    do not already cover (the median detector's onset is to the minute)."""
    if not ctx:
        return found
    by_series: dict[tuple[str, str], list[Anomaly]] = {}
    for a in found:
        by_series.setdefault((a.service, a.metric), []).append(a)
    far = datetime.max.replace(tzinfo=UTC)
    out = list(found)
    for c in ctx:
        c_end = c.end or far
        if any(
            a.start < c_end and c.onset < (a.end or far) for a in by_series.get((c.service, c.metric), ())
        ):
            continue
        out.append(c)
    out.sort(key=lambda x: (x.onset, x.service, x.metric))
    return out


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


#: this module's names, with those of the modules it was split into (one import for callers)
__all__ = [
    "DAY_S",
    "DEFAULT",
    "DetectParams",
    "Interval",
    "SeriesGrid",
    "alarms",
    "detect_anomalies",
    "detect_matrix",
    "detect_series",
    "find_intervals",
    "grid_series",
    "intervals_of",
    "load_matrix",
    "past_max",
    "prepare_states",
    "read_grid",
    "with_params",
]
