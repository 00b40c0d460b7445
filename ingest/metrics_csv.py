"""Metrics as CSV, long or wide.

Long (one sample per row; ``env`` optional, any other column is a label)::

    timestamp,service,metric,value,env
    2010-11-17T19:22:00+01:00,www-0001,bandwidth_out_mbps,201.37,prod
    2010-11-17T19:23:00+01:00,www-0001,bandwidth_out_mbps,48.9,prod

Wide (one row per service and time; every other column is a metric)::

    timestamp,service,bandwidth_out_mbps,latency_ms
    1290018120,www-0001,201.37,35.2

``timestamp`` (also ``ts`` or ``time``) is epoch seconds or milliseconds
(told apart by magnitude: below 1e11 is seconds), or ISO 8601.  An ISO time
with an offset is converted to UTC; one without an offset is read in
``ctx.tz`` (``--tz``) and ``ctx.tz_assumed`` is set; a local time that does
not exist or is ambiguous on a DST change is an error (give an offset).
An empty ``value`` is a sample with an unknown value (null); in the wide
variant an empty cell is no sample at all.  ``NaN``/``inf`` are kept.

The fast path is one ``pyarrow.csv`` read with explicit column types and
vectorised timestamp parsing.  When it fails, the file is read again row by
row to say exactly where and why (file, line, column, expected, found); with
``--skip-bad`` that slow path also keeps the good rows.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import METRICS, TS
from whatchanged.engine.timeparse import zone
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.text import csv_rows, wrong_width
from whatchanged.ingest.timestamps import EPOCH_TEXT, OFFSET_TEXT, SlowPath, parse_one_ts, ts_column

TS_NAMES = ("timestamp", "ts", "time")
_LABELS = pa.map_(pa.string(), pa.string())
#: Largest block of the streaming CSV read (bytes).
STREAM_BLOCK_BYTES = 16 << 20


@dataclass(frozen=True)
class Layout:
    """Which column plays which role."""

    names: list[str]  # header as written
    ts: int
    service: int
    metric: int | None  # long only
    value: int | None  # long only
    env: int | None
    extra: list[int]  # long: label columns; wide: metric columns

    @property
    def wide(self) -> bool:
        return self.metric is None


def layout(names: Sequence[str], *, file: str) -> Layout:
    """Decide long or wide from the header; an InputError if neither fits."""
    names = list(names)
    low = [n.strip().lower() for n in names]

    def find(*cands: str) -> int | None:
        for c in cands:
            if c in low:
                return low.index(c)
        return None

    ts = find(*TS_NAMES)
    service = find("service")
    if ts is None or service is None:
        missing = "timestamp" if ts is None else "service"
        raise InputError(
            "not a metrics table",
            file=file,
            line=1,
            field=missing,
            expected="columns 'timestamp' and 'service' (long: also 'metric','value'; wide: metric columns)",
            found=",".join(names),
        )
    metric, value, env = find("metric"), find("value"), find("env", "environment")
    if (metric is None) != (value is None):
        have = "metric" if value is None else "value"
        raise InputError(
            "long metrics table needs both 'metric' and 'value'",
            file=file,
            line=1,
            field="value" if value is None else "metric",
            expected="'metric' and 'value' columns together",
            found=f"only '{have}'",
        )
    used = {i for i in (ts, service, metric, value, env) if i is not None}
    extra = [i for i in range(len(names)) if i not in used]
    if metric is None and not extra:
        raise InputError(
            "wide metrics table without metric columns",
            file=file,
            line=1,
            expected="at least one column besides timestamp, service and env",
            found=",".join(names),
        )
    dup = sorted({n for n in low if low.count(n) > 1})
    if dup:
        raise InputError("duplicate column names", file=file, line=1, expected="unique", found=dup)
    return Layout(names, ts, service, metric, value, env, extra)


# -- assembling the metrics table --------------------------------------------------
def labels_column(names: Sequence[str], columns: Sequence[pa.Array], n: int) -> pa.Array:
    """Columns → a map column (name → value), empty cells left out; null when no label."""
    if not columns:
        return pa.nulls(n, _LABELS)
    k = len(columns)
    strs = [pc.cast(c, pa.string()) for c in columns]
    valid = np.stack([np.asarray(c.is_valid()) for c in strs], axis=1)  # (n, k)
    counts = valid.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat_keys = np.tile(np.arange(k), n)[valid.ravel()]
    # row-major interleave of the k columns: row i, column j → j * n + i
    idx = (np.arange(k)[None, :] * n + np.arange(n)[:, None]).ravel()[valid.ravel()]
    items = pc.take(pa.concat_arrays(strs), pa.array(idx))
    keys = pc.take(pa.array(list(names), pa.string()), pa.array(flat_keys))
    mask = pa.array(counts == 0)
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=_LABELS, mask=mask)


def assemble(lay: Layout, ts: pa.Array, cols: dict[int, Any]) -> pa.Table:
    """The metrics table from parsed columns (index in the header → array or chunked array)."""
    n = len(ts)
    cols = {i: c if isinstance(c, pa.ChunkedArray) else pa.chunked_array([c]) for i, c in cols.items()}
    ts = pa.chunked_array([ts])
    service = cols[lay.service].cast(pa.string())
    env = cols[lay.env].cast(pa.string()) if lay.env is not None else pa.nulls(n, pa.string())
    if lay.metric is not None and lay.value is not None:
        metric = cols[lay.metric].cast(pa.string())
        value = cols[lay.value].cast(pa.float64())
        labels = labels_column(
            [lay.names[i].strip() for i in lay.extra], [cols[i].combine_chunks() for i in lay.extra], n
        )
        return pa.Table.from_arrays([ts, service, metric, value, env, labels], schema=METRICS)
    parts = []
    for i in lay.extra:
        value = cols[i].cast(pa.float64())
        keep = value.is_valid()
        part = pa.Table.from_arrays(
            [
                ts,
                service,
                pa.repeat(pa.scalar(lay.names[i].strip(), pa.string()), n),
                value,
                env,
                pa.nulls(n, _LABELS),
            ],
            schema=METRICS,
        )
        parts.append(part.filter(keep))
    return pa.concat_tables(parts).combine_chunks() if parts else METRICS.empty_table()


def check_required(lay: Layout, cols: dict[int, Any], *, empty_strings: bool = True) -> None:
    """Empty service or metric names cannot be stored: let the slow path say where.

    ``empty_strings=False`` when the source cannot hold them (the CSV read
    turns empty cells into nulls).
    """
    for i in (lay.service, lay.metric):
        if i is None:
            continue
        col = cols[i]
        if col.null_count or (empty_strings and pc.any(pc.equal(pc.utf8_length(col), 0)).as_py()):
            raise SlowPath


# -- the CSV fast path ----------------------------------------------------------
def _header(path: Path, ctx: ReadContext) -> tuple[list[str], list[str] | None]:
    rows = csv_rows(path, ctx)
    header = next(rows, (1, None))[1]
    first = next(rows, (2, None))[1]
    rows.close()
    if header is None:
        raise InputError("empty file", file=str(path), line=1, expected="a header line", found="")
    return header, first


def _column_types(lay: Layout, first: list[str] | None) -> dict[str, pa.DataType]:
    """The type of each column for ``pyarrow.csv``; the timestamp's from the first data row."""
    ts_name = lay.names[lay.ts]
    ts_type: pa.DataType = pa.string()
    if first is not None and len(first) > lay.ts:
        cell = first[lay.ts].strip()
        if re.fullmatch(r"[+-]?\d+", cell):
            ts_type = pa.int64()
        elif EPOCH_TEXT.match(cell):
            ts_type = pa.float64()
        elif OFFSET_TEXT.search(cell):
            ts_type = TS  # parsed by the (threaded) CSV reader; naive values make it fail → slow path
    types: dict[str, pa.DataType] = {ts_name: ts_type}
    for i in (lay.service, lay.metric, lay.env):
        if i is not None:
            types[lay.names[i]] = pa.string()
    numeric = lay.extra if lay.wide else [lay.value] if lay.value is not None else []
    for i in numeric:
        types[lay.names[i]] = pa.float64()
    if not lay.wide:
        for i in lay.extra:
            types[lay.names[i]] = pa.string()
    return types


