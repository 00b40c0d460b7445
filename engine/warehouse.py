"""The warehouse: a folder of immutable Parquet files, committed by manifests.

Layout of ``HOME``::

    WAREHOUSE                        marker with the format version (``whatchanged init``)
    _empty/<table>.parquet           one empty file per table, so every view exists
    _commits/<txid>.json             one manifest per committed write (the only truth)
    services/<txid>-<n>.parquet
    changes/<txid>-<n>.parquet
    metrics/date=YYYY-MM-DD/<txid>-<n>.parquet   sorted by (service, metric, ts)
    states/date=YYYY-MM-DD/<txid>-<n>.parquet
    feedback/<txid>-<n>.parquet      responders' verdicts, append-only
    dependencies/<txid>-<n>.parquet  call graph edges (service depends_on service)
    cursors/<txid>-<n>.parquet       where each live source stopped, committed with its rows

A write (:meth:`Warehouse.commit`) puts every data file in place under a
temporary name, renames it, and only then renames its manifest into
``_commits/``.  Readers list the manifests and build DuckDB views over the
files they name, so a crash at any point leaves either the whole write or
nothing visible; files without a manifest are garbage and are removed by
:meth:`Warehouse.sweep`.  ``txid`` starts with the commit time in
nanoseconds, so manifests sort in commit order.

There is no ``.duckdb`` file and no lock: any number of processes may read
while others write; each reader opens its own in-memory DuckDB connection
(:meth:`Warehouse.connect`) with ``TimeZone='UTC'``.

Re-ingesting the same input adds nothing: rows whose natural key
(:data:`whatchanged.engine.schema.KEYS`) is already stored are dropped
before writing (metrics, states), and services/changes rows identical to a
stored one are dropped; a changed services or changes row is appended and
the views show the latest one.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import itertools
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine.errors import WarehouseError
from whatchanged.engine.schema import KEYS, LATER_COLUMNS, SCHEMAS, conform
from whatchanged.engine.storage import dir_lock, held_by_other, storage_error

FORMAT_VERSION = 1
TABLES = ("services", "metrics", "states", "changes", "feedback", "dependencies", "cursors")
PARTITIONED = ("metrics", "states")

#: Feedback (responders' verdicts) is written by the API; schema kept here.
FEEDBACK = pa.schema(
    [
        pa.field("feedback_id", pa.string(), nullable=False),
        pa.field("incident_id", pa.string(), nullable=False),
        pa.field("cause_change_id", pa.string()),
        pa.field("category", pa.string()),
        pa.field("comment", pa.string()),
        pa.field("author", pa.string()),
        pa.field("created", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

#: Where each live source stopped (``whatchanged collect``), committed with the rows it pulled,
#: so a crash neither loses nor doubles them; append-only, the view shows the latest per source.
CURSORS = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("cursor", pa.string(), nullable=False),  # JSON, the source's own shape
        pa.field("updated", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
_APPEND_ONLY = {"feedback": FEEDBACK, "cursors": CURSORS}

_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}
#: readings of the manifests before giving up when compactions keep removing some meanwhile
_MANIFEST_RETRIES = 20
#: optimistic attempts of a commit, the last one holding the commit lock throughout
COMMIT_ATTEMPTS = 3
#: an unlocked staging folder younger than this may be a writer between ``mkdir`` and its lock
STAGING_GRACE_S = 5.0


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
class _Staged:
    """What one commit attempt staged: files to rename (staged → final) and their listing."""

    rows_in: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    planned: list[tuple[Path, Path]] = field(default_factory=list)
    listing: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: set[str] = field(default_factory=set)

    def result(self, txid: str | None, files: list[str]) -> CommitResult:
        return CommitResult(txid, self.rows_in, self.added, files, frozenset(self.services))


@dataclass(frozen=True)
class Swept:
    """What :meth:`Warehouse.sweep` removed (paths relative to the warehouse)."""

    staging: tuple[str, ...]
    orphans: tuple[str, ...]
    live_writers: int
    bytes: int

    @property
    def removed(self) -> int:
        return len(self.staging) + len(self.orphans)


def _tree_size(path: Path) -> int:
    try:
        if not path.is_dir():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def _schema(table: str) -> pa.Schema:
    return _APPEND_ONLY.get(table) or SCHEMAS[table]


def _new_txid() -> str:
    return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}"


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class Warehouse:
    """A warehouse folder.  Cheap to create; touches the disk only when asked."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home).resolve()

    # -- layout ---------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.home / "WAREHOUSE").is_file()

    def init(self) -> bool:
        """Create the folder layout; return False if it was already there."""
        if self.exists:
            return False
        if self.home.exists() and not self.home.is_dir():
            raise WarehouseError(f"{self.home}: expected a folder for the warehouse, found a file")
        with self.storage_faults():
            for sub in ("_commits", "_empty", ".tmp", *TABLES):
                (self.home / sub).mkdir(parents=True, exist_ok=True)
            # each file under a private name first: two writers may initialise at once
            private = f".{os.getpid()}-{secrets.token_hex(3)}"
            for table in TABLES:
                final = self.home / "_empty" / f"{table}.parquet"
                pq.write_table(_empty_table(_schema(table)), final.with_name(final.name + private))
                os.replace(final.with_name(final.name + private), final)
            marker = self.home / "WAREHOUSE"
            _fsync_write(
                marker.with_name(marker.name + private), json.dumps({"format": FORMAT_VERSION}).encode()
            )
            os.replace(marker.with_name(marker.name + private), marker)
        return True

    @contextlib.contextmanager
    def storage_faults(self) -> Iterator[None]:
        """Turn an OSError caused by the storage (disk full, permission denied, read-only)
        into a :class:`StorageError` naming the path and the remedy."""
        try:
            yield
        except OSError as exc:
            found = storage_error(exc, self.home)
            if found is None:
                raise
            raise found from None

    def require(self) -> None:
        if not self.exists:
            raise WarehouseError(
                f"no warehouse at {self.home}: run 'whatchanged init' or 'whatchanged ingest' first"
                " (or pass --home / set WHATCHANGED_HOME)"
            )

    # -- manifests --------------------------------------------------------------
    def manifests(self) -> list[dict[str, Any]]:
        """Every committed manifest, oldest first.

        Compaction (:mod:`whatchanged.engine.compact`) removes a manifest only after every
        file it replaced is named nowhere else; a manifest listed but gone when read was
        removed meanwhile, and the listing is read again, so the manifests returned are
        never a mix that shows a replaced file as live."""
        self.require()
        for _ in range(_MANIFEST_RETRIES):
            found = self._read_manifests()
            if found is not None:
                return found
        raise WarehouseError(f"{self.home / '_commits'}: manifests keep vanishing while read; try again")

    def _read_manifests(self) -> list[dict[str, Any]] | None:
        out = []
        for path in sorted((self.home / "_commits").glob("*.json")):
            try:
                manifest = json.loads(path.read_text())
            except FileNotFoundError:
                return None  # removed by a compaction since listed: read them all again
            except (OSError, json.JSONDecodeError) as exc:
                raise WarehouseError(f"{path}: unreadable commit manifest ({exc})") from None
            tables = manifest.get("tables") if isinstance(manifest, dict) else None
            if not isinstance(tables, dict) or not all(
                isinstance(t, dict) and isinstance(t.get("files"), list) for t in tables.values()
            ):
                raise WarehouseError(
                    f"{path}: commit manifest without a 'tables' object listing files "
                    "(run 'whatchanged doctor')"
                )
            out.append(manifest)
        return out

    def files(self, table: str, manifests: list[dict[str, Any]] | None = None) -> list[str]:
        """Absolute paths of the live committed files of ``table``, in commit order: named by
        a manifest and not replaced by a compaction (a manifest's ``replaces``)."""
        found: list[str] = []
        listed = manifests if manifests is not None else self.manifests()
        gone = replaced_files(listed, table)
        for m in listed:
            found.extend(
                str(self.home / f) for f in m["tables"].get(table, {}).get("files", []) if f not in gone
            )
        return found

    # -- reading -------------------------------------------------------------------
    def connect(self, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with one view per table."""
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone='UTC'")
        if threads:
            con.execute(f"SET threads={int(threads)}")
        self.refresh_views(con)
        return con

    def refresh_views(self, con: duckdb.DuckDBPyConnection) -> None:
        """(Re)create the views on ``con`` over what is committed now."""
        manifests = self.manifests()
        for table in TABLES:
            con.execute(f"CREATE OR REPLACE VIEW {table} AS {self._view_sql(table, manifests)}")

    def _view_sql(self, table: str, manifests: list[dict[str, Any]]) -> str:
        files = self.files(table, manifests)
        empty = self.home / "_empty" / f"{table}.parquet"
        if not files and not empty.is_file():  # a warehouse initialised before the table existed
            cols = ", ".join(f'NULL::VARCHAR AS "{f.name}"' for f in _schema(table))
            return f"SELECT {cols} WHERE false"
        later = _later_columns(table)
        if not files:
            return f"SELECT * FROM read_parquet('{empty}'){later}"
        listing = "[" + ", ".join(_sql_str(f) for f in files) + "]"
        if table == "services":
            # by name: files written before a later column (redundancy_group) lack it
            return (
                f"SELECT * EXCLUDE (filename) FROM (SELECT * FROM read_parquet({listing}, filename=true, "
                f"union_by_name=true){later}) "
                "QUALIFY row_number() OVER (PARTITION BY service "
                "ORDER BY parse_filename(filename) DESC) = 1"
            )
        if table == "changes":
            return (
                f"SELECT * EXCLUDE (filename) FROM read_parquet({listing}, filename=true) "
                "QUALIFY row_number() OVER (PARTITION BY change_id ORDER BY sequence DESC NULLS LAST, "
                "stamp DESC NULLS LAST, parse_filename(filename) DESC) = 1"
            )
        if table == "cursors":
            return (
                f"SELECT * EXCLUDE (filename) FROM read_parquet({listing}, filename=true) "
                "QUALIFY row_number() OVER (PARTITION BY source ORDER BY parse_filename(filename) DESC) = 1"
            )
        if table == "dependencies":
            return f"SELECT DISTINCT * FROM read_parquet({listing})"
        if table == "states":
            # states are small; dedup at read too, in case two writers raced.
            return f"SELECT DISTINCT * FROM read_parquet({listing})"
        return f"SELECT * FROM read_parquet({listing})"

    def changes_history(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
        """Every stored version of every change (the ``changes`` view keeps the latest)."""
        files = self.files("changes")
        if not files:
            return con.sql("SELECT * FROM changes")
        return con.sql(f"SELECT * FROM read_parquet([{', '.join(_sql_str(f) for f in files)}])")

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
    ) -> _Staged:
        """Drop the rows ``manifests`` already store and write the rest under ``staging``."""
        staged = _Staged()
        # a DuckDB connection only when something is stored to compare with
        con = self.connect() if any(t.num_rows for t in tables.values()) and manifests else None
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
        staged: _Staged,
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
        _fsync_write(tmp_manifest, json.dumps(manifest, indent=1).encode())
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
        con: duckdb.DuckDBPyConnection | None,
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
            data, days = _sorted_by_day_and_key(table, data)
        elif table == "changes":
            data, days = _latest_changes(data), None
        else:
            data, days = _drop_duplicate_keys(data, keys), None
        stored = self.files(table, manifests)
        if days is not None:
            wanted = {f"date={_day_name(d)}" for d in days}
            stored = [f for f in stored if Path(f).parent.name in wanted]
            stored += [f for folder in sorted(wanted) for f in (staged or {}).get(folder, ())]
        if not stored:
            return data
        if con is None:  # another writer committed since commit() looked
            with self.connect() as own:
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
            | {"__row": _from_numpy(np.arange(data.num_rows, dtype=np.int64))}
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
        return data.take(_from_numpy(np.flatnonzero(keep)))

    def _partitions(self, table: str, data: pa.Table) -> Iterable[tuple[str, pa.Table]]:
        """``(folder, rows)`` per file; partitioned tables are already sorted by day first."""
        if table not in PARTITIONED:
            yield "", data
            return
        for day, lo, hi in _day_runs(to_numpy(data.column("ts"))):
            # a big day goes to a few files (contiguous key ranges) written in parallel
            pieces = max(1, min(os.cpu_count() or 1, 4, (hi - lo) // _FILE_SPLIT_ROWS))
            step = -(-(hi - lo) // pieces)
            for start in range(lo, hi, step):
                yield f"date={_day_name(day)}", data.slice(start, min(step, hi - start))

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
                else value.take(_from_numpy(np.linspace(0, len(value) - 1, 1 << 16).astype(np.int64)))
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

    def sweep(self, *, grace_s: float = STAGING_GRACE_S, dry_run: bool = False) -> Swept:
        """Remove what killed writers left: staging folders under ``.tmp/`` and data files
        no manifest names.  Never a live writer's: a writer holds a lock on its staging
        folder until it has committed or undone its renames, and a data file is kept while
        the lock of its ``txid`` is held or its manifest exists.  ``grace_s`` spares an
        unlocked staging folder that young (a writer between ``mkdir`` and its lock)."""
        self.require()
        tmp = self.home / ".tmp"
        live: set[str] = set()
        staging: list[str] = []
        freed = 0
        now = time.time()
        for entry in sorted(tmp.iterdir()) if tmp.is_dir() else []:
            try:
                if (entry.is_dir() and held_by_other(entry)) or now - entry.stat().st_mtime < grace_s:
                    live.add(entry.name)
                    continue
            except FileNotFoundError:
                continue  # its writer just finished
            size = _tree_size(entry)
            if not dry_run:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            staging.append(str(entry.relative_to(self.home)))
            freed += size
        # read after the staging folders: a writer that finished meanwhile has its manifest here
        named = {f for m in self.manifests() for t in m["tables"].values() for f in t["files"]}
        orphans: list[str] = []
        for table in TABLES:
            for path in sorted((self.home / table).rglob("*.parquet")):
                rel = str(path.relative_to(self.home))
                if rel in named:
                    continue
                txid = path.name.rsplit("-", 1)[0]
                # lock before manifest: a writer finishing between the two has its manifest in place
                if (
                    txid in live
                    or held_by_other(tmp / txid)
                    or (self.home / "_commits" / f"{txid}.json").exists()
                ):
                    continue
                try:
                    size = path.stat().st_size
                    if not dry_run:
                        path.unlink()
                except FileNotFoundError:
                    continue
                orphans.append(rel)
                freed += size
                if not dry_run and path.parent != self.home / table:
                    with contextlib.suppress(OSError):
                        path.parent.rmdir()  # an emptied day folder
        return Swept(tuple(staging), tuple(orphans), len(live), freed)

    def committed_bytes(self, manifests: list[dict[str, Any]] | None = None) -> int:
        """Bytes of the data files the manifests name (missing files count 0)."""
        total = 0
        for table in TABLES:
            for f in self.files(table, manifests):
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(f).st_size
        return total

    # -- summary ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Rows per table, services, time range and commits: what ``whatchanged status`` prints."""
        self.require()
        manifests = self.manifests()
        con = self.connect()
        try:
            rows = {t: _scalar(con, f"SELECT count(*) FROM {t}") for t in TABLES}
            first, last = con.sql(
                "SELECT min(ts), max(ts) FROM (SELECT ts FROM metrics UNION ALL SELECT ts FROM states)"
            ).fetchall()[0]
            services = _scalar(con, "SELECT count(*) FROM services")
            series_services = _scalar(con, "SELECT count(DISTINCT service) FROM metrics")
            by_kind = dict(
                con.sql("SELECT kind, count(*) FROM changes GROUP BY kind ORDER BY kind").fetchall()
            )
        finally:
            con.close()
        size = self.committed_bytes(manifests)
        files = {t: self.files(t, manifests) for t in TABLES}
        per_part = {
            t: max(
                (n for n in collections.Counter(str(Path(f).parent) for f in files[t]).values()), default=0
            )
            for t in PARTITIONED
        }
        return {
            "home": str(self.home),
            "commits": len(manifests),
            "rows": rows,
            "files": {t: len(fs) for t, fs in files.items()},
            "most_files_per_day": per_part,
            "services": services,
            "services_with_metrics": series_services,
            "changes_by_kind": by_kind,
            "first": first.isoformat() if first else None,
            "last": last.isoformat() if last else None,
            "bytes": size,
        }


def replaced_files(manifests: Iterable[Mapping[str, Any]], table: str | None = None) -> set[str]:
    """The files (relative paths) that compactions replaced, of ``table`` or of every table."""
    out: set[str] = set()
    for m in manifests:
        replaces = m.get("replaces")
        if isinstance(replaces, dict):
            for t, names in replaces.items():
                if (table is None or t == table) and isinstance(names, list):
                    out.update(str(n) for n in names)
    return out


def latest_day(con: duckdb.DuckDBPyConnection, tz: str = "UTC") -> date | None:
    """The local day (in ``tz``) of the latest metric or state: what ``HH:MM`` means.

    Changes count only when there is no metric or state at all: a notice
    announcing next week's maintenance must not move "19:23" to next week.
    """
    from whatchanged.engine.extent import last_data_ts

    last = last_data_ts(con)
    if last is None:
        last = _scalar(con, "SELECT max(start) FROM changes")
    if last is None:
        return None
    day: date = last.astimezone(ZoneInfo(tz)).date()
    return day


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.sql(sql).fetchall()
    return row[0][0] if row else None


def _later_columns(table: str) -> str:
    """``UNION ALL BY NAME`` with an empty row set of the columns added to ``table`` after
    warehouses were first written: files without them read them as null, and a view over
    files that have them is unchanged (the columns keep their place)."""
    cols = LATER_COLUMNS.get(table, ())
    if not cols:
        return ""
    typed = ", ".join(f'NULL::VARCHAR AS "{c}"' for c in cols)
    return f" UNION ALL BY NAME SELECT {typed} WHERE false"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


_US_PER_DAY = 86_400_000_000
#: A day partition with at least twice this many rows is split into files.
_FILE_SPLIT_ROWS = 1_000_000
_EPOCH_DAY = date(1970, 1, 1)
#: Value dictionaries up to this many entries (a 1 MiB dictionary page of doubles).
_VALUE_DICT_MAX = 1 << 17
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


def _from_numpy(values: Any, *, valid: Any = None, type_: pa.DataType | None = None) -> pa.Array:
    """A numeric numpy array as Arrow (zero-copy when contiguous); ``valid`` False → null."""
    values = np.ascontiguousarray(values)
    arrow_type = type_ or pa.from_numpy_dtype(values.dtype)
    bitmap = None
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(arrow_type, len(values), [bitmap, pa.py_buffer(values)])


def _empty_table(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([pa.chunked_array([], f.type) for f in schema], schema=schema)


def _day_runs(ts: Any) -> list[tuple[int, int, int]]:
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


def _day_name(day: int) -> str:
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
    dictionary = values.take(_from_numpy(order))
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
    new_idx = _from_numpy(row_rank, valid=row_rank >= 0 if col.null_count else None)
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
    """:func:`_sorted_by_day_and_key` for input written scrape by scrape with the same
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
    take = _from_numpy(order)
    with ThreadPoolExecutor(max_workers=2) as pool:
        encoded = dict(zip(others, pool.map(lambda c: _ranked(data.column(c)), others), strict=True))
        rest = [c for c in data.column_names if c != "ts" and c not in names]
        gathered = dict(zip(rest, pool.map(lambda c: _gather(data, c, take, encoded), rest), strict=True))
    cols: list[pa.Array | pa.ChunkedArray] = []
    for name in data.column_names:
        if name == "ts":
            cols.append(_from_numpy(out_ts, type_=data.schema.field("ts").type))
        elif name in out_ranks:
            idx = out_ranks[name]
            indices = _from_numpy(idx, valid=idx >= 0 if (ranked[name][1] < 0).any() else None)
            cols.append(pa.DictionaryArray.from_arrays(indices, ranked[name][0].dictionary))
        else:
            cols.append(gathered[name])
    days = [int(block_ts[lo]) // _US_PER_DAY for lo in bounds[:-1]]
    return pa.Table.from_arrays(cols, names=data.column_names), days


def _sorted_by_day_and_key(table: str, data: pa.Table) -> tuple[pa.Table, list[int]]:
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
        take = _from_numpy(order)
        sorted_ts = ts_np[order]

        def gather(name: str) -> pa.Array | pa.ChunkedArray:
            if name == "ts":
                return _from_numpy(sorted_ts, type_=data.schema.field("ts").type)
            return _gather(data, name, take, encoded)

        cols = list(pool.map(gather, data.column_names))
    days = [day for day, _, _ in _day_runs(sorted_ts)]
    return pa.Table.from_arrays(cols, names=data.column_names), days
