"""The raw grid of a UTC day of the metrics table: its files, read into a ``(series, step)``
matrix of values as stored (:func:`read_day`), the input of :mod:`whatchanged.engine.daystate`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime

import numpy as np
from numpy.typing import NDArray

from whatchanged.engine.baseline import Array
from whatchanged.engine.daystate import (
    Geometry,
    Key,
)
from whatchanged.engine.extent import DAY_DIR
from whatchanged.engine.write_order import to_numpy


def day_files(files: Sequence[str]) -> dict[date, list[str]]:
    """Files per UTC day of the day-partitioned metrics table (files without a day: skipped)."""
    out: dict[date, list[str]] = {}
    for f in files:
        m = DAY_DIR.search(f)
        if m:
            out.setdefault(date.fromisoformat(m.group(1)), []).append(f)
    return {d: sorted(v) for d, v in sorted(out.items())}


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


#: Series per batch of the dense day read (:func:`_dense_day`).
DENSE_BATCH_SERIES = 256


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
        ts_type = pf.schema_arrow.field(ts_at).type if ts_at >= 0 else None
        if ts_type is None or not pa.types.is_timestamp(ts_type) or ts_type.unit != "us":
            return None
        for r in range(meta.num_row_groups):
            stats = meta.row_group(r).column(ts_at).statistics
            if stats is None or not stats.has_min_max:
                return None
            # the stored integers: a datetime (``stats.min``) makes pyarrow import pandas
            if stats.min_raw < lo_us or stats.max_raw > last_us:
                return None
        handles.append(pf)
    keys: list[Key] = []
    total = sum(pf.metadata.num_rows for pf in handles) // cols
    grid = np.empty((total, cols))
    row = 0
    expected_ts = lo_us + np.arange(cols, dtype=np.int64) * step_us
    for pf in handles:
        # a few hundred series at a time: the same memory is reused batch after batch
        for batch in pf.iter_batches(
            batch_size=cols * DENSE_BATCH_SERIES,
            columns=["service", "metric", "ts", "value"],
            use_threads=False,
        ):
            runs = batch.num_rows // cols
            if not batch.num_rows:
                continue
            if batch.num_rows % cols or row + runs > total:
                return None
            svc, met, tcol, vcol = batch.columns
            if svc.null_count or met.null_count or tcol.null_count or tcol.type.bit_width != 64:
                return None
            if not (pa.types.is_dictionary(svc.type) and pa.types.is_dictionary(met.type)):
                return None
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
            grid[row : row + runs] = vals.reshape(runs, cols).astype(np.float32)  # rounded as stored
            row += runs
    if not keys or row != total or any(a >= b for a, b in itertools.pairwise(keys)):
        return None  # out of order or a series twice: the general path sorts and averages
    bad = ~np.isfinite(grid)
    if bad.any():
        grid[bad] = np.nan  # an infinite value is no sample, as in the general path
    return keys, grid


def _rows_in(files: Sequence[str]) -> int | None:
    """The rows of Parquet ``files`` from their footers (None: one unreadable or gone)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(sum(pq.read_metadata(f).num_rows for f in files))
    except (OSError, pa.ArrowException):
        return None
