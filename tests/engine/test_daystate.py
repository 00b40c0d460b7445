"""Detection carried day by day (engine/daystate.py) gives the anomalies that one grid over
the whole history gives, reads its cached states back, and recomputes only the days a new
commit touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from whatchanged.engine import detect
from whatchanged.engine.baseline import window_median, window_median_sorted
from whatchanged.engine.compact import compact
from whatchanged.engine.daystate import Geometry
from whatchanged.engine.daystate_cache import DayStates
from whatchanged.engine.detect import DEFAULT, detect_anomalies, prepare_states
from whatchanged.engine.schema import METRICS
from whatchanged.engine.warehouse import Warehouse

DAY0 = datetime(2010, 11, 5, tzinfo=UTC)
DAYS = 12


def test_moving_median_matches_sorting() -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        a = rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 50))))
        a[rng.random(a.shape) < rng.random()] = np.nan
        if rng.random() < 0.3:
            a = np.round(a)  # ties
        lag, count, stride = int(rng.integers(-2, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 7))
        np.testing.assert_array_equal(
            window_median(a, lag, count, stride), window_median_sorted(a, lag, count, stride)
        )


def _series(rng: np.random.Generator, minutes: int, *, shift_at: int | None, level: float) -> np.ndarray:
    t = np.arange(minutes)
    season = 1.0 + 0.4 * np.sin(2 * np.pi * (t % 1440) / 1440.0)
    x = level * season * rng.normal(1.0, 0.03, minutes)
    if shift_at is not None:
        x[shift_at : shift_at + 180] *= 0.25  # a capped level for three hours
    return x


def _metrics(days: range, rng: np.random.Generator) -> pa.Table:
    minutes = DAYS * 1440
    rows: dict[str, list[object]] = {"ts": [], "service": [], "metric": [], "value": []}
    stamps = [DAY0 + timedelta(minutes=m) for m in range(minutes)]
    for svc, level, shift in (("a", 200.0, 10 * 1440 + 1100), ("b", 50.0, None), ("c", 5.0, 8 * 1440 + 300)):
        for metric in ("bw", "lat"):
            x = _series(rng, minutes, shift_at=shift if metric == "bw" else None, level=level)
            x[rng.random(minutes) < 0.02] = np.nan  # missing samples
            for m in range(minutes):
                if m // 1440 not in days or np.isnan(x[m]):
                    continue
                if svc == "b" and m // 1440 == 6:
                    continue  # one service silent for a day
                rows["ts"].append(stamps[m])
                rows["service"].append(svc)
                rows["metric"].append(metric)
                rows["value"].append(float(np.float32(x[m])))
    return pa.table(rows).cast(pa.schema([METRICS.field(n) for n in rows]))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("daystate")
    wh = Warehouse(home)
    wh.init()
    rng = np.random.default_rng(11)
    # day 4 has no data at all: the guard decays over it, the seasonal window skips it
    wh.commit({"metrics": _metrics(range(0, 4), rng)})
    wh.commit({"metrics": _metrics(range(5, DAYS), rng)})
    return home


def _key(a: detect.Anomaly) -> tuple[object, ...]:
    return (
        a.service,
        a.metric,
        a.start,
        a.onset,
        a.end,
        a.direction,
        a.peak_score,
        a.baseline,
        a.detected_at,
    )


@pytest.mark.parametrize("online", [False, True])
@pytest.mark.parametrize("hour", [8 * 24 + 5, 10 * 24 + 18, 11 * 24 + 12])
def test_day_by_day_equals_one_grid(home: Path, online: bool, hour: int, monkeypatch) -> None:
    """The median detector's anomalies (the contextual ones come only from the day states)."""
    monkeypatch.setattr(detect, "FLEET_CONTEXTUAL", False)
    con = Warehouse(home).snapshot()
    at = DAY0 + timedelta(hours=hour)
    start, end = at - timedelta(hours=6), at + timedelta(hours=6)
    chained = detect_anomalies(con, start, end, online=online)
    # one grid from the first day of data (the history is shorter than DEFAULT.history_s)
    whole = detect_anomalies(con, start, end, online=online, history_s=DEFAULT.history_s)
    assert [_key(a) for a in chained] == [_key(a) for a in whole]