def _convert_options(lay: Layout, first: list[str] | None) -> pcsv.ConvertOptions:
    return pcsv.ConvertOptions(
        column_types=_column_types(lay, first),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _fast(path: Path, lay: Layout, first: list[str] | None, ctx: ReadContext) -> pa.Table:
    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=16 << 20),
            parse_options=pcsv.ParseOptions(newlines_in_values=False),
            convert_options=_convert_options(lay, first),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise SlowPath from None
    return _fast_table(table, lay, ctx)


def _fast_table(table: pa.Table, lay: Layout, ctx: ReadContext) -> pa.Table:
    """The metrics table of rows parsed by ``pyarrow.csv`` (``SlowPath`` if any is not right)."""
    if table.column_names != lay.names:
        raise SlowPath
    cols: dict[int, Any] = {i: table.column(i) for i in range(len(lay.names))}
    del table
    check_required(lay, cols, empty_strings=False)
    strings = [c for c in cols.values() if pa.types.is_string(c.type) and c.null_count < len(c)]
    if any((pc.max(pc.utf8_length(c)).as_py() or 0) > ctx.max_field_chars for c in strings):
        raise SlowPath  # the precise path names the line and column
    ts = ts_column(cols.pop(lay.ts), ctx)
    if ctx.times.first_outside(ts) is not None:
        raise SlowPath  # the precise path names the line
    return assemble(lay, ts, cols)


