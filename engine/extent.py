"""What the warehouse's views cover, answered from the file listing rather than a scan.

The ``metrics`` view of a warehouse :class:`~whatchanged.engine.snapshot.Snapshot` reads
a list of day-partitioned Parquet files (``metrics/date=YYYY-MM-DD/…``), which the
snapshot holds.  Knowing the files, the latest timestamp is the
maximum over the latest day's files only (a scan of every day costs about a second
on a month of 1-minute data for 1002 services), and detection reads the files it
needs directly.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from whatchanged.engine.snapshot import Snapshot

#: the day of a file of a day-partitioned table (``…/date=YYYY-MM-DD/…``)
DAY_DIR = re.compile(r"[/\\]date=(\d{4}-\d{2}-\d{2})[/\\]")


def first_row(con: Snapshot, sql: str, args: Any = None) -> tuple[Any, ...] | None:
    """The first row of ``sql``, or None.  Fetches the whole result: with DuckDB 2.x a result
    left unfinished (``fetchone()`` on a query that is not exhausted) blocks the next query
    on the same cursor."""
    rows = con.execute(sql, args or {}).fetchall()
    return tuple(rows[0]) if rows else None


def _scalar(con: Snapshot, sql: str, args: dict[str, Any] | None = None) -> Any:
    row = first_row(con, sql, args)
    return row[0] if row else None


def last_metric_ts(con: Snapshot) -> datetime | None:
    """The latest metric timestamp: from the latest day's files when the view lists files."""
    files = con.files("metrics")
    if files:
        days = [(m.group(1), f) for f in files if (m := DAY_DIR.search(f))]
        if len(days) == len(files):  # every file in a day partition
            last = max(d for d, _ in days)
            value: Any = _scalar(
                con, "SELECT max(ts) FROM read_parquet($f)", {"f": [f for d, f in days if d == last]}
            )
            if isinstance(value, datetime):
                return value
    value = _scalar(con, "SELECT max(ts) FROM metrics")
    return value if isinstance(value, datetime) else None


def last_data_ts(con: Snapshot) -> datetime | None:
    """The latest timestamp of any metric or check state."""
    found = [t for t in (last_metric_ts(con), _scalar(con, "SELECT max(ts) FROM states")) if t is not None]
    return max(found) if found else None


def observed_range(con: Snapshot) -> tuple[datetime, datetime] | None:
    """First and last timestamp of any metric or check state (what was observed), or None."""
    return _range(con, ("metrics", "ts"), ("states", "ts"))


def data_range(con: Snapshot) -> tuple[datetime, datetime] | None:
    """First and last timestamp of any metric, check state or change start, or None."""
    return _range(con, ("metrics", "ts"), ("states", "ts"), ("changes", "start"))


def _range(con: Snapshot, *columns: tuple[str, str]) -> tuple[datetime, datetime] | None:
    parts = " UNION ALL ".join(f'SELECT min("{c}") AS lo, max("{c}") AS hi FROM {t}' for t, c in columns)
    row = first_row(con, f"SELECT min(lo), max(hi) FROM ({parts})")
    if row is None or row[0] is None or row[1] is None:
        return None
    return row[0], row[1]