def test_the_days_of_a_window_read_side_by_side_give_the_same_anomalies(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question reaching into the day before, asked with the states on disk and no grid in
    memory (a new process), reads both days' grids at once (``DayStates.prefetch``)."""
    from whatchanged.engine import detect as detect_module
    from whatchanged.engine.daystate_cache import DayStates

    prepare_states(Warehouse(home).snapshot())
    # a new process: no day states (nor their raw grids) kept in memory by earlier questions
    monkeypatch.setattr(detect_module, "_CHAINS", {})
    at = DAY0 + timedelta(hours=8 * 24 + 2)
    start, end = at - timedelta(hours=6), at + timedelta(hours=6)
    read: list[object] = []
    real = DayStates.prefetch

    def spy(self: DayStates, days: list[object]) -> None:
        before = set(self._raw)
        real(self, days)  # type: ignore[arg-type]
        read.extend(d for d in self._raw if d not in before)

    monkeypatch.setattr(DayStates, "prefetch", spy)
    side_by_side = detect_anomalies(Warehouse(home).snapshot(), start, end, online=False)
    assert len(read) == 2
    monkeypatch.setattr(DayStates, "prefetch", lambda *_args: None)
    one_by_one = detect_anomalies(Warehouse(home).snapshot(), start, end, online=False)
    assert [_key(a) for a in side_by_side] == [_key(a) for a in one_by_one]
    assert side_by_side


def test_the_level_shifts_are_found(home: Path) -> None:
    con = Warehouse(home).snapshot()
    found = detect_anomalies(con, DAY0 + timedelta(days=8), DAY0 + timedelta(days=DAYS), online=True)
    onsets = {(a.service, a.metric): a.onset for a in found if a.direction == "down"}
    assert abs(onsets[("a", "bw")] - (DAY0 + timedelta(minutes=10 * 1440 + 1100))) <= timedelta(minutes=2)
    assert abs(onsets[("c", "bw")] - (DAY0 + timedelta(minutes=8 * 1440 + 300))) <= timedelta(minutes=2)


def test_states_are_cached_and_only_new_days_recomputed(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    rng = np.random.default_rng(3)
    wh.commit({"metrics": _metrics(range(0, 9), rng)})
    con = wh.snapshot()
    detect._CHAINS.clear()
    assert prepare_states(con) == (9, 9)
    cache = tmp_path / "wh" / "_cache" / "daystate"
    assert len(list(cache.glob("*.npz"))) == 9
    detect._CHAINS.clear()  # a new process: everything is read back
    assert prepare_states(wh.snapshot()) == (9, 0)
    g = Geometry.of(DEFAULT, 60.0)
    assert g is not None
    files = wh.snapshot().files("metrics")
    assert files is not None
    before = DayStates(files, DEFAULT, g, cache).keys
    # a commit for the last day: only that day's state is new
    wh.commit({"metrics": _metrics(range(9, 10), rng)})
    detect._CHAINS.clear()
    assert prepare_states(wh.snapshot()) == (10, 1)
    files = wh.snapshot().files("metrics")
    assert files is not None
    after = DayStates(files, DEFAULT, g, cache).keys
    assert all(after[d] == k for d, k in before.items())
    assert len(list(cache.glob("*.npz"))) == 10
    # the raw grids of the latest days are kept beside their states, no more
    assert sorted(p.name[:10] for p in cache.glob("*.grid.npy")) == [
        (DAY0 + timedelta(days=k)).date().isoformat() for k in (7, 8, 9)
    ]


def test_read_day_matches_the_sql_grid(tmp_path: Path) -> None:
    """Two samples in one minute are averaged, out-of-day and non-finite rows are dropped,
    as the warehouse's other grid reader does."""
    from whatchanged.engine.daygrid import day_files, read_day
    from whatchanged.engine.detect import load_matrix

    wh = Warehouse(tmp_path / "wh")
    wh.init()
    t0 = DAY0 + timedelta(days=1)
    rows = [
        {"ts": t0 + timedelta(minutes=10), "service": "b", "metric": "m", "value": 1.0},
        {"ts": t0 + timedelta(minutes=10, seconds=30), "service": "b", "metric": "m", "value": 2.0},
        {"ts": t0 + timedelta(minutes=11), "service": "a", "metric": "m", "value": float("nan")},
        {"ts": t0 + timedelta(minutes=12), "service": "a", "metric": "m", "value": 5.25},
        {"ts": t0 + timedelta(minutes=1439), "service": "a", "metric": "x", "value": -3.5},
    ]
    wh.commit({"metrics": pa.Table.from_pylist(rows, schema=METRICS)})
    con = wh.snapshot()
    files = con.files("metrics")
    assert files is not None
    g = Geometry.of(DEFAULT, 60.0)
    assert g is not None
    ((day, day_list),) = day_files(files).items()
    keys, grid = read_day(day_list, day, g)
    assert keys == [("a", "m"), ("a", "x"), ("b", "m")]
    expected = load_matrix(con, keys, t0, t0 + timedelta(days=1))
    np.testing.assert_array_equal(grid, expected)
    assert grid[2, 10] == 1.5
    assert grid[0, 12] == 5.25
    assert np.isnan(grid[0, 11])
    assert grid[1, 1439] == -3.5


@pytest.mark.parametrize("spoil", ["none", "gap", "repeat", "inf", "two_commits"])
def test_a_whole_day_is_read_as_stored_and_like_the_general_path(
    tmp_path: Path, spoil: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A complete day (every series at every minute) takes the dense reading; a day with a
    gap or a sample twice in a minute does not; both give the grid the general path gives."""
    from whatchanged.engine import daygrid
    from whatchanged.engine.daygrid import day_files, read_day

    monkeypatch.setattr(daygrid, "DENSE_BATCH_SERIES", 4)  # several batches per file
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    t0 = DAY0 + timedelta(days=1)
    rng = np.random.default_rng(5)
    ts = pa.array([t0 + timedelta(minutes=m) for m in range(1440)] * 6, METRICS.field("ts").type)
    services = [s for s in ("b", "a", "c") for _ in range(2 * 1440)]
    metrics = [m for _ in range(3) for m in ("y", "x") for _ in range(1440)]
    values = np.round(rng.normal(100, 5, 6 * 1440), 3)
    if spoil == "inf":
        values[17] = np.inf
    table = pa.table({"ts": ts, "service": services, "metric": metrics, "value": values})
    if spoil == "gap":
        table = table.filter(pa.array(np.arange(table.num_rows) != 1500))
    elif spoil == "repeat":  # a second sample in the minute 5 of (b, x): the mean of both
        extra = table.slice(1440 * 1 + 5, 1).set_column(
            0, "ts", pa.array([t0 + timedelta(minutes=5, seconds=30)], METRICS.field("ts").type)
        )
        table = pa.concat_tables([table, extra])
    full = table.append_column("env", pa.nulls(table.num_rows, pa.string())).append_column(
        "labels", pa.nulls(table.num_rows, METRICS.field("labels").type)
    )
    if spoil == "two_commits":  # two files of the day, each of whole series
        wh.commit({"metrics": full.slice(0, 4 * 1440).cast(METRICS)})
        wh.commit({"metrics": full.slice(4 * 1440).cast(METRICS)})
    else:
        wh.commit({"metrics": full.cast(METRICS)})
    g = Geometry.of(DEFAULT, 60.0)
    assert g is not None
    ((day, day_list),) = day_files(wh.files("metrics")).items()
    lo_us = int(t0.timestamp() * 1_000_000)
    dense = daygrid._dense_day(day_list, lo_us, 60_000_000, g)
    assert (dense is not None) == (spoil in ("none", "inf", "two_commits"))
    keys, grid = read_day(day_list, day, g)
    real = daygrid._dense_day
    try:
        daygrid._dense_day = lambda *_a: None  # type: ignore[assignment]
        general = read_day(day_list, day, g)
    finally:
        daygrid._dense_day = real
    assert keys == general[0] == [(s, m) for s in ("a", "b", "c") for m in ("x", "y")]
    np.testing.assert_array_equal(grid, general[1])
    if spoil == "inf":
        assert np.isnan(grid[keys.index(("b", "y")), 17])


def _state_arrays(st: object) -> dict[str, object]:
    from dataclasses import fields

    return {f.name: getattr(st, f.name) for f in fields(st)}  # type: ignore[arg-type]


def test_minutes_appended_to_today_extend_its_state_exactly(tmp_path: Path) -> None:
    """A commit of minutes after the last ones of a day extends the day's cached state from
    where it stopped; the state and the anomalies equal a computation from scratch."""
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    rng = np.random.default_rng(5)
    whole = _metrics(range(0, 11), rng)
    today = DAY0 + timedelta(days=10)
    ts = whole.column("ts")
    import pyarrow.compute as pc

    def rows(lo: int, hi: int) -> pa.Table:
        a, b = today + timedelta(minutes=lo), today + timedelta(minutes=hi)
        if lo < 0:
            return whole.filter(pc.less(ts, pa.scalar(b, ts.type)))
        return whole.filter(
            pc.and_(pc.greater_equal(ts, pa.scalar(a, ts.type)), pc.less(ts, pa.scalar(b, ts.type)))
        )

    g = Geometry.of(DEFAULT, 60.0)
    assert g is not None
    first = rows(-1, 100)
    # one sample of the morning held back, committed last: late, before the latest ones
    morning = rows(0, 100)
    held = morning.filter(pc.equal(morning.column("service"), "b")).slice(0, 1)
    is_held = pc.and_(
        pc.equal(first.column("service"), "b"), pc.equal(first.column("ts"), held.column("ts")[0])
    )
    is_held = pc.and_(is_held, pc.equal(first.column("metric"), held.column("metric")[0]))
    wh.commit({"metrics": first.filter(pc.invert(is_held))})
    detect._CHAINS.clear()
    prepare_states(wh.snapshot())
    # 100 → 1440 in commits of one minute, an hour, a minute, minutes with compactions between
    # (after the commit: the new minute merged with the old ones, its file still on the disk or
    # removed; before it: only files the state read merged; a key stored again, as two racing
    # writers can, kept once by the compaction: the whole day read), up to
    # 10:00 (recent windows reaching into the day before until 04:00), the rest (the level shift
    # at 18:20); then the late sample: the day is computed afresh.
    # (lo, hi, compaction, extended, of which from the new files only)
    after, before, gone = "after", "before", "after, replaced files removed"
    steps = (
        (100, 101, "", 1, 1),
        (101, 161, "", 1, 1),
        (161, 162, "", 1, 1),
        (162, 163, after, 1, 1),
        (163, 164, gone, 1, 0),
        (164, 165, "", 1, 1),
        (165, 166, before, 1, 1),
        (166, 167, "repeated", 1, 0),
        (167, 600, after, 1, 1),
        (600, 1440, "", 1, 1),
        (0, 0, "", 0, 0),
    )
    for lo, hi, compaction, extended, new_only in steps:
        if compaction == before:
            compact(wh, max_files=1, grace_s=3600)
        data = rows(lo, hi) if hi else held
        if compaction == "repeated":  # a sample of 02:00 again, another value
            again = rows(120, 121).slice(0, 1)
            value = pc.add(again.column("value"), pa.scalar(1.0, again.column("value").type))
            data = pa.concat_tables(
                [data, again.set_column(again.schema.get_field_index("value"), "value", value)]
            )
        with pytest.MonkeyPatch.context() as mp:
            if compaction == "repeated":  # the commit's check for stored keys raced
                mp.setattr(Warehouse, "_new_rows", lambda _wh, _con, _table, data, _manifests=None: data)
            wh.commit({"metrics": data})
        if compaction in (after, gone, "repeated"):  # the day's files merged
            compact(wh, max_files=1, grace_s=0 if compaction == gone else 3600)
            assert sum(f"date={today.date()}" in f for f in wh.files("metrics")) == 1
        con = wh.snapshot()
        detect._CHAINS.clear()  # a new process
        chained = detect._chained(con, DEFAULT, 60.0)
        st = chained.state(today.date())
        assert chained.computed == 1
        assert chained.extended == extended, (lo, hi)
        assert chained.extended_new_only == new_only, (lo, hi)
        files = con.files("metrics")
        assert files is not None
        fresh = DayStates(files, DEFAULT, g, None).state(today.date())
        got, want = _state_arrays(st), _state_arrays(fresh)
        assert got["keys"] == want["keys"]
        for name, value in want.items():
            if name != "keys":
                np.testing.assert_array_equal(got[name], value, err_msg=name)
    con = wh.snapshot()
    start, end = today + timedelta(hours=12), today + timedelta(hours=24)
    for online in (False, True):
        detect._CHAINS.clear()
        chained = detect_anomalies(con, start, end, online=online)
        one_grid = detect_anomalies(con, start, end, online=online, history_s=DEFAULT.history_s)
        assert [_key(a) for a in chained] == [_key(a) for a in one_grid]
        assert any(a.service == "a" and a.metric == "bw" for a in chained)


def test_reading_a_whole_day_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (0.3 s of a new process's explain) to turn a timestamp into a
    datetime: the dense day read compares the footers' stored integers instead."""
    import subprocess
    import sys

    wh = Warehouse(tmp_path / "wh")
    t0 = DAY0 + timedelta(days=1)
    ts = pa.array([t0 + timedelta(minutes=m) for m in range(1440)], METRICS.field("ts").type)
    table = pa.table({"ts": ts, "service": ["a"] * 1440, "metric": ["m"] * 1440, "value": np.arange(1440.0)})
    table = table.append_column("env", pa.nulls(1440, pa.string()))
    table = table.append_column("labels", pa.nulls(1440, METRICS.field("labels").type))
    wh.commit({"metrics": table.cast(METRICS)})
    code = (
        "import sys; from datetime import date; "
        "from whatchanged.engine import daygrid; "
        "from whatchanged.engine.daystate import Geometry; from whatchanged.engine.detect import DEFAULT; "
        f"files = {wh.files('metrics')!r}; g = Geometry.of(DEFAULT, 60.0); "
        f"assert daygrid._dense_day(files, {int(t0.timestamp() * 1_000_000)}, 60_000_000, g) is not None; "
        "print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
