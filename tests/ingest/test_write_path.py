"""The warehouse write path: sort, in-batch duplicates, day files, encodings, the lexsort fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from whatchanged.engine import write_order as wmod
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
    assert again.rows_added == {"metrics": 0}
    assert again.txid is None


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
    order, dup = wmod._order(ts, [svc, met, ts])
    packed_order, _ = wmod._order(ts, [svc % 100, met % 10, ts])
    expected = np.lexsort([ts, met, svc, days])
    assert (order == expected).all()
    keys = list(zip(days[order], svc[order], met[order], ts[order], strict=True))
    assert dup is not None
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
    con = wh.snapshot()
    got = np.array([r[0] for r in con.sql("SELECT value FROM metrics ORDER BY ts").fetchall()])
    con.close()
    assert (got == values).all()  # nothing rounded


def _layouts() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(days, service rank, metric rank, ts) in the layouts the write path tells apart."""
    rng = np.random.default_rng(7)
    out = {}
    minutes = np.arange(2 * 1440 - 30, 2 * 1440 + 90)  # crosses a midnight
    # scrape by scrape: the same 120 series (unique pairs) at each minute
    pairs = rng.permutation(120)
    s_blk, m_blk = (pairs // 3).astype(np.int32), (pairs % 3).astype(np.int32)
    ts = np.repeat(14000 * wmod._US_PER_DAY + minutes * 60_000_000, 120)
    out["blocked"] = (ts // wmod._US_PER_DAY, np.tile(s_blk, len(minutes)), np.tile(m_blk, len(minutes)), ts)
    # the same with a few rows missing: no longer blocks, times still ordered per series
    keep = rng.random(len(ts)) > 0.01
    out["ordered"] = tuple(a[keep] for a in out["blocked"])  # type: ignore[assignment]
    # ordered per series but with repeated keys (a series twice in a scrape)
    again = np.sort(np.r_[np.arange(len(ts)), rng.integers(0, len(ts), 500)])
    out["ordered_dups"] = tuple(a[again] for a in out["blocked"])  # type: ignore[assignment]
    # shuffled: times out of order within series
    perm = rng.permutation(len(ts))
    out["shuffled"] = tuple(a[perm] for a in out["blocked"])  # type: ignore[assignment]
    perm = rng.permutation(len(ts) + 300)
    out["shuffled_dups"] = tuple(np.r_[a, a[:300]][perm] for a in out["blocked"])  # type: ignore[assignment]
    # more than 2**16 groups: the two-pass radix sort
    n = 200_000
    ts_big = 14000 * wmod._US_PER_DAY + np.sort(rng.integers(0, 3 * 1440, n)) * 60_000_000
    out["many_groups"] = (
        ts_big // wmod._US_PER_DAY,
        rng.integers(0, 30_000, n).astype(np.int32),
        rng.integers(0, 3, n).astype(np.int32),
        ts_big,
    )
    return out


@pytest.mark.parametrize("name", list(_layouts()))
def test_order_is_the_stable_lexsort_whatever_the_layout(name: str) -> None:
    days, svc, met, ts = _layouts()[name]
    order, dup = wmod._order(ts, [svc, met, ts])
    expected = np.lexsort([ts, met, svc, days])
    assert (order == expected).all()
    keys = list(zip(svc[order], met[order], ts[order], strict=True))
    repeats = [i > 0 and keys[i] == keys[i - 1] for i in range(len(keys))]
    assert (dup.tolist() if dup is not None else [False] * len(keys)) == repeats


def _swapped_in_one_block() -> tuple[np.ndarray, ...]:
    """Scrape blocks, but one block lists two series in another order."""
    days, svc, met, ts = (a.copy() for a in _layouts()["blocked"])
    svc[120 * 7 + 3], svc[120 * 7 + 50] = svc[120 * 7 + 50], svc[120 * 7 + 3]
    met[120 * 7 + 3], met[120 * 7 + 50] = met[120 * 7 + 50], met[120 * 7 + 3]
    return days, svc, met, ts


@pytest.mark.parametrize("name", ["blocked", "swapped", "ordered_dups", "shuffled_dups"])
def test_sorted_table_is_sorted_per_day_without_duplicates(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wmod, "_MIN_SCRAPE_WIDTH", 2)  # the layouts have 120 series per scrape
    _, svc, met, ts = _swapped_in_one_block() if name == "swapped" else _layouts()[name]
    n = len(ts)
    names = np.array([f"s{i:03d}" for i in range(40)])
    table = pa.table(
        {
            "ts": pa.array(ts).cast(METRICS.field("ts").type),
            "service": names[svc].tolist(),
            "metric": np.array(["bw", "err", "lat"])[met].tolist(),
            "value": np.arange(n, dtype=np.float64),
            "env": [None if i % 5 else "prod" for i in range(n)],
            "labels": pa.nulls(n, METRICS.field("labels").type),
        }
    ).cast(METRICS)
    out, days = wmod.sorted_by_day_and_key("metrics", table)
    fast = wmod._sorted_blocks("metrics", table, wmod.to_numpy(table.column("ts")))
    assert (fast is not None) == (name == "blocked")  # only whole scrapes take the transpose
    rows = table.to_pylist()
    first: dict[tuple[object, ...], dict[str, object]] = {}
    for r in rows:
        first.setdefault((r["service"], r["metric"], r["ts"]), r)
    expected = sorted(first.values(), key=lambda r: (r["ts"].date(), r["service"], r["metric"], r["ts"]))
    assert out.cast(METRICS).to_pylist() == expected
    epoch = datetime(1970, 1, 1).date()
    assert days == sorted({(r["ts"].date() - epoch).days for r in expected})
    ts_np = wmod.to_numpy(out.column("ts"))
    runs = wmod.day_runs(ts_np)
    assert [d for d, _, _ in runs] == days
    assert runs[0][1] == 0
    assert runs[-1][2] == len(ts_np)
    assert all((ts_np[lo:hi] // wmod._US_PER_DAY == d).all() for d, lo, hi in runs)


def test_scrape_by_scrape_input_is_stored_in_series_order(warehouse: Warehouse) -> None:
    services = [f"svc-{i:03d}" for i in range(300)]
    rng = np.random.default_rng(5)
    scrape = [(s, m) for s in rng.permutation(services).tolist() for m in ("lat", "bw")]  # 600 series
    rows = [(T0 + timedelta(minutes=k), s, m, float(k)) for k in range(5) for s, m in scrape]
    data = _metrics(rows)
    assert wmod._sorted_blocks("metrics", data, wmod.to_numpy(data.column("ts"))) is not None
    result = warehouse.commit({"metrics": data})
    assert result.rows_added == {"metrics": len(rows)}
    assert len(result.services) == 300
    stored = [pq.read_table(f).select(["ts", "service", "metric", "value"]) for f in sorted(result.files)]
    got = [tuple(r.values()) for t in stored for r in t.to_pylist()]
    assert got == sorted(rows, key=lambda r: (r[0].date(), r[1], r[2], r[0]))
    assert warehouse.commit({"metrics": data}).rows_added == {"metrics": 0}
