"""Ingest files or folders into a warehouse: detect, read, validate, commit.

All the files are committed in one atomic write, streamed: each file is read
in parts (a reader's ``stream``, else its ``read``) that are validated and
staged as they come, and only the end of the last file publishes the commit
(:mod:`whatchanged.engine.warehouse_stream`).  A bad file in strict mode
therefore writes nothing at all, and a year of monthly files is held about a
day at a time.

This is also the error boundary of reading: whatever a file can make a
reader raise (bytes that are not UTF-8, JSON nested deeper than Python
parses, a CSV quoting error, a number too big to convert) leaves
:func:`read_errors` as one :class:`InputError` naming the file; and every time
a reader returns is held to :mod:`whatchanged.engine.timerange` by
:func:`check_times`, so no reader can store the year 5138.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from whatchanged.engine.errors import InputError, WhatchangedError
from whatchanged.engine.timerange import OutOfRange
from whatchanged.engine.warehouse import CommitResult, Warehouse
from whatchanged.engine.warehouse_stream import commit_stream
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.registry import by_name, detect
from whatchanged.ingest.text import first_bad_utf8

#: Batches of metrics or check states held (``ingest_batch_rows`` each) before a day is
#: written as it stands (``commit_stream``'s ``buffer_rows``).
BUFFERED_BATCHES = 8


@dataclass
class IngestSummary:
    """What ``whatchanged ingest`` prints."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (path, reader)
    result: CommitResult | None = None
    rejected: list[InputError] = field(default_factory=list)
    tz: str = "UTC"
    tz_assumed: bool = False
    seconds: float = 0.0
    first: str | None = None
    last: str | None = None
    services: int = 0


def _iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files named, and every file under folders named (hidden ones skipped), sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
                )
            )
        elif p.is_file():
            out.append(p)
        else:
            raise InputError("no such file or folder", file=str(p))
    return out


def plan(paths: Iterable[Path], *, fmt: str | None = None) -> list[tuple[Path, Reader]]:
    """The files to read and the reader of each (a file another reader consumes left out)."""
    files = expand(paths)
    forced: Reader | None = by_name(fmt) if fmt else None
    found: list[tuple[Path, Reader]] = []
    consumed: set[Path] = set()
    for f in files:
        reader = forced or detect(f)
        found.append((f, reader))
        consumed.update(p.resolve() for p in reader.companions(f))
    return [(f, reader) for f, reader in found if f.resolve() not in consumed]


def read_all(
    paths: Iterable[Path],
    ctx: ReadContext,
    *,
    fmt: str | None = None,
    progress: Callable[[Path], None] | None = None,
) -> tuple[dict[str, list[pa.Table]], list[tuple[str, str]]]:
    """Read every file into lists of tables per normalised table name."""
    tables: dict[str, list[pa.Table]] = {}
    used: list[tuple[str, str]] = []
    for f, reader in plan(paths, fmt=fmt):
        for name, table in check_times(read_one(reader, f, ctx), file=str(f), ctx=ctx).items():
            tables.setdefault(name, []).append(table)
        used.append((str(f), reader.name))
        if progress:
            progress(f)
    return tables, used


def read_one(reader: Reader, path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    """``reader.read(path, ctx)``, with every failure the file can cause as one InputError."""
    with read_errors(reader, path):
        return reader.read(path, ctx)


def stream_one(reader: Reader, path: Path, ctx: ReadContext) -> Iterator[dict[str, pa.Table]]:
    """The file in parts (``reader.stream``, else ``reader.read`` whole), times checked, with
    every failure the file can cause as one InputError."""
    done: dict[str, int] = {}
    with read_errors(reader, path):
        parts = reader.stream(path, ctx) if reader.stream else iter([reader.read(path, ctx)])
        for part in parts:
            yield check_times(part, file=str(path), ctx=ctx, row0=done)
            for name, table in part.items():
                done[name] = done.get(name, 0) + table.num_rows


@contextlib.contextmanager
def read_errors(reader: Reader, path: Path) -> Iterator[None]:
    """Whatever reading ``path`` raises, as one :class:`InputError` naming the file."""
    file = str(path)
    try:
        yield
    except WhatchangedError:
        raise
    except UnicodeDecodeError as exc:
        bad = first_bad_utf8(path)
        line, column, found = bad if bad else (None, None, exc.object[exc.start : exc.start + 4])
        where = f" at column {column}" if column else ""
        raise InputError(
            f"not UTF-8 text{where}", file=file, line=line, expected="UTF-8", found=found
        ) from exc
    except RecursionError as exc:
        raise InputError(
            f"nested too deeply for the {reader.name} reader",
            file=file,
            expected="JSON nested less than a few hundred levels",
            found="deeper nesting",
        ) from exc
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", file=file, expected="RFC 4180 CSV") from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON at column {exc.colno} ({exc.msg})", file=file, line=exc.lineno
        ) from exc
    except OutOfRange as exc:
        raise InputError("time out of range", file=file, expected=exc.expected, found=exc.found) from exc
    except (OverflowError, ValueError, TypeError, KeyError, IndexError, pa.ArrowException) as exc:
        raise InputError(
            f"the {reader.name} reader cannot read it ({type(exc).__name__}: {str(exc)[:200]})",
            file=file,
        ) from exc
    except MemoryError as exc:
        raise InputError(f"too large for the {reader.name} reader to hold in memory", file=file) from exc


