"""The warehouse write path: sort, in-batch duplicates, day files, encodings, the lexsort fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from whatchanged.engine import warehouse as wmod
from whatchanged.engine.schema import METRICS, STATES
from whatchanged.engine.warehouse import Warehouse

T0 = datetime(2010, 11, 17, 23, 58, tzinfo=UTC)


def _metrics(rows: list[tuple[datetime, str, str, float]]) -> pa.Table:
    ts, svc, met, val = zip(*rows, strict=True)
    return pa.table({"ts": list(ts), "service": list(svc), "metric": list(met), "value": list(val)}).cast(
        pa.schema([METRICS.field(n) for n in ("ts", "service", "metric", "value")])
    )


def test_first_row_of_a_key_wins_and_files_are_sorted_per_day(warehouse: Warehouse) -> None:
    m = timedelta(minutes=1)
    data = _metrics(
        [
            (T0 + 3 * m, "b", "lat", 3.0),
            (T0, "b", "lat", 1.0),
            (T0 + 3 * m, "b", "lat", 99.0),  # same key as the first row: dropped
            (T0 + m, "a", "lat", 2.0),
            (T0 + m, "a", "bw", 5.0),
        ]
    )
    result = warehouse.commit({"metrics": data})
    assert result.rows_added == {"metrics": 4}
    files = sorted(result.files)
    assert [Path(f).parent.name for f in files] == ["date=2010-11-17", "date=2010-11-18"]
    day1 = pq.read_table(files[0])
    assert day1.schema.field("service").type == pa.string()  # dictionaries are written as strings
    assert day1.select(["service", "metric", "value"]).to_pylist() == [
        {"service": "a", "metric": "bw", "value": 5.0},
        {"service": "a", "metric": "lat", "value": 2.0},
        {"service": "b", "metric": "lat", "value": 1.0},
    ]
    assert pq.read_table(files[1]).column("value").to_pylist() == [3.0]
    again = warehouse.commit({"metrics": data})
    assert again.rows_added == {"metrics": 0} and again.txid is None


def test_states_keep_different_states_at_one_time(warehouse: Warehouse) -> None:
    rows = {
        "ts": [T0, T0, T0],
        "service": ["bo", "bo", "bo"],
        "check": ["HTTP", "HTTP", "HTTP"],
        "state": ["CRITICAL", "OK", "CRITICAL"],
        "source": ["nagios", None, "nagios"],
    }
    table = pa.table(rows).cast(pa.schema([STATES.field(n) for n in rows]))
    assert warehouse.commit({"states": table}).rows_added == {"states": 2}
    assert warehouse.commit({"states": table}).rows_added == {"states": 0}


def test_order_falls_back_to_lexsort_when_keys_do_not_pack() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    days = rng.integers(14000, 14003, n)
    svc = rng.integers(0, 20000, n).astype(np.int32)
    met = rng.integers(0, 5000, n).astype(np.int32)  # 3 × 20001 × 5001 > 2**26: no packing
    ts = days * wmod._US_PER_DAY + rng.integers(0, 1000, n) * 60_000_000
    order, sorted_days, dup = wmod._order(days, [svc, met, ts])
    packed_order, _, _ = wmod._order(days, [svc % 100, met % 10, ts])
    expected = np.lexsort([ts, met, svc, days])
    assert (order == expected).all() and (sorted_days == days[expected]).all()
    keys = list(zip(days[order], svc[order], met[order], ts[order], strict=True))
    assert dup.sum() == len(keys) - len(set(keys))
    assert (packed_order == np.lexsort([ts, met % 10, svc % 100, days])).all()


@pytest.mark.parametrize(
    ("values", "encoding"),
    [
        (np.round(np.linspace(0, 100, 200_000), 1), "RLE_DICTIONARY"),
        (np.random.default_rng(1).normal(size=200_000), "BYTE_STREAM_SPLIT"),
    ],
)
def test_value_encoding_follows_cardinality(tmp_path: Path, values: np.ndarray, encoding: str) -> None:
    n = len(values)
    ts = pa.array(np.arange(n, dtype=np.int64) * 60_000_000).cast(METRICS.field("ts").type)
    table = pa.table({"ts": ts, "service": ["s"] * n, "metric": ["m"] * n, "value": values}).cast(
        pa.schema([METRICS.field(n) for n in ("ts", "service", "metric", "value")])
    )
    wh = Warehouse(tmp_path / "wh")
    files = wh.commit({"metrics": table}).files
    encodings = {
        e
        for f in files
        for rg in range(pq.ParquetFile(f).metadata.num_row_groups)
        for e in pq.ParquetFile(f).metadata.row_group(rg).column(3).encodings
    }
    assert encoding in encodings
    con = wh.connect()
    got = np.array([r[0] for r in con.sql("SELECT value FROM metrics ORDER BY ts").fetchall()])
    con.close()
    assert (got == values).all()  # nothing rounded
