"""One atomic commit of an input too large to hold in memory, fed part by part.

:meth:`Warehouse.commit <whatchanged.engine.warehouse.Warehouse.commit>` takes whole tables;
:func:`commit_stream` takes an iterable of parts (name → table, as a reader streams a file
batch by batch) and writes each day's rows of ``metrics`` and ``states`` under the commit's
staging folder as soon as the day is complete, so memory holds about a day and a batch
whatever the size of the input::

    parts ──► per-day buffers ──(a day complete, or the buffers full)──► sorted, deduplicated,
                                                                          staged Parquet files
    end of the parts ──► the other tables (small, held) staged ──► lock, re-check, publish

A day is complete when a part starts on a later day (inputs in time order, the usual case:
one file per day partition then, as the one-shot commit writes).  When the buffers hold more
than ``buffer_rows`` rows (inputs not in time order), the largest day is written as it
stands: more files for that day, the same rows.

It is one commit: nothing is visible before the manifest is renamed into ``_commits/``, and
an exception from the parts (a bad line in the last file) removes the staging folder with
everything written so far.  Rows repeated across parts are stored once (the first, as the
one-shot commit keeps it), and rows already in the warehouse are dropped, as in a commit.
Holding the commit lock for the whole read would stop every other writer for as long, so
the rows are compared with the warehouse as it was when the commit started; under the lock,
just before publishing, the staged files of any day another commit wrote to meanwhile are
compared again with that commit's files.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine.errors import WarehouseError
from whatchanged.engine.schema import conform
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.store import _APPEND_ONLY, PARTITIONED, _schema
from whatchanged.engine.warehouse import CommitResult, Staged, Warehouse, _distinct_services
from whatchanged.engine.write_order import _US_PER_DAY, from_numpy, to_numpy

#: Default of ``buffer_rows``: rows of ``metrics``/``states`` held before the largest day is
#: written as it stands (about two days of 1002 services × 3 metrics at 1 minute).
BUFFER_ROWS = 8_000_000


class _Writer:
    """The staging side of one streamed commit."""

    def __init__(
        self, wh: Warehouse, txid: str, staging: Path, manifests: list[dict[str, Any]], source: str
    ) -> None:
        self.wh, self.txid, self.staging, self.source = wh, txid, staging, source
        self.manifests = manifests
        self.staged = Staged()
        self.by_folder: dict[str, dict[str, list[str]]] = {t: {} for t in PARTITIONED}  # staged files
        self.held: dict[str, list[pa.Table]] = {}  # the other tables, staged at the end
        self.buffers: dict[tuple[str, int], list[pa.Table]] = {}
        self.buffered = 0
        self.n = 0
        self._con: Snapshot | None = None

    @property
    def con(self) -> Snapshot | None:
        """The warehouse as the commit started (opened when there is something to compare with)."""
        if self._con is None and self.manifests:
            self._con = self.wh.snapshot()
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    # -- parts in ------------------------------------------------------------------------
    def add(self, part: Mapping[str, pa.Table], buffer_rows: int) -> None:
        first_day: int | None = None
        for table, data in part.items():
            if table not in PARTITIONED:
                self.held.setdefault(table, []).append(data)
                continue
            data = conform(table, data, source=self.source)
            self.staged.rows_in[table] = self.staged.rows_in.get(table, 0) + data.num_rows
            self.staged.added.setdefault(table, 0)
            if not data.num_rows:
                continue
            days = to_numpy(data.column("ts")) // _US_PER_DAY
            low = int(days.min())
            first_day = low if first_day is None else min(first_day, low)
            for day, rows in _split_days(days):
                piece = (
                    data.slice(rows.start, rows.stop - rows.start)
                    if isinstance(rows, slice)
                    else data.take(rows)
                )
                self.buffers.setdefault((table, day), []).append(piece)
                self.buffered += piece.num_rows
        if first_day is not None:  # days before this part's first are complete (inputs in time order)
            for key in sorted(k for k in self.buffers if k[1] < first_day):
                self.flush(key)
        while self.buffered > buffer_rows:
            self.flush(max(self.buffers, key=lambda k: sum(t.num_rows for t in self.buffers[k])))

    def flush(self, key: tuple[str, int]) -> None:
        table, _day = key
        pieces = self.buffers.pop(key)
        self.buffered -= sum(t.num_rows for t in pieces)
        data = pa.concat_tables(pieces)
        del pieces
        self.stage(table, data)

    def finish(self) -> None:
        for key in sorted(self.buffers):
            self.flush(key)
        for table, parts in self.held.items():
            data = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            schema = _schema(table)
            data = data.cast(schema) if table in _APPEND_ONLY else conform(table, data, source=self.source)
            self.staged.rows_in[table] = self.staged.rows_in.get(table, 0) + data.num_rows
            self.staged.added.setdefault(table, 0)
            self.stage(table, data)
        self.held = {}

    # -- staging -------------------------------------------------------------------------
    def stage(self, table: str, data: pa.Table) -> None:
        """Write ``data`` (conformed) less the rows stored or staged already."""
        if not data.num_rows:
            return
        before = data
        data = self.wh._new_rows(self.con, table, data, self.manifests, self.by_folder.get(table))
        self.staged.services.update(_distinct_services(before, data))
        del before
        self.staged.added[table] = self.staged.added.get(table, 0) + data.num_rows
        if not data.num_rows:
            return
        jobs: list[tuple[str, pa.Table, Path]] = []
        for rel_dir, part in self.wh._partitions(table, data):
            tmp = self.staging / f"{table}-{self.n}.parquet"
            rel = Path(table) / rel_dir / f"{self.txid}-{self.n}.parquet"
            self.n += 1
            jobs.append((table, part, tmp))
            self.staged.planned.append((tmp, self.wh.home / rel))
            entry = self.staged.listing.setdefault(table, {"files": [], "rows": 0})
            entry["files"].append(str(rel))
            entry["rows"] += part.num_rows
            if table in self.by_folder:
                self.by_folder[table].setdefault(rel_dir, []).append(str(tmp))
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1, 4))) as pool:
            list(pool.map(lambda job: self.wh._write_parquet(*job), jobs))

    def recheck(self, newer: list[dict[str, Any]]) -> None:
        """Drop from the staged files the rows that the commits ``newer`` (published since
        this one started) stored: rewrite each staged file of a folder they wrote to."""
        folders = {
            (table, str(Path(f).parent))
            for m in newer
            if not m.get("replaces")  # a compaction adds no row
            for table, entry in m["tables"].items()
            for f in entry["files"]
        }
        planned: list[tuple[Path, Path]] = []
        listing: dict[str, dict[str, Any]] = {}
        for tmp, final in self.staged.planned:
            rel = final.relative_to(self.wh.home)
            table = rel.parts[0]
            if (table, str(rel.parent)) in folders:
                data = pq.read_table(tmp, schema=_schema(table))
                kept = self.wh._new_rows(None, table, data, newer)
                self.staged.added[table] -= data.num_rows - kept.num_rows
                if not kept.num_rows:
                    tmp.unlink()
                    continue
                if kept.num_rows < data.num_rows:
                    self.wh._write_parquet(table, kept, tmp)
                rows = kept.num_rows
            else:
                rows = pq.ParquetFile(tmp).metadata.num_rows
            planned.append((tmp, final))
            entry = listing.setdefault(table, {"files": [], "rows": 0})
            entry["files"].append(str(rel))
            entry["rows"] += rows
        self.staged.planned, self.staged.listing = planned, listing


def _split_days(days: Any) -> list[tuple[int, slice | pa.Array]]:
    """``(day, rows)`` of each day in ``days`` (numpy): slices when the days are in order."""
    if len(days) and bool((days[1:] >= days[:-1]).all()):
        cuts = [0, *(np.flatnonzero(np.diff(days)) + 1).tolist(), len(days)]
        return [(int(days[a]), slice(a, b)) for a, b in itertools.pairwise(cuts)]
    order = np.argsort(days, kind="stable")
    sorted_days = days[order]
    cuts = [0, *(np.flatnonzero(np.diff(sorted_days)) + 1).tolist(), len(days)]
    return [
        (int(sorted_days[a]), from_numpy(np.ascontiguousarray(order[a:b])))
        for a, b in itertools.pairwise(cuts)
    ]


def commit_stream(
    wh: Warehouse,
    parts: Iterable[Mapping[str, pa.Table]],
    *,
    source: str = "",
    buffer_rows: int = BUFFER_ROWS,
) -> CommitResult:
    """Store every part of ``parts`` in one atomic commit; return what was added (as
    :meth:`Warehouse.commit` does for the same rows given at once)."""
    with wh.storage_faults():
        if not wh.exists:
            wh.init()
        with contextlib.suppress(OSError, WarehouseError):
            wh.sweep()  # leftovers of killed writers (never a live writer's)
        with wh._staging() as (txid, staging):
            manifests = wh.manifests()
            seen = {m["txid"] for m in manifests}
            writer = _Writer(wh, txid, staging, manifests, source)
            try:
                for part in parts:
                    writer.add(part, buffer_rows)
                writer.finish()
            finally:
                writer.close()
            staged = writer.staged
            if not staged.planned:
                return staged.result(None, [])
            with wh._commit_lock():
                if wh._overlaps(seen, staged.listing):
                    writer.recheck([m for m in wh.manifests() if m["txid"] not in seen])
                if not staged.planned:
                    return staged.result(None, [])
                wh._publish(txid, staging, staged, source)
            return staged.result(txid, [str(f) for _, f in staged.planned])
