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

import itertools
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
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
            # a DuckDB connection only when something is stored to compare with
            con = self.connect() if any(t.num_rows for t in tables.values()) and self.manifests() else None
            jobs: list[tuple[str, pa.Table, Path]] = []
            for table, data in tables.items():
                schema = _schema(table)
                data = conform(table, data, source=source) if table != "feedback" else data.cast(schema)
                rows_in[table] = data.num_rows
                if data.num_rows:
                    data = self._new_rows(con, table, data)
                added[table] = data.num_rows
                if not data.num_rows:
                    continue
                for n, (rel_dir, part) in enumerate(self._partitions(table, data)):
                    rel = Path(table) / rel_dir / f"{txid}-{n}.parquet"
                    tmp = staging / f"{table}-{n}.parquet"
                    jobs.append((table, part, tmp))
                    planned.append((tmp, self.home / rel))
                    listing.setdefault(table, {"files": [], "rows": 0})
                    listing[table]["files"].append(str(rel))
                    listing[table]["rows"] += part.num_rows
            if con is not None:
                con.close()
            # Parquet encoding is single-threaded per file and releases the GIL
            with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1, 4))) as pool:
                list(pool.map(lambda job: self._write_parquet(*job), jobs))
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

    def _new_rows(self, con: duckdb.DuckDBPyConnection | None, table: str, data: pa.Table) -> pa.Table:
        """``data`` without the rows the warehouse (or ``data`` itself) already has.

        Partitioned tables come back sorted by (day, natural key) — the order
        :meth:`_partitions` slices and :meth:`_write_parquet` stores — with
        low-cardinality strings dictionary-encoded (they are written as plain
        Parquet strings).
        """
        keys = KEYS.get(table, ("feedback_id",))
        if table in PARTITIONED:
            data, days = _sorted_by_day_and_key(table, data)
        elif table == "changes":
            data, days = _latest_changes(data), None
        else:
            data, days = _drop_duplicate_keys(data, keys), None
        if table == "feedback":
            return data
        stored = self.files(table)
        if days is not None:
            firsts = np.concatenate([days[:1], days[1:][days[1:] != days[:-1]]])  # days is sorted
            wanted = {f"date={_day_name(int(d))}" for d in firsts}
            stored = [f for f in stored if Path(f).parent.name in wanted]
        if not stored:
            return data
        if con is None:  # another writer committed since commit() looked
            with self.connect() as own:
                return self._new_rows(own, table, data)
        if table in ("services", "changes"):
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
            {k: data.column(k) for k in keys} | {"__row": pa.array(np.arange(data.num_rows, dtype=np.int64))}
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
        keep[rows.column(0).to_numpy()] = False
        return data.filter(pa.array(keep))

    def _partitions(self, table: str, data: pa.Table) -> Iterable[tuple[str, pa.Table]]:
        """``(folder, rows)`` per file; partitioned tables are already sorted by day first."""
        if table not in PARTITIONED:
            yield "", data
            return
        days = _days(data.column("ts"))
        cuts = np.flatnonzero(np.diff(days)) + 1
        bounds = [0, *cuts.tolist(), data.num_rows]
        for lo, hi in itertools.pairwise(bounds):
            # a big day goes to a few files (contiguous key ranges) written in parallel
            pieces = max(1, min(os.cpu_count() or 1, 4, (hi - lo) // _FILE_SPLIT_ROWS))
            step = -(-(hi - lo) // pieces)
            for start in range(lo, hi, step):
                yield f"date={_day_name(int(days[lo]))}", data.slice(start, min(step, hi - start))

    def _write_parquet(self, table: str, data: pa.Table, path: Path) -> None:
        """Write one zstd Parquet file with encodings chosen for the column (fsynced).

        Metrics: ``ts`` DELTA_BINARY_PACKED (sorted series → tiny deltas);
        strings dictionary + RLE (sorted → long runs); ``value`` dictionary
        when it has few distinct values (exporters round: 0.1 ms, 0.01 Mbit/s,
        counter rates k/step), else BYTE_STREAM_SPLIT, which suits
        full-precision floats best.  Nothing is rounded.
        """
        options = dict(_PARQUET_OPTIONS)
        if table == "metrics":
            value = data.column("value")
            sample = (
                value.slice(0, 1 << 16)
                if len(value) <= 1 << 17
                else value.take(pa.array(np.linspace(0, len(value) - 1, 1 << 16).astype(np.int64)))
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
                store_schema=False,
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
    """The local day (in ``tz``) of the latest metric or state: what ``HH:MM`` means.

    Changes count only when there is no metric or state at all: a notice
    announcing next week's maintenance must not move "19:23" to next week.
    """
    last = _scalar(
        con, "SELECT max(t) FROM (SELECT max(ts) AS t FROM metrics UNION ALL SELECT max(ts) FROM states)"
    )
    if last is None:
        last = _scalar(con, "SELECT max(start) FROM changes")
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
    """Keep the first row of each key within ``data`` (services, changes, feedback)."""
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
#: Low-cardinality strings stored as dictionaries in partitioned tables.
_DICT_COLUMNS = ("service", "metric", "check", "state", "state_type", "source", "env")


def _days(ts: pa.ChunkedArray | pa.Array) -> Any:
    """Days since 1970-01-01 (UTC) of each timestamp, as a numpy int64 array."""
    us = ts.cast(pa.int64())
    us = us.combine_chunks() if isinstance(us, pa.ChunkedArray) else us
    return np.floor_divide(us.to_numpy(zero_copy_only=False), _US_PER_DAY)


def _day_name(day: int) -> str:
    return date.fromordinal(_EPOCH_DAY.toordinal() + day).isoformat()


def _ranked(col: pa.ChunkedArray | pa.Array) -> tuple[pa.DictionaryArray, Any]:
    """``col`` dictionary-encoded with a sorted dictionary, and each row's rank (numpy; null → -1)."""
    if isinstance(col, pa.ChunkedArray) and pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    elif isinstance(col, pa.DictionaryArray):
        col = col.dictionary_decode()
    encoded = pc.dictionary_encode(col)  # chunk by chunk: no copy of the strings
    if isinstance(encoded, pa.ChunkedArray):
        unified = pa.table({"c": encoded}).unify_dictionaries().column(0)
        enc = unified.combine_chunks() if unified.num_chunks else pa.array([], col.type).dictionary_encode()
    else:
        enc = encoded
    order = pc.sort_indices(enc.dictionary)
    dictionary = enc.dictionary.take(order)
    rank = np.empty(len(order) + 1, dtype=np.int32)
    rank[order.to_numpy()] = np.arange(len(order), dtype=np.int32)
    rank[-1] = -1  # where nulls point below
    if enc.indices.null_count:
        row_rank = rank[enc.indices.fill_null(-1).to_numpy()]
        new_idx = pa.array(row_rank, mask=row_rank < 0)
    else:
        row_rank = rank[enc.indices.to_numpy()]
        new_idx = pa.array(row_rank)
    return pa.DictionaryArray.from_arrays(new_idx, dictionary), row_rank


def _order(days: Any, sort_cols: list[Any]) -> tuple[Any, Any, Any]:
    """Stable sort order by (day, *sort_cols), the sorted days, and a mask of repeated keys.

    ``sort_cols`` are int32 ranks of string keys and the int64 ``ts``.  When
    the key ends with ``ts`` (metrics) and the day × rank combinations fit in
    2**26, (day, ranks…, time of day) is packed into one int64 and sorted with
    a single-key stable argsort; otherwise ``np.lexsort`` sorts on all keys.
    """
    n = len(days)
    if n == 0:
        return np.zeros(0, dtype=np.int64), days, np.zeros(0, dtype=bool)
    *ranks, last = sort_cols
    if last.dtype == np.int64 and all(r.dtype == np.int32 for r in ranks):
        dmin = int(days.min())
        radix = int(days.max()) - dmin + 1
        combined = days - dmin
        for r in ranks:
            size = int(r.max()) + 2
            radix *= size
            if radix >= 1 << 26:
                break
            combined = combined * size + (r.astype(np.int64) + 1)
        else:
            key = (combined << 37) | (last - days * _US_PER_DAY)  # time of day < 2**37 µs
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            dup = np.zeros(n, dtype=bool)
            dup[1:] = sorted_key[1:] == sorted_key[:-1]
            return order, days[order], dup
    order = np.lexsort([*reversed(sort_cols), days])  # last key is primary; stable
    dup = np.zeros(n, dtype=bool)
    if n > 1:
        same = np.ones(n - 1, dtype=bool)
        for c in sort_cols:
            sc = c[order]
            same &= sc[1:] == sc[:-1]
        dup[1:] = same
    return order, days[order], dup


def _sorted_by_day_and_key(table: str, data: pa.Table) -> tuple[pa.Table, Any]:
    """``data`` sorted by (day, natural key), stable, first row of each key kept; and its days.

    String columns are ranked through a sorted dictionary so the sort is on
    integers (numpy ``lexsort``); duplicates are then adjacent and are found
    by comparing each row with the one before it.
    """
    keys = KEYS[table]
    ts = data.column("ts").cast(pa.int64())
    ts_np = (ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts).to_numpy(zero_copy_only=False)
    days = np.floor_divide(ts_np, _US_PER_DAY)
    encoded: dict[str, pa.DictionaryArray] = {}
    sort_cols: list[Any] = []
    for k in keys:
        if k == "ts":
            sort_cols.append(ts_np)
        else:
            encoded[k], rank = _ranked(data.column(k))
            sort_cols.append(rank)
    for name in _DICT_COLUMNS:
        if name in data.column_names and name not in encoded:
            encoded[name], _ = _ranked(data.column(name))
    order, sorted_days, dup = _order(days, sort_cols)
    if dup.any():
        order, sorted_days = order[~dup], sorted_days[~dup]
    take = pa.array(order)
    cols = []
    for field_ in data.schema:
        if field_.name in encoded:
            enc = encoded[field_.name]
            cols.append(pa.DictionaryArray.from_arrays(enc.indices.take(take), enc.dictionary))
        else:
            cols.append(data.column(field_.name).take(take))
    return pa.Table.from_arrays(cols, names=data.column_names), sorted_days
