"""The warehouse grid: the direct Parquet reader agrees with the SQL path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from whatchanged.engine.detect import load_matrix, read_grid
from whatchanged.engine.warehouse import Warehouse

T0 = datetime(2010, 11, 16, tzinfo=UTC)


def _metrics(ts: list[datetime], service: list[str], metric: list[str], value: list[float]) -> pa.Table:
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "service": service,
            "metric": metric,
            "value": value,
        }
    )


def test_read_grid_matches_sql(warehouse: Warehouse) -> None:
    rng = np.random.default_rng(4)
    n = 3 * 1440
    ts = [T0 + timedelta(minutes=i) for i in range(n)]
    # two series over three days, one with a gap, plus sub-minute samples (averaged per step)
    warehouse.commit(
        {
            "metrics": _metrics(
                ts + ts[:1000] + ts[2000:],
                ["a"] * n + ["b"] * 1000 + ["b"] * (n - 2000),
                ["lat"] * n + ["bw"] * (n - 1000),
                rng.normal(100, 5, 2 * n - 1000).tolist(),
            )
        }
    )
    extra = [T0 + timedelta(minutes=i, seconds=30) for i in range(0, 600, 7)]
    warehouse.commit(
        {"metrics": _metrics(extra, ["a"] * len(extra), ["lat"] * len(extra), [1000.0] * len(extra))}
    )
    con = warehouse.snapshot()
    files = con.files("metrics")
    assert files
    assert all(f.endswith(".parquet") for f in files)
    lo, hi = T0 + timedelta(hours=5), T0 + timedelta(days=2, hours=7)
    grid = read_grid(files, lo, hi)
    keys = sorted(grid.rows)
    assert keys == [("a", "lat"), ("b", "bw")]
    np.testing.assert_allclose(grid.matrix(keys), load_matrix(con, keys, lo, hi), rtol=1e-6)
    only_b = read_grid(files, lo, hi, services=["b"])
    assert sorted(only_b.rows) == [("b", "bw")]
