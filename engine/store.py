"""The warehouse folder and its reading side: layout, manifests, views, sweep, status.

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

A write (:meth:`whatchanged.engine.warehouse.Warehouse.commit`) puts every data file in place under a
temporary name, renames it, and only then renames its manifest into
``_commits/``.  Readers list the manifests and build DuckDB views over the
files they name, so a crash at any point leaves either the whole write or
nothing visible; files without a manifest are garbage and are removed by
:meth:`Store.sweep`.  ``txid`` starts with the commit time in
nanoseconds, so manifests sort in commit order.

There is no ``.duckdb`` file and no lock: any number of processes may read
while others write; each reader opens its own in-memory DuckDB connection
(:meth:`Store.snapshot`) with ``TimeZone='UTC'``.

Re-ingesting the same input adds nothing: rows whose natural key
(:data:`whatchanged.engine.schema.KEYS`) is already stored are dropped
before writing (metrics, states), and services/changes rows identical to a
stored one are dropped; a changed services or changes row is appended and
the views show the latest one.
The writing side (commit, dropping rows already stored) is
:class:`whatchanged.engine.warehouse.Warehouse`, a :class:`Store` that writes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine.errors import WarehouseError
from whatchanged.engine.schema import LATER_COLUMNS, SCHEMAS
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.storage import held_by_other, storage_error

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

#: readings of the manifests before giving up when compactions keep removing some meanwhile
_MANIFEST_RETRIES = 20
#: an unlocked staging folder younger than this may be a writer between ``mkdir`` and its lock
STAGING_GRACE_S = 5.0


@dataclass(frozen=True)
class Swept:
    """What :meth:`Store.sweep` removed (paths relative to the warehouse)."""

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


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the caller renames it into place)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def empty_table(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([pa.chunked_array([], f.type) for f in schema], schema=schema)


def commit_probe(home: Path) -> str:
    """A cheap probe of what is committed under ``home``: how many manifests and the newest
    (names sort in commit order), so it changes with every commit and compaction; ``none`` when
    the folder cannot be listed.  One ``listdir``, no manifest read."""
    try:
        names = os.listdir(home / "_commits")
    except OSError:
        return "none"
    return f"{len(names)}:{max(names, default='')}"


class Store:
    """A warehouse folder, read side.  Cheap to create; touches the disk only when asked."""

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
                pq.write_table(empty_table(_schema(table)), final.with_name(final.name + private))
                os.replace(final.with_name(final.name + private), final)
            marker = self.home / "WAREHOUSE"
            fsync_write(
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
    def snapshot(self, *, threads: int | None = None) -> Snapshot:
        """What is committed now: a new in-memory DuckDB connection with one view per table,
        and the files those views list (:class:`~whatchanged.engine.snapshot.Snapshot`)."""
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone='UTC'")
        if threads:
            con.execute(f"SET threads={int(threads)}")
        return self.views(con)

    def views(self, con: duckdb.DuckDBPyConnection) -> Snapshot:
        """(Re)create the views on ``con`` over what is committed now; the snapshot they make."""
        manifests = self.manifests()
        files = {t: self.files(t, manifests) for t in TABLES}
        for table in TABLES:
            con.execute(f"CREATE OR REPLACE VIEW {table} AS {self._view_sql(table, files[table])}")
        return Snapshot(con, home=self.home, manifests=manifests, files=files)

    def _view_sql(self, table: str, files: list[str]) -> str:
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
        con = self.snapshot()
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


def changes_history(con: Snapshot) -> duckdb.DuckDBPyRelation:
    """Every stored version of every change (the ``changes`` view keeps the latest)."""
    files = con.files("changes")
    if not files:
        return con.sql("SELECT * FROM changes")
    return con.sql(f"SELECT * FROM read_parquet([{', '.join(_sql_str(f) for f in files)}])")


def latest_day(con: Snapshot, tz: str = "UTC") -> date | None:
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


def _scalar(con: Snapshot, sql: str) -> Any:
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
