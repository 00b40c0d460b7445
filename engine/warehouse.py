"""The warehouse: a folder of immutable Parquet files, committed by manifests.

:class:`Warehouse` is a :class:`whatchanged.engine.store.Store` (layout, manifests, views,
sweep, status) that also writes: :meth:`Warehouse.commit` and the dropping of rows already
stored.  The order rows are written in is :mod:`whatchanged.engine.write_order`.

The folder's layout, and why a crash leaves either a whole write or nothing visible, are
described in :mod:`whatchanged.engine.store`.  A write (:meth:`Warehouse.commit`) puts every
data file in place under a temporary name, renames it, and only then renames its manifest
into ``_commits/``.

Re-ingesting the same input adds nothing: rows whose natural key
(:data:`whatchanged.engine.schema.KEYS`) is already stored are dropped
before writing (metrics, states), and services/changes rows identical to a
stored one are dropped; a changed services or changes row is appended and
the views show the latest one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine.errors import WarehouseError
from whatchanged.engine.schema import KEYS, conform
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.storage import dir_lock
from whatchanged.engine.store import (
    _APPEND_ONLY,
    CURSORS,
    FEEDBACK,
    FORMAT_VERSION,
    PARTITIONED,
    TABLES,
    Store,
    Swept,
    _new_txid,
    _schema,
    _sql_str,
    fsync_write,
    latest_day,
    replaced_files,
)
from whatchanged.engine.write_order import day_name, day_runs, from_numpy, sorted_by_day_and_key, to_numpy

__all__ = [
    "CURSORS",
    "FEEDBACK",
    "FORMAT_VERSION",
    "PARTITIONED",
    "TABLES",
    "CommitResult",
    "Staged",
    "Swept",
    "Warehouse",
    "latest_day",
    "replaced_files",
]

_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}
#: optimistic attempts of a commit, the last one holding the commit lock throughout
COMMIT_ATTEMPTS = 3
#: A day partition with at least twice this many rows is split into files.
_FILE_SPLIT_ROWS = 1_000_000
#: Value dictionaries up to this many entries (a 1 MiB dictionary page of doubles).
_VALUE_DICT_MAX = 1 << 17


@dataclass(frozen=True)
class CommitResult:
    """What one :meth:`Warehouse.commit` stored."""

    txid: str | None
    rows_in: dict[str, int]
    rows_added: dict[str, int]
    files: list[str] = field(default_factory=list)
    #: The distinct services named by the input (every table with a ``service`` column).
    services: frozenset[str] = frozenset()

    @property
    def added_total(self) -> int:
        return sum(self.rows_added.values())


@dataclass
class Staged:
    """What one commit attempt staged: files to rename (staged → final) and their listing."""

    rows_in: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    planned: list[tuple[Path, Path]] = field(default_factory=list)
    listing: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)

    def result(self, txid: str | None, files: list[str]) -> CommitResult:
        return CommitResult(txid, self.rows_in, self.added, files, frozenset(self.services))


class Warehouse(Store):
    """A warehouse folder that can be written to (reading: :class:`Store`)."""

    # -- writing -------------------------------------------------------------------
    def commit(self, tables: Mapping[str, pa.Table], *, source: str = "") -> CommitResult:
        """Store ``tables`` (name → Arrow table) atomically; return what was added.

        Rows already stored are dropped (``_new_rows``) against a snapshot of the
        manifests, outside any lock, and the new files are staged; then, holding the
        lock on ``_commits/``, the write checks whether another commit landed meanwhile
        in one of the folders it writes to.  If none did it publishes (renames the files,
        then the manifest); if one did, the rows it dropped may be stale, so it starts
        again, and the last attempt holds the lock throughout.  Two ingests of the same
        file started together therefore store it once.  A failure while publishing
        (disk full, permission denied) moves the renamed files back: the warehouse is
        exactly as before, and the storage fault becomes a :class:`StorageError`.
        """
        with self.storage_faults():
            if not self.exists:
                self.init()
            with contextlib.suppress(OSError, WarehouseError):
                self.sweep()  # leftovers of killed writers (never a live writer's)
            for attempt in range(COMMIT_ATTEMPTS):
                last = attempt == COMMIT_ATTEMPTS - 1
                with self._staging() as (txid, staging):
                    with self._commit_lock() if last else contextlib.nullcontext():
                        manifests = self.manifests()
                        seen = {m["txid"] for m in manifests}
                        staged = self._stage(tables, source, txid, staging, manifests)
                        if not staged.planned:
                            return staged.result(None, [])
                        with contextlib.nullcontext() if last else self._commit_lock():
                            if not last and self._overlaps(seen, staged.listing):
                                continue  # another writer may have stored some of these rows
                            self._publish(txid, staging, staged, source)
                    return staged.result(txid, [str(f) for _, f in staged.planned])
        raise AssertionError("unreachable: the last attempt holds the lock")  # pragma: no cover

    @contextlib.contextmanager
    def _staging(self) -> Iterator[tuple[str, Path]]:
        """A new ``.tmp/<txid>/`` folder, locked while the block runs, then removed."""
        txid = _new_txid()
        staging = self.home / ".tmp" / txid
        staging.mkdir(parents=True)
        try:
            with dir_lock(staging):  # released after the folder is gone
                try:
                    yield txid, staging
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @contextlib.contextmanager
    def _commit_lock(self) -> Iterator[None]:
        with dir_lock(self.home / "_commits"):
            yield

    def _overlaps(self, seen: set[str], listing: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether a commit not in ``seen`` wrote into a folder ``listing`` writes into
        (feedback rows have unique ids: never a duplicate)."""
        ours = {
            str(Path(f).parent) for t, entry in listing.items() if t != "feedback" for f in entry["files"]
        }
        for path in (self.home / "_commits").glob("*.json"):
            if path.stem in seen:
                continue
            try:
                other = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                return True  # cannot tell: be safe
            if other.get("replaces"):
                continue  # a compaction: the same rows in fewer files, none added
            if any(str(Path(f).parent) in ours for t in other["tables"].values() for f in t["files"]):
                return True
        return False

    def _stage(
        self,
        tables: Mapping[str, pa.Table],
        source: str,
        txid: str,
        staging: Path,
        manifests: list[dict[str, Any]],
    ) -> Staged:
        """Drop the rows ``manifests`` already store and write the rest under ``staging``."""
        staged = Staged()
        # a DuckDB connection only when something is stored to compare with
        con = self.snapshot() if any(t.num_rows for t in tables.values()) and manifests else None
        try:
            jobs: list[tuple[str, pa.Table, Path]] = []
            for table, data in tables.items():
                schema = _schema(table)
                data = data.cast(schema) if table in _APPEND_ONLY else conform(table, data, source=source)
                staged.rows_in[table] = data.num_rows
                if data.num_rows:
                    before = data
                    data = self._new_rows(con, table, data, manifests)
                    staged.services.update(_distinct_services(before, data))
                staged.added[table] = data.num_rows
                if not data.num_rows:
                    continue
                for n, (rel_dir, part) in enumerate(self._partitions(table, data)):
                    rel = Path(table) / rel_dir / f"{txid}-{n}.parquet"
                    tmp = staging / f"{table}-{n}.parquet"
                    jobs.append((table, part, tmp))
                    staged.planned.append((tmp, self.home / rel))
                    entry = staged.listing.setdefault(table, {"files": [], "rows": 0})
                    entry["files"].append(str(rel))
                    entry["rows"] += part.num_rows
        finally:
            if con is not None:
                con.close()
        # Parquet encoding is single-threaded per file and releases the GIL
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1, 4))) as pool:
            list(pool.map(lambda job: self._write_parquet(*job), jobs))
        return staged

    def _publish(
        self,
        txid: str,
        staging: Path,
        staged: Staged,
        source: str,
        replaces: Mapping[str, list[str]] | None = None,
    ) -> None:
        """Rename the staged files into place, then the manifest; on any failure put every
        renamed file back and remove the folders made for them.  ``replaces`` (table →
        files, a compaction's) are the committed files the new ones stand in for."""
        manifest: dict[str, Any] = {
            "txid": txid,
            "created": datetime.now(UTC).isoformat(),
            "source": source,
            "tables": staged.listing,
        }
        if replaces:
            manifest["replaces"] = dict(replaces)
        tmp_manifest = staging / "manifest.json"
        # written before any rename: a full disk fails here, with nothing to undo
        fsync_write(tmp_manifest, json.dumps(manifest, indent=1).encode())
        moved: list[tuple[Path, Path]] = []
        made: list[Path] = []
        try:
            for tmp, final in staged.planned:
                missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
                final.parent.mkdir(parents=True, exist_ok=True)
                made.extend(missing)  # deepest first
                os.replace(tmp, final)
                moved.append((tmp, final))
            os.replace(tmp_manifest, self.home / "_commits" / f"{txid}.json")
        except BaseException:
            for tmp, final in reversed(moved):
                try:
                    os.replace(final, tmp)
                except OSError:
                    with contextlib.suppress(OSError):
                        final.unlink()
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise

    def _new_rows(
        self,
        con: Snapshot | None,
        table: str,
        data: pa.Table,
        manifests: list[dict[str, Any]] | None = None,
        staged: Mapping[str, Sequence[str]] | None = None,
    ) -> pa.Table:
        """``data`` without the rows the warehouse as of ``manifests`` (default: now), or
        ``data`` itself, already has; for metrics and states, nor the rows of the files
        ``staged`` (day folder name → files) already written by this commit
        (:mod:`~whatchanged.engine.warehouse_stream`).

        Partitioned tables come back sorted by (day, natural key) — the order
        :meth:`_partitions` slices and :meth:`_write_parquet` stores — with
        low-cardinality strings dictionary-encoded (they are written as plain
        Parquet strings).
        """
        import pyarrow.compute as pc

        if table in _APPEND_ONLY:
            return _drop_duplicate_keys(data, ("feedback_id",)) if table == "feedback" else data
        keys = KEYS[table]
        if table in PARTITIONED:
            data, days = sorted_by_day_and_key(table, data)
        elif table == "changes":
            data, days = _latest_changes(data), None
        else:
            data, days = _drop_duplicate_keys(data, keys), None
        stored = self.files(table, manifests)
        if days is not None:
            wanted = {f"date={day_name(d)}" for d in days}
            stored = [f for f in stored if Path(f).parent.name in wanted]
            stored += [f for folder in sorted(wanted) for f in (staged or {}).get(folder, ())]
        if not stored:
            return data
        if con is None:  # another writer committed since commit() looked
            with self.snapshot() as own:
                return self._new_rows(own, table, data, manifests, staged)
        if table in ("services", "changes", "dependencies"):
            con.register("incoming", data)
            try:
                # identical to the row the view shows now → nothing new
                cols = ", ".join(f'"{c}"' for c in _schema(table).names)
                rel = con.sql(f"SELECT {cols} FROM incoming EXCEPT SELECT {cols} FROM {table}")
                return rel.to_arrow_table().cast(_schema(table))
            finally:
                con.unregister("incoming")
        # metrics, states: drop rows whose key is stored, keeping the sorted order
        probe = pa.table(
            {k: data.column(k) for k in keys}
            | {"__row": from_numpy(np.arange(data.num_rows, dtype=np.int64))}
        )
        probe = probe.cast(
            pa.schema(
                [pa.field(k, _schema(table).field(k).type) for k in keys] + [pa.field("__row", pa.int64())]
            )
        )
        con.register("incoming", probe)
        try:
            # ts first: the most selective column makes DuckDB's hash join about twice as fast
            on = " AND ".join(f'i."{k}" = s."{k}"' for k in sorted(keys, key=lambda k: k != "ts"))
            quoted = ", ".join(f'"{k}"' for k in keys)
            con.execute("SET enable_progress_bar = false")
            lo, hi = pc.min_max(data.column("ts")).values()
            listing = ", ".join(_sql_str(f) for f in stored)
            rows = con.sql(
                f"SELECT i.__row FROM incoming i SEMI JOIN (SELECT {quoted} "
                f"FROM read_parquet([{listing}]) WHERE ts BETWEEN {_sql_ts(lo)} AND {_sql_ts(hi)}) s ON {on}"
            ).to_arrow_table()
        finally:
            con.unregister("incoming")
        if not rows.num_rows:
            return data
        keep = np.ones(data.num_rows, dtype=bool)
        keep[to_numpy(rows.column(0))] = False
        return data.take(from_numpy(np.flatnonzero(keep)))

    def _partitions(self, table: str, data: pa.Table) -> Iterable[tuple[str, pa.Table]]:
        """``(folder, rows)`` per file; partitioned tables are already sorted by day first."""
        if table not in PARTITIONED:
            yield "", data
            return
        for day, lo, hi in day_runs(to_numpy(data.column("ts"))):
            # a big day goes to a few files (contiguous key ranges) written in parallel
            pieces = max(1, min(os.cpu_count() or 1, 4, (hi - lo) // _FILE_SPLIT_ROWS))
            step = -(-(hi - lo) // pieces)
            for start in range(lo, hi, step):
                yield f"date={day_name(day)}", data.slice(start, min(step, hi - start))

    def _write_parquet(self, table: str, data: pa.Table, path: Path) -> None:
        """Write one zstd Parquet file with encodings chosen for the column (fsynced).

        Metrics: ``ts`` DELTA_BINARY_PACKED (sorted series → tiny deltas);
        strings dictionary + RLE (sorted → long runs); ``value`` dictionary
        when it has few distinct values (exporters round: 0.1 ms, 0.01 Mbit/s,
        counter rates k/step), else BYTE_STREAM_SPLIT, which suits
        full-precision floats best.  Nothing is rounded.
        """
        import pyarrow.compute as pc

        options = dict(_PARQUET_OPTIONS)
        if table == "metrics":
            value = data.column("value")
            sample = (
                value.slice(0, 1 << 16)
                if len(value) <= 1 << 17
                else value.take(from_numpy(np.linspace(0, len(value) - 1, 1 << 16).astype(np.int64)))
            )
            distinct = pc.count_distinct(sample, mode="all").as_py()
            few = distinct <= max(256, len(sample) // 4)
            options.update(
                use_dictionary=["service", "metric", "env", "labels", *(["value"] if few else [])],
                column_encoding={
                    "ts": "DELTA_BINARY_PACKED",
                    **({} if few else {"value": "BYTE_STREAM_SPLIT"}),
                },
                dictionary_pagesize_limit=_VALUE_DICT_MAX * 8 + 4096,
                row_group_size=1 << 22,
                compression_level=1,  # level 3: 15 % more CPU for 2 % smaller files
                store_schema=False,
                # statistics where queries filter (no query filters env or labels; they cost)
                write_statistics=["ts", "service", "metric", "value"],
            )
        elif table == "states":
            options.update(
                store_schema=False,
                column_encoding={"ts": "DELTA_BINARY_PACKED"},
                use_dictionary=["service", "check", "state", "state_type", "source"],
            )
        pq.write_table(data, path, **options)
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())


def _sql_ts(value: Any) -> str:
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    return f"TIMESTAMPTZ '{value.isoformat()}'"


def _distinct_services(given: pa.Table, kept: pa.Table) -> list[str]:
    """The services of ``given``: read off the dictionary the write path built for ``kept``
    (its rows, sorted) when there is one, instead of hashing every row again."""
    import pyarrow.compute as pc

    if "service" not in given.column_names:
        return []
    col = kept.column("service")
    if pa.types.is_dictionary(col.type) and col.num_chunks:
        return [s for s in col.chunk(0).dictionary.to_pylist() if s is not None]
    return [s for s in pc.unique(given.column("service")).to_pylist() if s is not None]


def _drop_duplicate_keys(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Keep the first row of each key within ``data`` (services, changes, feedback)."""
    import pyarrow.compute as pc

    if data.num_rows < 2:
        return data
    idx = pa.array(np.arange(data.num_rows, dtype=np.int64))
    with_idx = data.select(list(keys)).append_column("__i", idx)
    firsts = with_idx.group_by(list(keys), use_threads=False).aggregate([("__i", "min")])
    if firsts.num_rows == data.num_rows:
        return data
    keep = pc.sort_indices(firsts.column("__i_min"))
    return data.take(pc.take(firsts.column("__i_min"), keep))


def _latest_changes(data: pa.Table) -> pa.Table:
    """One row per ``change_id`` within ``data``: the highest ``sequence``, then the latest
    ``stamp`` (nulls lowest), then the row ingested last — the rule of the ``changes`` view."""
    import pyarrow.compute as pc

    if data.num_rows < 2:
        return data
    low = np.iinfo(np.int64).min
    rank = pa.table(
        {
            "change_id": data.column("change_id"),
            "sequence": data.column("sequence").fill_null(low),
            "stamp": data.column("stamp").cast(pa.int64()).fill_null(low),
            "__i": pa.array(np.arange(data.num_rows, dtype=np.int64)),
        }
    )
    order = pc.sort_indices(
        rank,
        sort_keys=[
            ("change_id", "ascending"),
            ("sequence", "descending"),
            ("stamp", "descending"),
            ("__i", "descending"),
        ],
    ).to_numpy()
    ids = rank.column("change_id").take(pa.array(order)).to_pylist()
    first = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
    if len(first) == data.num_rows:
        return data
    return data.take(pa.array(np.sort(order[first])))