#: Time columns of each table, and whether they are held to "not in the future" (observed).
_TIME_COLUMNS = {"metrics": ("ts",), "states": ("ts",), "changes": ("start", "end", "stamp")}


def check_times(
    tables: dict[str, pa.Table], *, file: str, ctx: ReadContext, row0: Mapping[str, int] | None = None
) -> dict[str, pa.Table]:
    """``tables`` with every time in the plausible range (:mod:`~whatchanged.engine.timerange`).

    A row out of range is an error naming the file, the column and the value (the row number
    counts the rows the reader returned, from 1, after ``row0[table]`` returned by the earlier
    parts of a streamed file); with ``--skip-bad`` the row is dropped and listed.
    A maintenance window is announced ahead: its ``start`` (like every ``end``) is held to
    1970–2200 only; every other time to at most a day ahead of the clock too.
    """
    out = {}
    for name, table in tables.items():
        for column in _TIME_COLUMNS.get(name, ()):
            if column not in table.column_names or table.num_rows == 0:
                continue
            table = _drop_out_of_range(
                name, table, column, file=file, ctx=ctx, row0=(row0 or {}).get(name, 0)
            )
        out[name] = table
    return out


def _drop_out_of_range(
    name: str, table: pa.Table, column: str, *, file: str, ctx: ReadContext, row0: int = 0
) -> pa.Table:
    us = table.column(column).combine_chunks().cast(pa.int64())
    ahead = ctx.times.latest(observed=False)
    held = ctx.times.latest(observed=True)
    if column == "end":
        observed = pa.array([False] * table.num_rows) if table.num_rows else pa.array([], pa.bool_())
    elif name == "changes":
        observed = pc.not_equal(table.column("kind").combine_chunks(), "maintenance").fill_null(True)
    else:
        observed = pa.array([True] * table.num_rows, pa.bool_())
    top = pc.if_else(observed, _us(held), _us(ahead))
    bad = pc.or_(pc.less(us, 0), pc.greater_equal(us, top)).fill_null(False)
    if not pc.any(bad).as_py():
        return table
    for index in pc.indices_nonzero(bad).to_pylist():
        is_observed = bool(observed[index].as_py())
        found = _describe_us(us[index].as_py())
        ctx.reject(
            InputError(
                f"time out of range ({name} row {row0 + index + 1} read)",
                file=file,
                field=column,
                expected=ctx.times.expected(observed=is_observed),
                found=found,
            )
        )
    return table.filter(pc.invert(bad))


def _us(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _describe_us(us: int) -> str:
    try:
        return _iso(us)
    except OverflowError:
        return f"{us} µs since 1970"


def ingest(
    warehouse: Warehouse,
    paths: Iterable[Path],
    ctx: ReadContext,
    *,
    fmt: str | None = None,
    progress: Callable[[Path], None] | None = None,
) -> IngestSummary:
    """Read ``paths`` and commit them to ``warehouse`` in one atomic write.

    Files are streamed (:func:`stream_one`) into :func:`~whatchanged.engine.warehouse_stream.
    commit_stream`: a year of metrics in monthly files is held about a day at a time, and a
    bad row in the last file still leaves the warehouse as it was."""
    started = time.perf_counter()
    planned = plan(paths, fmt=fmt)
    used = [(str(f), reader.name) for f, reader in planned]
    source = ",".join(Path(p).name for p, _ in used)[:500]
    span: list[int] = []  # first and last time of metrics and states, µs

    def parts() -> Iterator[dict[str, pa.Table]]:
        for f, reader in planned:
            for part in stream_one(reader, f, ctx):
                # as integers: a timestamp scalar's as_py() makes pyarrow import pandas
                for name in ("metrics", "states"):
                    table = part.get(name)
                    if table is not None and table.num_rows:
                        low, high = (
                            v.as_py() for v in pc.min_max(table.column("ts").cast(pa.int64())).values()
                        )
                        span[:] = [min(span[0], low), max(span[1], high)] if span else [low, high]
                yield part
            if progress:
                progress(f)

    result = commit_stream(warehouse, parts(), source=source, buffer_rows=BUFFERED_BATCHES * ctx.batch_rows)
    summary = IngestSummary(
        files=used, result=result, rejected=list(ctx.rejected), tz=ctx.tz, tz_assumed=ctx.tz_assumed
    )
    if span:
        summary.first, summary.last = _iso(span[0]), _iso(span[1])
    summary.services = len(result.services)
    summary.seconds = time.perf_counter() - started
    return summary
