"""The data's extent, read from the views: what it reports, and that it leaves the cursor
usable (DuckDB 2.x refuses a new query while a result is left unfinished)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from whatchanged.engine.extent import data_range, first_row, observed_range
from whatchanged.engine.schema import METRICS
from whatchanged.engine.warehouse import Warehouse

T0 = datetime(2010, 11, 17, 18, 0, tzinfo=UTC)


def test_ranges_and_the_cursor_stays_usable(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    con = wh.snapshot()
    assert observed_range(con) is None
    rows = [
        {"ts": T0 + timedelta(minutes=k), "service": "www", "metric": "rx", "value": float(k)}
        for k in range(30)
    ]
    wh.commit({"metrics": pa.Table.from_pylist(rows, schema=METRICS)})
    con = wh.snapshot()
    assert observed_range(con) == (T0, T0 + timedelta(minutes=29))
    assert data_range(con) == (T0, T0 + timedelta(minutes=29))
    # a query that returns many rows, then another on the same cursor
    assert first_row(con, "SELECT value FROM metrics ORDER BY ts") == (0.0,)
    assert con.execute("SELECT count(*) FROM metrics").fetchall() == [(30,)]
    assert observed_range(con) is not None
    assert con.sql("SELECT count(*) FROM metrics").fetchall() == [(30,)]  # the relation API too
