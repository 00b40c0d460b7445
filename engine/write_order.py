"""The order a write stores rows in: by (day, natural key), without a comparison sort when
the input's layout allows; and numpy <-> Arrow conversions that do not import pandas.

Used by :meth:`whatchanged.engine.warehouse.Warehouse.commit` and by compaction.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from whatchanged.engine.schema import KEYS

_US_PER_DAY = 86_400_000_000
_EPOCH_DAY = date(1970, 1, 1)
#: Scrapes of fewer series than this are not compared block by block (one Arrow call per
#: block costs about as much as hashing the block's rows); the general path orders them.
_MIN_SCRAPE_WIDTH = 256
#: Low-cardinality strings stored as dictionaries in partitioned tables.
_DICT_COLUMNS = ("service", "metric", "check", "state", "state_type", "source", "env")


# -- numpy <-> Arrow without pyarrow's pandas shim -----------------------------------
# ``Array.to_numpy()``, ``pa.array(ndarray)`` and Python scalars in compute calls make
# pyarrow import pandas (~0.3 s): the write path goes through buffers instead.
_NUMPY_TYPES: dict[pa.DataType, Any] = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def to_numpy(arr: pa.Array | pa.ChunkedArray) -> Any:
    """The values of a fixed-width numeric (or timestamp: int64) array as numpy, read-only.

    Zero-copy for one chunk.  Values under nulls are unspecified: callers check
    ``null_count`` or use :func:`_valid`.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if pa.types.is_timestamp(arr.type):
        arr = arr.view(pa.int64())
    dtype = np.dtype(_NUMPY_TYPES[arr.type])
    if len(arr) == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def _valid(arr: pa.Array) -> Any:
    """A numpy bool mask of the non-null slots of ``arr``."""
    bitmap = arr.buffers()[0]
    if bitmap is None or not arr.null_count:
        return np.ones(len(arr), dtype=bool)
    if arr.null_count == len(arr):
        return np.zeros(len(arr), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + len(arr)].astype(bool)


def from_numpy(values: Any, *, valid: Any = None, type_: pa.DataType | None = None) -> pa.Array:
    """A numeric numpy array as Arrow (zero-copy when contiguous); ``valid`` False → null."""
    values = np.ascontiguousarray(values)
    arrow_type = type_ or pa.from_numpy_dtype(values.dtype)
    bitmap = None
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(arrow_type, len(values), [bitmap, pa.py_buffer(values)])


