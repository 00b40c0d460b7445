"""Ingest streams large metrics files (``ingest_batch_rows``): the warehouse it builds is the
one a one-shot read and commit builds, a bad line anywhere still writes nothing, and
re-ingesting adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from whatchanged.engine.errors import InputError
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest import metrics_csv, metrics_parquet
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

T0 = int(datetime(2010, 3, 1, tzinfo=UTC).timestamp())


def _samples(*, days: int = 3, step_s: int = 600, shuffle: bool = False) -> pa.Table:
    """Long metrics over ``days`` days, a few samples repeated (the first one stays)."""
    rng = np.random.default_rng(3)
    times = T0 + np.arange(0, days * 86_400, step_s)
    services = [f"svc-{i}" for i in range(7)]
    metrics = ["latency_ms", "errors"]
    n = len(times) * len(services) * len(metrics)
    ts = np.repeat(times, len(services) * len(metrics))
    svc = np.tile(np.repeat(services, len(metrics)), len(times))
    met = np.tile(metrics, len(times) * len(services))
    value = np.round(rng.normal(50, 5, n), 2)
    order = rng.permutation(n) if shuffle else np.arange(n)
    table = pa.table(
        {"timestamp": ts[order], "service": svc[order], "metric": met[order], "value": value[order]}
    )
    repeats = table.slice(100, 40).set_column(3, "value", pa.array(np.full(40, -1.0)))
    return pa.concat_tables([table, repeats])


def _rows(home: Path) -> list[tuple[object, ...]]:
    con = Warehouse(home).snapshot()
    try:
        return con.sql("SELECT * FROM metrics ORDER BY service, metric, ts").fetchall()
    finally:
        con.close()


def _one_shot(home: Path, path: Path, reader: object, ctx: ReadContext) -> None:
    wh = Warehouse(home)
    wh.commit(reader.read(path, ctx), source=path.name)  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_a_file_streamed_in_small_batches_gives_the_one_shot_warehouse(
    tmp_path: Path, fmt: str, shuffle: bool
) -> None:
    table = _samples(shuffle=shuffle)
    path = tmp_path / f"month.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=900)
        reader: object = metrics_parquet
    else:
        pcsv.write_csv(table, path)
        reader = metrics_csv
    small = ReadContext(batch_rows=500)  # 3 days × 1008 samples: 13 parts, some days split
    parts = list(reader.stream(path, small))  # type: ignore[attr-defined]
    assert len(parts) > 10
    assert sum(p["metrics"].num_rows for p in parts) == table.num_rows
    streamed = ingest(Warehouse(tmp_path / "streamed"), [path], small)
    _one_shot(tmp_path / "whole", path, reader, ReadContext())
    assert _rows(tmp_path / "streamed") == _rows(tmp_path / "whole")
    assert streamed.result is not None
    assert streamed.result.rows_in["metrics"] == table.num_rows
    assert streamed.result.rows_added["metrics"] == table.num_rows - 40  # the repeats: once
    assert streamed.services == 7
    assert streamed.first == "2010-03-01T00:00:00+00:00"
    again = ingest(Warehouse(tmp_path / "streamed"), [path], small)
    assert again.result is not None
    assert again.result.added_total == 0
    if not shuffle:  # in time order: a day is written when the next one starts, one file each
        files = Warehouse(tmp_path / "streamed").files("metrics")
        assert len(files) == 3


def test_a_bad_line_in_the_last_part_writes_nothing(tmp_path: Path) -> None:
    table = _samples(days=2)
    good = tmp_path / "a-good.csv"
    pcsv.write_csv(table, good)
    bad = tmp_path / "b-bad.csv"
    text = good.read_text().splitlines()
    text[-3] = text[-3].rsplit(",", 1)[0] + ",fast"
    bad.write_text("\n".join(text) + "\n")
    home = tmp_path / "wh"
    wh = Warehouse(home)
    wh.init()
    with pytest.raises(InputError) as err:
        ingest(wh, [good, bad], ReadContext(batch_rows=300))
    assert err.value.line == len(text) - 2
    assert err.value.field == "value"
    assert err.value.found == "fast"
    assert str(bad) in str(err.value)
    assert wh.manifests() == []
    assert not any((home / "metrics").rglob("*.parquet"))
    assert not any((home / ".tmp").iterdir())


def test_skip_bad_keeps_the_good_rows_of_every_part_once(tmp_path: Path) -> None:
    table = _samples(days=2)
    path = tmp_path / "m.csv"
    pcsv.write_csv(table, path)
    text = path.read_text().splitlines()
    text[1500] = "2010-03-01T00:00:00Z,svc-1,errors,not-a-number"
    path.write_text("\n".join(text) + "\n")
    streamed_ctx = ReadContext(batch_rows=300, skip_bad=True)
    ingest(Warehouse(tmp_path / "streamed"), [path], streamed_ctx)
    whole_ctx = ReadContext(skip_bad=True)
    _one_shot(tmp_path / "whole", path, metrics_csv, whole_ctx)
    assert _rows(tmp_path / "streamed") == _rows(tmp_path / "whole")
    assert [e.line for e in streamed_ctx.rejected] == [e.line for e in whole_ctx.rejected] == [1501]


def test_a_parquet_error_names_the_row_of_the_file_not_of_the_batch(tmp_path: Path) -> None:
    table = _samples(days=1)
    ts = table.column("timestamp").to_pylist()
    ts[777] = None
    table = table.set_column(0, "timestamp", pa.array(ts, pa.int64()))
    path = tmp_path / "m.parquet"
    pq.write_table(table, path, row_group_size=200)
    with pytest.raises(InputError) as err:
        ingest(Warehouse(tmp_path / "wh"), [path], ReadContext(batch_rows=100))
    assert err.value.line == 778
    assert err.value.field == "timestamp"


def test_rows_another_writer_stores_during_the_stream_are_stored_once(tmp_path: Path) -> None:
    """Another commit lands while a streamed ingest reads (rows the stream holds too): under
    the lock the staged files are compared with it again; every row once, none lost."""
    from whatchanged.engine.schema import METRICS, conform
    from whatchanged.engine.warehouse_stream import commit_stream

    home = tmp_path / "wh"
    wh = Warehouse(home)
    wh.init()
    wh.commit({"services": pa.table({"service": ["svc-0"]})})  # something stored: a snapshot
    table = _samples(days=2).slice(0, 2 * 144 * 14)  # two days, no repeats
    metrics = conform(
        "metrics",
        pa.table(
            {
                "ts": pa.array(table.column("timestamp").to_numpy() * 1_000_000).cast(
                    METRICS.field("ts").type
                ),
                "service": table.column("service"),
                "metric": table.column("metric"),
                "value": table.column("value"),
            }
        ),
    )
    half = metrics.num_rows // 2

    def parts() -> Iterator[dict[str, pa.Table]]:
        yield {"metrics": metrics.slice(0, half)}
        # meanwhile another writer stores rows of both halves
        Warehouse(home).commit({"metrics": metrics.slice(half - 50, 100)}, source="other")
        yield {"metrics": metrics.slice(half)}

    result = commit_stream(wh, parts(), source="stream")
    con = wh.snapshot()
    try:
        ((total, distinct),) = con.sql(
            "SELECT count(*), count(DISTINCT (service, metric, ts)) FROM metrics"
        ).fetchall()
    finally:
        con.close()
    assert total == distinct == metrics.num_rows
    assert result.rows_added["metrics"] == metrics.num_rows - 100