def _fast_batches(
    path: Path, lay: Layout, first: list[str] | None, ctx: ReadContext, block_size: int
) -> Iterator[tuple[int, pa.Table]]:
    """``(rows read, metrics table)`` per block of about ``block_size`` bytes (``SlowPath`` at
    the first block that is not right)."""
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=block_size),
            parse_options=pcsv.ParseOptions(newlines_in_values=False),
            convert_options=_convert_options(lay, first),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise SlowPath from None
    with contextlib.closing(reader):
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SlowPath from None
            yield batch.num_rows, _fast_table(pa.Table.from_batches([batch]), lay, ctx)


# -- the precise path -------------------------------------------------------------
def _number(text: str) -> float | None:
    raw = text.strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(raw) from None


def _slow(path: Path, lay: Layout, ctx: ReadContext) -> pa.Table:
    """Row by row: the error names file, line, column, expected and found."""
    parts = list(_slow_batches(path, lay, ctx))
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _slow_batches(
    path: Path, lay: Layout, ctx: ReadContext, *, skip: int = 0, batch_rows: int | None = None
) -> Iterator[pa.Table]:
    """:func:`_slow` in tables of ``batch_rows`` rows (None: one table), after the first
    ``skip`` data rows (read already by the fast path)."""
    file = str(path)
    numeric = set(lay.extra if lay.wide else [lay.value] if lay.value is not None else [])
    rows = csv_rows(path, ctx)
    next(rows, None)
    ts_out: list[int] = []
    cols: dict[int, list[Any]] = {i: [] for i in range(len(lay.names)) if i != lay.ts}
    yielded = False

    def table() -> pa.Table:
        ts = pa.array(ts_out, pa.int64()).cast(TS)
        arrays: dict[int, pa.Array] = {
            i: pa.array(v, pa.float64() if i in numeric else pa.string()) for i, v in cols.items()
        }
        return assemble(lay, ts, arrays)

    for line, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if skip:
            skip -= 1
            continue
        if len(row) != len(lay.names):
            ctx.reject(wrong_width(file, line, lay.names, len(row)))
            continue
        error = _check_row(row, lay, numeric, ctx, file, line)
        if error is not None:
            ctx.reject(error)
            continue
        us, _ = parse_one_ts(row[lay.ts], ctx)
        ts_out.append(us or 0)
        for i in cols:
            cell = row[i].strip() if i in numeric else row[i]  # names as written, like the fast path
            if i in numeric:
                cols[i].append(_number(cell))
            else:
                cols[i].append(cell if cell != "" else None)
        if batch_rows is not None and len(ts_out) >= batch_rows:
            yield table()
            yielded = True
            ts_out.clear()
            for v in cols.values():
                v.clear()
    if ts_out or not yielded:
        yield table()


