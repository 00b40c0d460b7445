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

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from whatchanged.engine.errors import WarehouseError
from whatchanged.engine.schema import KEYS, SCHEMAS, conform

FORMAT_VERSION = 1
TABLES = ("services", "metrics", "states", "changes", "feedback")
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

_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}


@dataclass(frozen=True)
class CommitResult:
    """What one :meth:`Warehouse.commit` stored."""

    txid: str | None
    rows_in: dict[str, int]
    rows_added: dict[str, int]
    files: list[str] = field(default_factory=list)

    @property
    def added_total(self) -> int:
        return sum(self.rows_added.values())


def _schema(table: str) -> pa.Schema:
    return FEEDBACK if table == "feedback" else SCHEMAS[table]


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
        for sub in ("_commits", "_empty", ".tmp", *TABLES):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        for table in TABLES:
            pq.write_table(_schema(table).empty_table(), self.home / "_empty" / f"{table}.parquet")
        _fsync_write(self.home / "WAREHOUSE", json.dumps({"format": FORMAT_VERSION}).encode())
        return True

    def require(self) -> None:
        if not self.exists:
            raise WarehouseError(
                f"no warehouse at {self.home}: run 'whatchanged init' or 'whatchanged ingest' first"
                " (or pass --home / set WHATCHANGED_HOME)"
            )

    # -- manifests --------------------------------------------------------------
    def manifests(self) -> list[dict[str, Any]]:
        """Every committed manifest, oldest first."""
        self.require()
        out = []
        for path in sorted((self.home / "_commits").glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise WarehouseError(f"{path}: unreadable commit manifest ({exc})") from None
        return out

    def files(self, table: str, manifests: list[dict[str, Any]] | None = None) -> list[str]:
        """Absolute paths of the committed files of ``table``, in commit order."""
        found: list[str] = []
        for m in manifests if manifests is not None else self.manifests():
            found.extend(str(self.home / f) for f in m["tables"].get(table, {}).get("files", []))
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
        if not files:
            return f"SELECT * FROM read_parquet('{self.home / '_empty' / (table + '.parquet')}')"
        listing = "[" + ", ".join(_sql_str(f) for f in files) + "]"
        if table == "services":
            return (
                f"SELECT * EXCLUDE (filename) FROM read_parquet({listing}, filename=true) "
                "QUALIFY row_number() OVER (PARTITION BY service "
                "ORDER BY parse_filename(filename) DESC) = 1"
            )
        if table == "changes":
            return (
                f"SELECT * EXCLUDE (filename) FROM read_parquet({listing}, filename=true) "
                "QUALIFY row_number() OVER (PARTITION BY change_id ORDER BY sequence DESC NULLS LAST, "
                "stamp DESC NULLS LAST, parse_filename(filename) DESC) = 1"
            )
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
        """Store ``tables`` (name → Arrow table) atomically; return what was added."""
        if not self.exists:
            self.init()
        txid = _new_txid()
        staging = self.home / ".tmp" / txid
        staging.mkdir(parents=True)
        rows_in: dict[str, int] = {}
        added: dict[str, int] = {}
        planned: list[tuple[Path, Path]] = []
        listing: dict[str, dict[str, Any]] = {}
        try:
            con = self.connect() if any(t.num_rows for t in tables.values()) else None
            for table, data in tables.items():
                schema = _schema(table)
                data = conform(table, data, source=source) if table != "feedback" else data.cast(schema)
                rows_in[table] = data.num_rows
                if con is not None and data.num_rows:
                    data = self._new_rows(con, table, data)
                added[table] = data.num_rows
                if not data.num_rows:
                    continue
                for n, (rel_dir, part) in enumerate(self._partitions(table, data)):
                    rel = Path(table) / rel_dir / f"{txid}-{n}.parquet"
                    tmp = staging / f"{table}-{n}.parquet"
                    self._write_parquet(table, part, tmp)
                    planned.append((tmp, self.home / rel))
                    listing.setdefault(table, {"files": [], "rows": 0})
                    listing[table]["files"].append(str(rel))
                    listing[table]["rows"] += part.num_rows
            if con is not None:
                con.close()
            if not planned:
                return CommitResult(None, rows_in, added)
            for tmp, final in planned:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            manifest = {
                "txid": txid,
                "created": datetime.now(UTC).isoformat(),
                "source": source,
                "tables": listing,
            }
            tmp_manifest = staging / "manifest.json"
            _fsync_write(tmp_manifest, json.dumps(manifest, indent=1).encode())
            os.replace(tmp_manifest, self.home / "_commits" / f"{txid}.json")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return CommitResult(txid, rows_in, added, [str(f) for _, f in planned])

    def _new_rows(self, con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> pa.Table:
        """``data`` without the rows the warehouse (or ``data`` itself) already has."""
        keys = KEYS.get(table, ("feedback_id",))
        data = _drop_duplicate_keys(data, keys)
        if table == "feedback":
            return data
        stored = self.files(table)
        if not stored:
            return data
        con.register("incoming", data)
        try:
            if table in ("services", "changes"):
                # identical to the row the view shows now → nothing new
                cols = ", ".join(f'"{c}"' for c in _schema(table).names)
                rel = con.sql(f"SELECT {cols} FROM incoming EXCEPT SELECT {cols} FROM {table}")
            else:
                on = " AND ".join(f'i."{k}" = s."{k}"' for k in keys)
                lo, hi = pc.min_max(data.column("ts")).values()
                listing = ", ".join(_sql_str(f) for f in stored)
                rel = con.sql(
                    f"SELECT i.* FROM incoming i ANTI JOIN (SELECT * FROM read_parquet([{listing}]) "
                    f"WHERE ts BETWEEN {_sql_ts(lo)} AND {_sql_ts(hi)}) s ON {on}"
                )
            return rel.to_arrow_table().cast(_schema(table))
        finally:
            con.unregister("incoming")

    def _partitions(self, table: str, data: pa.Table) -> Iterable[tuple[str, pa.Table]]:
        if table not in PARTITIONED:
            yield "", data
            return
        data = data.sort_by(
            [
                (c, "ascending")
                for c in (("service", "metric", "ts") if table == "metrics" else ("service", "check", "ts"))
            ]
        )
        days = pc.cast(pc.cast(data.column("ts"), pa.timestamp("us")), pa.date32())
        for day in pc.unique(days).to_pylist():
            part = data.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            yield f"date={day.isoformat()}", part

    def _write_parquet(self, table: str, data: pa.Table, path: Path) -> None:
        options = dict(_PARQUET_OPTIONS)
        if table == "metrics":
            options.update(
                use_dictionary=["service", "metric", "env"],
                column_encoding={"ts": "DELTA_BINARY_PACKED", "value": "BYTE_STREAM_SPLIT"},
                row_group_size=1_000_000,
            )
        pq.write_table(data, path, **options)
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())

    def sweep(self, *, older_than_s: float = 3600) -> int:
        """Remove data files no manifest names (left by a killed write); return how many."""
        self.require()
        named = {
            str(self.home / f) for m in self.manifests() for t in m["tables"].values() for f in t["files"]
        }
        cutoff = time.time() - older_than_s
        removed = 0
        for table in TABLES:
            for path in (self.home / table).rglob("*.parquet"):
                if str(path) not in named and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        for stale in (self.home / ".tmp").iterdir():
            if stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True)
        return removed

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
        size = sum(p.stat().st_size for t in TABLES for p in (self.home / t).rglob("*.parquet"))
        return {
            "home": str(self.home),
            "commits": len(manifests),
            "rows": rows,
            "services": services,
            "services_with_metrics": series_services,
            "changes_by_kind": by_kind,
            "first": first.isoformat() if first else None,
            "last": last.isoformat() if last else None,
            "bytes": size,
        }


def latest_day(con: duckdb.DuckDBPyConnection, tz: str = "UTC") -> date | None:
    """The local day (in ``tz``) of the latest metric, state or change start: what ``HH:MM`` means."""
    last = _scalar(
        con,
        "SELECT max(t) FROM (SELECT max(ts) AS t FROM metrics UNION ALL SELECT max(ts) FROM states "
        "UNION ALL SELECT max(start) FROM changes)",
    )
    if last is None:
        return None
    day: date = last.astimezone(ZoneInfo(tz)).date()
    return day


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.sql(sql).fetchall()
    return row[0][0] if row else None


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_ts(value: Any) -> str:
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    return f"TIMESTAMPTZ '{value.isoformat()}'"


def _drop_duplicate_keys(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Keep the first row of each key within ``data``."""
    if data.num_rows < 2:
        return data
    idx = pa.array(range(data.num_rows), pa.int64())
    with_idx = data.select(list(keys)).append_column("__i", idx)
    firsts = with_idx.group_by(list(keys), use_threads=False).aggregate([("__i", "min")])
    if firsts.num_rows == data.num_rows:
        return data
    keep = pc.sort_indices(firsts.column("__i_min"))
    return data.take(pc.take(firsts.column("__i_min"), keep))
