"""Ingest files or folders into a warehouse: detect, read, validate, commit.

Every file is read and validated before anything is written; then all of
them are committed in one atomic write.  A bad file in strict mode therefore
writes nothing at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from whatchanged.engine.errors import InputError
from whatchanged.engine.warehouse import CommitResult, Warehouse
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.registry import by_name, detect


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


def read_all(
    paths: Iterable[Path],
    ctx: ReadContext,
    *,
    fmt: str | None = None,
    progress: Callable[[Path], None] | None = None,
) -> tuple[dict[str, list[pa.Table]], list[tuple[str, str]]]:
    """Read every file into lists of tables per normalised table name."""
    files = expand(paths)
    forced: Reader | None = by_name(fmt) if fmt else None
    plan: list[tuple[Path, Reader]] = []
    consumed: set[Path] = set()
    for f in files:
        reader = forced or detect(f)
        plan.append((f, reader))
        consumed.update(p.resolve() for p in reader.companions(f))
    tables: dict[str, list[pa.Table]] = {}
    used: list[tuple[str, str]] = []
    for f, reader in plan:
        if f.resolve() in consumed:
            continue
        for name, table in reader.read(f, ctx).items():
            tables.setdefault(name, []).append(table)
        used.append((str(f), reader.name))
        if progress:
            progress(f)
    return tables, used


def ingest(
    warehouse: Warehouse,
    paths: Iterable[Path],
    ctx: ReadContext,
    *,
    fmt: str | None = None,
    progress: Callable[[Path], None] | None = None,
) -> IngestSummary:
    """Read ``paths`` and commit them to ``warehouse`` in one atomic write."""
    started = time.perf_counter()
    tables, used = read_all(paths, ctx, fmt=fmt, progress=progress)
    merged = {name: pa.concat_tables(parts) for name, parts in tables.items()}
    source = ",".join(Path(p).name for p, _ in used)[:500]
    result = warehouse.commit(merged, source=source)
    summary = IngestSummary(
        files=used, result=result, rejected=list(ctx.rejected), tz=ctx.tz, tz_assumed=ctx.tz_assumed
    )
    # as integers: a timestamp scalar's as_py() makes pyarrow import pandas
    ts_cols = [
        t.column("ts").cast(pa.int64())
        for n in ("metrics", "states")
        if (t := merged.get(n)) is not None and t.num_rows
    ]
    if ts_cols:
        lows, highs = zip(*(pc.min_max(c).values() for c in ts_cols), strict=True)
        summary.first = _iso(min(v.as_py() for v in lows))
        summary.last = _iso(max(v.as_py() for v in highs))
    summary.services = len(result.services)
    summary.seconds = time.perf_counter() - started
    return summary