def day_runs(ts: Any) -> list[tuple[int, int, int]]:
    """``(day, first row, end row)`` of each day in ``ts`` (µs, numpy), which is sorted by
    day first: a binary search per day, no array of days."""
    runs: list[tuple[int, int, int]] = []
    lo, n = 0, len(ts)
    while lo < n:
        day = int(ts[lo]) // _US_PER_DAY
        hi = bisect.bisect_left(ts, day + 1, lo, n, key=lambda v: int(v) // _US_PER_DAY)
        runs.append((day, lo, hi))
        lo = hi
    return runs


def day_name(day: int) -> str:
    return date.fromordinal(_EPOCH_DAY.toordinal() + day).isoformat()


def _ranked(col: pa.ChunkedArray | pa.Array) -> tuple[pa.DictionaryArray, Any]:
    """``col`` dictionary-encoded with a sorted dictionary, and each row's rank (numpy; null → -1)."""
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray) and pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    elif isinstance(col, pa.DictionaryArray):
        col = col.dictionary_decode()
    n = len(col)
    if col.null_count == n:  # e.g. no ``env`` column: nothing to encode
        return (
            pa.DictionaryArray.from_arrays(pa.nulls(n, pa.int32()), pa.nulls(0, col.type)),
            np.full(n, -1, dtype=np.int32),
        )
    encoded = pc.dictionary_encode(col)  # chunk by chunk: no copy of the strings
    if isinstance(encoded, pa.ChunkedArray):
        chunks = pa.table({"c": encoded}).unify_dictionaries().column(0).chunks
    else:
        chunks = [encoded]
    values = chunks[0].dictionary
    order = to_numpy(pc.sort_indices(values))
    dictionary = values.take(from_numpy(order))
    rank = np.empty(len(order) + 1, dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    rank[-1] = -1  # where nulls point below
    row_rank = np.empty(n, dtype=np.int32)
    start = 0
    for chunk in chunks:  # rank of each row, chunk by chunk into one array
        end = start + len(chunk)
        indices = to_numpy(chunk.indices)
        if chunk.null_count:
            indices = np.where(_valid(chunk.indices), indices, -1)
        np.take(rank, indices, out=row_rank[start:end])
        start = end
    new_idx = from_numpy(row_rank, valid=row_rank >= 0 if col.null_count else None)
    return pa.DictionaryArray.from_arrays(new_idx, dictionary), row_rank


def _series_numbers(ranks: list[Any], sizes: list[int]) -> Any:
    """One int32 number per row for the combination of ``ranks`` (null rank -1 → 0)."""
    series = ranks[0].astype(np.int32)
    series += 1
    for r, size in zip(ranks[1:], sizes[1:], strict=True):
        series *= size
        series += r
        series += 1
    return series


def _scrape_blocks(ts: Any) -> tuple[int, int] | None:
    """``(rows per block, blocks)`` when ``ts`` is written scrape by scrape: blocks of
    equal size, one time per block, times increasing from block to block (a Prometheus
    dump, an exporter's CSV); else None."""
    n = len(ts)
    width = 0
    probe = 1024
    while not width:  # the first change of time, looked for in growing prefixes
        head = ts[:probe] != ts[0]
        if head.any():
            width = int(np.argmax(head))
        elif probe >= n:
            width = n
        probe *= 8
    if width < 2 or n % width:
        return None
    blocks = n // width
    t2 = ts.reshape(blocks, width)
    if not (t2 == t2[:, :1]).all() or (blocks > 1 and not (t2[1:, 0] > t2[:-1, 0]).all()):
        return None
    return width, blocks


def _day_cuts(block_ts: Any) -> list[int]:
    """Block numbers where a new day starts, with 0 and the number of blocks."""
    days = block_ts // _US_PER_DAY
    return [0, *(np.flatnonzero(np.diff(days)) + 1).tolist(), len(block_ts)]


def _transposed(perm: Any, width: int, bounds: list[int]) -> Any:
    """Row numbers in series-major order, day by day: series ``perm[p]`` (the p-th in key
    order) of block k is row ``perm[p] + width * k``."""
    n = width * bounds[-1]
    order = np.empty(n, dtype=np.int32 if n < 1 << 31 else np.int64)  # int32: half the memory
    for lo, hi in itertools.pairwise(bounds):
        view = order[lo * width : hi * width].reshape(width, hi - lo)
        np.add(
            perm[:, None], width * np.arange(lo, hi, dtype=order.dtype)[None, :], out=view, dtype=order.dtype
        )
    return order


def _blocked_order(ts: Any, series: Any) -> tuple[Any, Any] | None:
    """The order for input written scrape by scrape (:func:`_scrape_blocks`) with the same
    series in the same order in every block: a transpose of the blocks, no sort.  None
    when the input is not laid out like that."""
    shape = _scrape_blocks(ts)
    if shape is None:
        return None
    width, blocks = shape
    s2 = series.reshape(blocks, width)
    if not (s2 == s2[0]).all():
        return None
    perm = np.argsort(s2[0], kind="stable")
    first = s2[0][perm]
    if (first[1:] == first[:-1]).any():
        return None  # a series twice at one time: duplicates, the general path drops them
    return _transposed(perm, width, _day_cuts(ts[::width])), None


def _grouped_order(group: Any, groups: int, ts: Any) -> tuple[Any, Any] | None:
    """A stable radix sort on the group number alone (``ts`` kept in input order within a
    group), valid when each group's times are already non-decreasing in the input — the
    usual case.  None otherwise."""
    if groups <= 1 << 16:
        order = np.argsort(group.astype(np.uint16), kind="stable")
    else:  # two stable 16-bit passes, least significant first
        low = np.argsort((group & 0xFFFF).astype(np.uint16), kind="stable")
        order = low[np.argsort((group[low] >> 16).astype(np.uint16), kind="stable")]
    sorted_group = group[order]
    sorted_ts = ts[order]
    same = sorted_group[1:] == sorted_group[:-1]
    if (same & (sorted_ts[1:] < sorted_ts[:-1])).any():
        return None
    dup = np.zeros(len(order), dtype=bool)
    dup[1:] = same & (sorted_ts[1:] == sorted_ts[:-1])
    return order, dup


def _order(ts: Any, sort_cols: list[Any]) -> tuple[Any, Any]:
    """Stable sort order by (day of ``ts``, *sort_cols) and a mask (in sorted order) of
    the rows whose key repeats the one before (None: no repeats).

    ``sort_cols`` are int32 ranks of string keys and the int64 ``ts``.  When
    the key ends with ``ts`` (metrics) and the day × rank combinations fit in
    2**26, the rows are put in order without a comparison sort when their layout
    allows (:func:`_blocked_order`, :func:`_grouped_order`), else (day, ranks…,
    time of day) is packed into one int64 and sorted with a single-key stable
    argsort; otherwise ``np.lexsort`` sorts on all keys.
    """
    n = len(ts)
    if n == 0:
        return np.zeros(0, dtype=np.int64), None
    *ranks, last = sort_cols
    if last is ts and ranks and all(r.dtype == np.int32 for r in ranks):
        first_day = int(ts.min()) // _US_PER_DAY
        n_days = int(ts.max()) // _US_PER_DAY - first_day + 1
        sizes = [int(r.max()) + 2 for r in ranks]
        width = int(np.prod(sizes, dtype=object))
        if n_days * width < 1 << 26:
            series = _series_numbers(ranks, sizes)
            found = _blocked_order(ts, series)
            if found is not None:
                return found
            group = ts // _US_PER_DAY
            group -= first_day
            group *= width
            group += series
            del series
            found = _grouped_order(group, n_days * width, ts)
            if found is not None:
                return found
            key = (group << 37) | (ts % _US_PER_DAY)  # time of day < 2**37 µs
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            dup = np.zeros(n, dtype=bool)
            dup[1:] = sorted_key[1:] == sorted_key[:-1]
            return order, dup
    days = ts // _US_PER_DAY
    order = np.lexsort([*reversed(sort_cols), days])  # last key is primary; stable
    dup = np.zeros(n, dtype=bool)
    if n > 1:
        same = days[order]
        same = same[1:] == same[:-1]
        for c in sort_cols:
            sc = c[order]
            same &= sc[1:] == sc[:-1]
        dup[1:] = same
    return order, dup


def _take(col: pa.ChunkedArray | pa.Array, take: pa.Array) -> pa.ChunkedArray | pa.Array:
    if col.null_count == len(col):
        return pa.nulls(len(take), col.type)
    if isinstance(col, pa.ChunkedArray) and col.num_chunks > 1:
        col = col.combine_chunks()  # one gather instead of a chunk lookup per row
    return col.take(take)


def _gather(
    data: pa.Table, name: str, take: pa.Array, encoded: Mapping[str, tuple[pa.DictionaryArray, Any]]
) -> pa.Array | pa.ChunkedArray:
    """Column ``name`` of ``data`` in the order ``take`` (dictionary-encoded if in ``encoded``)."""
    col = data.column(name)
    if col.null_count == len(col):  # plain nulls: far cheaper to write than a dictionary
        return pa.nulls(len(take), col.type.value_type if pa.types.is_dictionary(col.type) else col.type)
    if name in encoded:
        enc = encoded[name][0]
        return pa.DictionaryArray.from_arrays(enc.indices.take(take), enc.dictionary)
    return _take(col, take)


def _sorted_blocks(table: str, data: pa.Table, ts: Any) -> tuple[pa.Table, list[int]] | None:
    """:func:`sorted_by_day_and_key` for input written scrape by scrape with the same
    series, in the same order, in every scrape (checked: the key columns of every block
    equal the first block's).  Only the first block is encoded and ordered; the rest
    follows by transposition.  None for any other input."""
    keys = KEYS[table]
    if keys[-1] != "ts" or not data.num_rows:
        return None
    shape = _scrape_blocks(ts)
    if shape is None:
        return None
    width, blocks = shape
    if width < _MIN_SCRAPE_WIDTH:
        return None  # many small blocks: the check below would cost more than it saves
    names = keys[:-1]
    firsts = {k: data.column(k).slice(0, width) for k in names}
    for k in names:
        col = data.column(k)
        if any(not col.slice(b * width, width).equals(firsts[k]) for b in range(1, blocks)):
            return None
    ranked = {k: _ranked(firsts[k]) for k in names}
    ranks = [ranked[k][1] for k in names]
    sizes = [int(r.max()) + 2 for r in ranks]
    if int(np.prod(sizes, dtype=object)) >= 1 << 31:
        return None
    series = _series_numbers(ranks, sizes)
    perm = np.argsort(series, kind="stable")
    if (series[perm][1:] == series[perm][:-1]).any():
        return None  # a series twice in a scrape: the general path drops the repeats
    block_ts = np.ascontiguousarray(ts[::width])
    bounds = _day_cuts(block_ts)
    order = _transposed(perm, width, bounds)
    n = len(order)
    out_ts = np.empty(n, dtype=np.int64)
    # int16 dictionary indices when the dictionary allows: half the memory
    out_ranks: dict[str, Any] = {
        k: np.empty(n, dtype=np.int16 if len(perm) < 1 << 15 else np.int32) for k in names
    }
    for lo, hi in itertools.pairwise(bounds):
        span = slice(lo * width, hi * width)
        out_ts[span].reshape(width, hi - lo)[:] = block_ts[None, lo:hi]
        for k, r in zip(names, ranks, strict=True):
            out_ranks[k][span].reshape(width, hi - lo)[:] = r[perm][:, None]
    others = [c for c in _DICT_COLUMNS if c in data.column_names and c not in names]
    take = from_numpy(order)
    with ThreadPoolExecutor(max_workers=2) as pool:
        encoded = dict(zip(others, pool.map(lambda c: _ranked(data.column(c)), others), strict=True))
        rest = [c for c in data.column_names if c != "ts" and c not in names]
        gathered = dict(zip(rest, pool.map(lambda c: _gather(data, c, take, encoded), rest), strict=True))
    cols: list[pa.Array | pa.ChunkedArray] = []
    for name in data.column_names:
        if name == "ts":
            cols.append(from_numpy(out_ts, type_=data.schema.field("ts").type))
        elif name in out_ranks:
            idx = out_ranks[name]
            indices = from_numpy(idx, valid=idx >= 0 if (ranked[name][1] < 0).any() else None)
            cols.append(pa.DictionaryArray.from_arrays(indices, ranked[name][0].dictionary))
        else:
            cols.append(gathered[name])
    days = [int(block_ts[lo]) // _US_PER_DAY for lo in bounds[:-1]]
    return pa.Table.from_arrays(cols, names=data.column_names), days


def sorted_by_day_and_key(table: str, data: pa.Table) -> tuple[pa.Table, list[int]]:
    """``data`` sorted by (day, natural key), stable, first row of each key kept; and the
    days it has (days since 1970-01-01, UTC).

    String columns are ranked through a sorted dictionary so the sort is on
    integers; duplicates are then adjacent and are found by comparing each row
    with the one before it.  Encoding and gathering run on two threads (Arrow
    releases the GIL).  Input written scrape by scrape takes :func:`_sorted_blocks`.
    """
    keys = KEYS[table]
    ts_np = to_numpy(data.column("ts"))
    blocked = _sorted_blocks(table, data, ts_np)
    if blocked is not None:
        return blocked
    names = [k for k in keys if k != "ts"]
    names += [c for c in _DICT_COLUMNS if c in data.column_names and c not in names]
    with ThreadPoolExecutor(max_workers=2) as pool:
        encoded = dict(zip(names, pool.map(lambda c: _ranked(data.column(c)), names), strict=True))
        order, dup = _order(ts_np, [ts_np if k == "ts" else encoded[k][1] for k in keys])
        if dup is not None and dup.any():
            order = order[~dup]
        take = from_numpy(order)
        sorted_ts = ts_np[order]

        def gather(name: str) -> pa.Array | pa.ChunkedArray:
            if name == "ts":
                return from_numpy(sorted_ts, type_=data.schema.field("ts").type)
            return _gather(data, name, take, encoded)

        cols = list(pool.map(gather, data.column_names))
    days = [day for day, _, _ in day_runs(sorted_ts)]
    return pa.Table.from_arrays(cols, names=data.column_names), days