def _check_row(
    row: list[str], lay: Layout, numeric: set[int], ctx: ReadContext, file: str, line: int
) -> InputError | None:
    _, expected = parse_one_ts(row[lay.ts], ctx)
    if expected:
        return InputError(
            "bad timestamp",
            file=file,
            line=line,
            field=lay.names[lay.ts],
            expected=expected,
            found=row[lay.ts],
        )
    for i, what in ((lay.service, "a service name"), (lay.metric, "a metric name")):
        if i is not None and not row[i]:
            return InputError("empty name", file=file, line=line, field=lay.names[i], expected=what, found="")
    for i in sorted(numeric):
        try:
            _number(row[i])
        except ValueError:
            return InputError(
                "bad value",
                file=file,
                line=line,
                field=lay.names[i],
                expected="a number (empty, NaN and inf allowed)",
                found=row[i],
            )
    return None


def fast_or_slow(fast: Callable[[], pa.Table], slow: Callable[[], pa.Table]) -> pa.Table:
    """Run ``fast``; when it cannot read the input, run ``slow`` (which names the problem)."""
    try:
        return fast()
    except SlowPath:
        return slow()


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    header, first = _header(path, ctx)
    lay = layout(header, file=str(path))
    zone(ctx.tz)  # a bad --tz is a ConfigError before any row is read
    table = fast_or_slow(lambda: _fast(path, lay, first, ctx), lambda: _slow(path, lay, ctx))
    return {"metrics": table}


def stream(path: Path, ctx: ReadContext) -> Iterator[dict[str, pa.Table]]:
    """:func:`read` in parts of about ``ctx.batch_rows`` rows; a file that small is read whole.

    The fast path reads block by block; at the first block it cannot read, the precise path
    takes over after the rows already given (so a bad line is named as :func:`read` names
    it, and with ``--skip-bad`` the good rows are kept once)."""
    header, first = _header(path, ctx)
    lay = layout(header, file=str(path))
    zone(ctx.tz)
    row_bytes = len(",".join(first if first is not None else header)) + 1
    # blocks of at most 16 MiB, as the one-shot read: pyarrow's streaming reader decodes a few
    # blocks ahead on its threads, so the block size bounds that memory too
    block_size = max(1 << 12, min(ctx.batch_rows * row_bytes, STREAM_BLOCK_BYTES))
    if path.stat().st_size <= block_size:
        yield read(path, ctx)
        return
    done = 0
    try:
        for rows, table in _fast_batches(path, lay, first, ctx, block_size):
            yield {"metrics": table}
            done += rows
    except SlowPath:
        for table in _slow_batches(path, lay, ctx, skip=done, batch_rows=ctx.batch_rows):
            yield {"metrics": table}


def sniff(path: Path, head: bytes) -> bool:
    if path.suffix.lower() not in (".csv", ".txt", ""):
        return False
    lines = head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()
    if not lines:
        return False
    cols = [c.strip().strip('"').lower() for c in lines[0].split(",")]
    return any(c in cols for c in TS_NAMES) and "service" in cols and len(cols) >= 3


READER = Reader(
    name="metrics_csv",
    description="metrics CSV, long 'timestamp,service,metric,value[,env,…]' or wide 'timestamp,service,<metric>…'",
    sniff=sniff,
    read=read,
    stream=stream,
)
