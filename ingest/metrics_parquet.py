"""Metrics as Parquet, long or wide (the columns of the metrics CSV).

::

    timestamp: timestamp[us, tz=UTC]   service: string   metric: string   value: double   env: string
    2010-11-17 18:22:00Z               www-0001          bandwidth_out_mbps  201.37        prod

``timestamp`` (also ``ts``/``time``) may be a tz-aware timestamp (converted
to UTC), a naive timestamp (read in ``ctx.tz``; ``ctx.tz_assumed`` set),
epoch seconds or milliseconds (integers or floats, by magnitude), or ISO 8601
strings.  Wide files (``timestamp, service, <metric>…``) are unpivoted; other
columns of a long file become ``labels``.  Row numbers in errors count data
rows from 1 (Parquet has no lines).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from whatchanged.engine.errors import InputError
from whatchanged.engine.timeparse import zone
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.metrics_csv import Layout, assemble, check_required, layout
from whatchanged.ingest.timestamps import SlowPath, parse_one_ts, ts_column

MAGIC = b"PAR1"


def sniff(path: Path, head: bytes) -> bool:
    return head[:4] == MAGIC and path.suffix.lower() in (".parquet", ".pq", "")


def _first_bad(
    path: Path, lay_ts: str, col: pa.Array, ctx: ReadContext, what: str, row0: int = 0
) -> InputError:
    """Find the row behind a failed vectorised conversion and say what is wrong with it."""
    for row, value in enumerate(col.to_pylist(), start=row0 + 1):
        if value is None:
            return InputError(
                "empty value", file=str(path), line=row, field=lay_ts, expected=what, found=None
            )
        if isinstance(value, (int, float, str)):
            _, expected = parse_one_ts(str(value), ctx)
            if expected:
                return InputError(
                    "bad timestamp", file=str(path), line=row, field=lay_ts, expected=expected, found=value
                )
    return InputError(
        "timestamps cannot be read", file=str(path), field=lay_ts, expected=what, found=str(col.type)
    )


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            "unreadable Parquet file", file=str(path), expected="a Parquet file", found=str(exc)
        ) from None


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    """The whole file as one table (:func:`stream` gives it batch by batch)."""
    parts = [p["metrics"] for p in stream(path, ctx, batch_rows=None)]
    return {"metrics": parts[0] if len(parts) == 1 else pa.concat_tables(parts)}


def stream(path: Path, ctx: ReadContext, *, batch_rows: int | None = -1) -> Iterator[dict[str, pa.Table]]:
    """The file in batches of ``batch_rows`` rows (default ``ctx.batch_rows``; None: one
    batch), each converted as the whole file would be; row numbers count from the file's start."""
    zone(ctx.tz)
    pf = _open(path)
    names = pf.schema_arrow.names
    lay = layout(names, file=str(path))
    size = ctx.batch_rows if batch_rows == -1 else batch_rows
    try:
        if size is None:
            batches: Iterator[pa.Table] = iter([pf.read()])
        else:
            batches = (pa.Table.from_batches([b]) for b in pf.iter_batches(batch_size=size))
        row0 = 0
        empty = True
        for table in batches:
            if table.num_rows or empty:
                yield {"metrics": _convert(path, table, lay, ctx, row0)}
                empty = False
            row0 += table.num_rows
        if empty:  # a file without row groups
            yield {"metrics": _convert(path, pf.schema_arrow.empty_table(), lay, ctx, 0)}
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            "unreadable Parquet file", file=str(path), expected="a Parquet file", found=str(exc)
        ) from None


def _cast(path: Path, name: str, col: pa.Array, to: pa.DataType, what: str, expected: str) -> pa.Array:
    """``col`` as ``to``, or an InputError naming the file and the column."""
    try:
        return col.cast(to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InputError(
            f"column cannot be read as {what}",
            file=str(path),
            field=name,
            expected=expected,
            found=str(col.type),
        ) from None


def _convert(path: Path, table: pa.Table, lay: Layout, ctx: ReadContext, row0: int) -> pa.Table:
    """The metrics table of ``table``, rows ``row0 + 1`` … of the file."""
    names = table.column_names
    cols = {i: table.column(i).combine_chunks() for i in range(len(names))}
    for i in (lay.service, lay.metric, lay.env, *([] if lay.wide else lay.extra)):
        if i is not None and not pa.types.is_string(cols[i].type):
            cols[i] = _cast(path, names[i], cols[i], pa.string(), "text", "strings")
    for i in lay.extra if lay.wide else [lay.value] if lay.value is not None else []:
        cols[i] = _cast(path, names[i], cols[i], pa.float64(), "numbers", "a numeric column")
    try:
        check_required(lay, cols)
    except SlowPath:
        keep = None
        for i, what in ((lay.service, "a service name"), (lay.metric, "a metric name")):
            if i is None:
                continue
            bad = pc.or_kleene(pc.is_null(cols[i]), pc.equal(pc.utf8_length(cols[i]), 0)).fill_null(True)
            for row in pc.indices_nonzero(bad).to_pylist():
                ctx.reject(
                    InputError(
                        "empty name",
                        file=str(path),
                        line=row0 + row + 1,
                        field=names[i],
                        expected=what,
                        found="",
                    )
                )
            ok = pc.invert(bad)
            keep = ok if keep is None else pc.and_(keep, ok)
        if keep is not None:
            cols = {i: c.filter(keep) for i, c in cols.items()}
    try:
        ts = ts_column(cols.pop(lay.ts), ctx)
    except SlowPath:
        raise _first_bad(
            path, names[lay.ts], table.column(lay.ts).combine_chunks(), ctx, "a timestamp", row0
        ) from None
    return assemble(lay, ts, cols)


READER = Reader(
    name="metrics_parquet",
    description="metrics Parquet with columns timestamp, service, metric, value (or wide)",
    sniff=sniff,
    read=read,
    stream=stream,
)
