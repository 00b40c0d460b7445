"""The contextual detector as a stream (engine/ctxstream.py) and on the fleet, day by day
(engine/ctxchain.py): cutting a series into chunks, scoring series side by side, or day by day
from the warehouse changes nothing; results are read back from the cache."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.engine import scenarios as sc
from whatchanged.engine import ctxstream as cs
from whatchanged.engine import detect
from whatchanged.engine.contextual import CONTEXT_DEFAULT, detect_series_combined
from whatchanged.engine.ctxchain import CARRIES_KEPT, CTX_STEP_S, CtxChain
from whatchanged.engine.detect import DEFAULT
from whatchanged.engine.intervals import grid_series
from whatchanged.engine.schema import METRICS
from whatchanged.engine.warehouse import Warehouse


def _inputs(series: list[sc.Series]) -> tuple[int, float, np.ndarray, ...]:
    grids = [grid_series(s.ts, s.values) for s in series]
    origin, step_us = grids[0][1], grids[0][2]
    width = min(g[0].size for g in grids)
    x = np.stack([g[0][:width] for g in grids])
    parts = [cs.series_inputs(x[i], step_us / 1e6, DEFAULT) for i in range(len(series))]
    absz, resid, expected = (np.stack([p[k] for p in parts]) for k in range(3))
    return origin // step_us, step_us / 1e6, x, absz, resid, expected


def _run(g0: int, x: np.ndarray, absz: np.ndarray, resid: np.ndarray, expected: np.ndarray, cuts: list[int]):
    carry = cs.new_carry(x.shape[0], g0, CONTEXT_DEFAULT)
    scores, events = [], []
    for a, b in zip([0, *cuts], [*cuts, x.shape[1]], strict=True):
        out = cs.push(carry, x[:, a:b], absz[:, a:b], resid[:, a:b], expected[:, a:b], CONTEXT_DEFAULT)
        scores.append(out.score)
        events += out.events
    final = {}
    for e in events:  # an alarm still going on at a chunk's end is reported again later
        final[(e.row, e.alarm)] = e
    return np.concatenate(scores, axis=1), sorted(final.values(), key=lambda e: (e.alarm, e.row))


def test_chunks_and_neighbours_change_nothing() -> None:
    """One chunk, random chunks, one series alone or beside others: the same scores, the same alarms."""
    series = [sc.level_shift(0), sc.spike(1), sc.jitter(2), sc.seasonal_quiet(3, days=3), sc.drift(4)]
    g0, _step, x, absz, resid, expected = _inputs(series)
    whole_scores, whole_events = _run(g0, x, absz, resid, expected, [])
    assert whole_events, "the planted anomalies raise alarms"
    rng = np.random.default_rng(5)
    for _ in range(3):
        cuts = sorted(rng.choice(np.arange(1, x.shape[1]), size=6, replace=False).tolist())
        s, e = _run(g0, x, absz, resid, expected, cuts)
        np.testing.assert_array_equal(s, whole_scores)
        assert e == whole_events
    for row in (0, 2):
        s, e = _run(
            g0, x[row : row + 1], absz[row : row + 1], resid[row : row + 1], expected[row : row + 1], [1440]
        )
        np.testing.assert_array_equal(s[0], whole_scores[row])
        assert [(ev.onset, ev.alarm, ev.end, ev.up) for ev in e] == [
            (ev.onset, ev.alarm, ev.end, ev.up) for ev in whole_events if ev.row == row
        ]


def test_two_threads_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many series are scored in two threads (the fine scale beside the rest, the novelty's
    series shared): the same scores and alarms as in one, and as each series alone."""
    series = [sc.level_shift(0), sc.spike(1), sc.jitter(2), sc.seasonal_quiet(3, days=3), sc.drift(4)]
    g0, _step, x, absz, resid, expected = _inputs(series)
    reps = -(-2 * cs.ROWS_PER_THREAD // len(series))  # enough series for two threads
    scale = np.repeat(1.0 + 0.01 * np.arange(reps), len(series))[:, None]
    many = [np.tile(a, (reps, 1)) * scale for a in (x, absz, resid, expected)]
    cuts = [1000, 2500]
    monkeypatch.setattr(cs, "THREADS", 2)
    handed = []
    helper = cs._helper()
    monkeypatch.setattr(cs, "_helper", lambda: handed.append(1) or helper)
    two = _run(g0, *many, cuts)
    assert handed, "the second thread was used"
    monkeypatch.setattr(cs, "THREADS", 1)
    one = _run(g0, *many, cuts)
    np.testing.assert_array_equal(two[0], one[0])
    assert two[1] == one[1]
    for row in (0, len(series) + 2):
        alone = _run(g0, *(a[row : row + 1] for a in many), cuts)
        np.testing.assert_array_equal(alone[0][0], two[0][row])


def test_single_series_detector_is_the_stream() -> None:
    """``detect_series_combined`` (CLI ``detect``, NAB) is the stream scored in one chunk."""
    s = sc.level_shift(0)
    g0, step, x, absz, resid, expected = _inputs([s])
    _, events = _run(g0, x, absz, resid, expected, [])
    found = detect_series_combined(s.ts, s.values)
    origin = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=g0 * step)
    assert [a.detected_at for a in found] == [
        origin + timedelta(seconds=(e.alarm - g0) * step) for e in events
    ]


# -- the fleet --------------------------------------------------------------------------------

DAY0 = datetime(2010, 11, 5, tzinfo=UTC)
DAYS = 6
CHANGE = DAY0 + timedelta(days=DAYS - 1, hours=10)
SERVICES = ("a", "aa", "b", "c")


def _fleet_values(rng: np.random.Generator, minutes: int, *, change: bool) -> np.ndarray:
    t = np.arange(minutes, dtype=float)
    period = np.full(minutes, 120.0)
    if change:  # the same level and amplitude, another rhythm
        period[int((CHANGE - DAY0).total_seconds() // 60) :] = 35.0
    phase = np.concatenate([[0.0], np.cumsum(2 * np.pi / period[:-1])])
    return 100.0 + 20.0 * np.sin(phase) + rng.normal(0, 1.0, t.size)


def _table(days: range, lo: int = 0, hi: int = DAYS * 1440, every: int = 1) -> pa.Table:
    """The fleet's samples of ``days``, of the minutes ``lo`` to ``hi`` from DAY0 (the same
    values at every call), one minute in ``every``."""
    rng = np.random.default_rng(3)
    minutes = DAYS * 1440
    stamps = np.array([DAY0 + timedelta(minutes=m) for m in range(minutes)])
    rows: dict[str, list[object]] = {"ts": [], "service": [], "metric": [], "value": []}
    for svc in SERVICES:
        x = _fleet_values(rng, minutes, change=svc == "b")
        # "aa" appears on the third day: its row of the chain starts afresh there, and the
        # rows of "b" and "c" move one down, their state with them
        keep = np.array(
            [
                m // 1440 in days and lo <= m < hi and m % every == 0 and (svc != "aa" or m // 1440 >= 2)
                for m in range(minutes)
            ]
        )
        rows["ts"] += stamps[keep].tolist()
        rows["service"] += [svc] * int(keep.sum())
        rows["metric"] += ["lat"] * int(keep.sum())
        rows["value"] += [float(np.float32(v)) for v in x[keep]]
    return pa.table(rows).cast(pa.schema([METRICS.field(n) for n in rows]))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ctxchain")
    wh = Warehouse(home)
    wh.init()
    wh.commit({"metrics": _table(range(DAYS))})
    return home


def _chain(home: Path) -> CtxChain:
    con = Warehouse(home).snapshot()
    states = detect._chained(con, DEFAULT, 60.0)
    return CtxChain(states, CONTEXT_DEFAULT)


def test_the_fleet_day_by_day_is_the_stream_over_the_whole_history(home: Path) -> None:
    chain = _chain(home)
    by_day = {}
    for d in chain.states.days:
        res = chain.day(d)
        assert res is not None
        assert res.steps == 288
        for e in res.events:
            by_day[(res.keys[e.row], e.alarm)] = e
    # the same detector over each series' whole 5-minute history in one chunk
    con = Warehouse(home).snapshot()
    last = chain.with_carry(chain.states.days[-1])
    assert last.carry is not None
    found = {}
    for svc in SERVICES:
        df = con.sql(f"SELECT ts, value FROM metrics WHERE service = '{svc}' ORDER BY ts").fetchnumpy()
        grid, origin, step_us = grid_series(df["ts"], df["value"])
        absz, resid, expected = cs.series_inputs(grid, step_us / 1e6, DEFAULT)
        f = CTX_STEP_S * 1_000_000 // step_us
        g0 = origin // (CTX_STEP_S * 1_000_000)
        carry = cs.new_carry(1, g0, CONTEXT_DEFAULT)
        out = cs.push(
            carry,
            _reduce(grid, np.nanmean, f),
            _reduce(absz, np.nanmax, f),
            _reduce(resid, np.nanmean, f),
            _reduce(expected, np.nanmean, f),
            CONTEXT_DEFAULT,
        )
        for e in out.events:
            found[((svc, "lat"), e.alarm)] = e
        row = last.keys.index((svc, "lat"))  # the carries at the end agree, row for row
        assert carry.g == last.carry.g
        # (not the level's calibration: the fleet's |z| comes from the day states, whose
        # expected values differ a little from one grid's over the first days of a series)
        np.testing.assert_array_equal(last.carry.fine.filled_tail[row], carry.fine.filled_tail[0])
        np.testing.assert_array_equal(last.carry.fine.short.bmax[row], carry.fine.short.bmax[0])
        assert last.carry.allowed[row] == carry.allowed[0]
    assert sorted(by_day) == sorted(found)
    change_step = int(CHANGE.timestamp()) // CTX_STEP_S
    alarms_b = [alarm for (key, alarm) in found if key[0] == "b" and alarm >= change_step]
    assert alarms_b, "the change of rhythm raises an alarm"
    assert alarms_b[0] - change_step <= 6, "within 30 minutes"


def _reduce(a: np.ndarray, how, f: int) -> np.ndarray:
    """The series in steps of ``f`` (``how``: the mean or the maximum of each)."""
    n = a.size // f
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps
        return how(a[: n * f].reshape(1, n, f), axis=2)


def test_results_are_read_back_from_the_cache(home: Path) -> None:
    first = _chain(home)
    last = first.states.days[-1]
    a = first.day(last)
    again = _chain(home)
    b = again.with_carry(last)
    assert again.computed == 0
    assert a is not None
    assert b is not None
    assert b.events == a.events
    assert b.keys == a.keys
    assert b.steps == a.steps
    a = first.with_carry(last)
    assert a.carry is not None
    assert b.carry is not None
    np.testing.assert_array_equal(b.carry.fine.filled_tail, a.carry.fine.filled_tail)
    assert b.carry.pending.keys() == a.carry.pending.keys()
    # only the latest days keep their carry on disk; an earlier one is computed again from them
    folder = first.cache_dir
    assert folder is not None
    kept = sorted(f.name[:10] for f in folder.glob("*.carry.npz"))
    assert len(kept) <= CARRIES_KEPT + 1
    assert len(list(folder.glob("*.npz"))) - len(kept) == len(first.states.days)
    early = first.states.days[1]
    third = _chain(home)
    assert third.day(early) is not None
    assert third.computed == 0  # its events are kept
    assert third.with_carry(early).events == first.day(early).events


def test_with_the_setting_on_the_fleet_reports_the_change_of_rhythm(home: Path, monkeypatch) -> None:
    con = Warehouse(home).snapshot()
    start, end = CHANGE - timedelta(hours=2), CHANGE + timedelta(hours=2)
    monkeypatch.setattr(detect, "FLEET_CONTEXTUAL", False)
    plain = detect.detect_anomalies(con, start, end)
    monkeypatch.setattr(detect, "FLEET_CONTEXTUAL", True)
    combined = detect.detect_anomalies(con, start, end)
    assert set(plain) <= set(combined)
    b = [a for a in combined if a.service == "b"]
    assert b, combined
    assert abs(b[0].onset - CHANGE) <= timedelta(minutes=30)
    assert not [a for a in combined if a.service != "b" and a not in plain]


def _warehouse(home: Path, *tables: pa.Table) -> Warehouse:
    wh = Warehouse(home)
    wh.init()
    for t in tables:
        wh.commit({"metrics": t})
    return wh


def test_a_day_scored_while_the_latest_is_scored_whole_once_a_later_day_has_data(tmp_path: Path) -> None:
    """A day whose data stops before midnight (its collector stopped at 20:00), scored while it
    was the latest, is scored again to its end once the next day has data: the next day goes
    on from its carry instead of starting afresh."""
    stop = (DAYS - 2) * 1440 + 20 * 60
    wh = _warehouse(tmp_path / "wh", _table(range(DAYS - 1), hi=stop))
    early = _chain(wh.home)
    d = early.states.days[-1]
    res = early.day(d)
    assert res is not None
    assert res.steps == 240
    wh.commit({"metrics": _table(range(DAYS - 1, DAYS))})
    later = _chain(wh.home)
    res = later.day(d)
    assert res is not None
    assert res.steps == 288
    last = later.with_carry(later.states.days[-1])
    # the same as a warehouse that never had that day as its latest
    ref = _chain(
        _warehouse(tmp_path / "ref", _table(range(DAYS), hi=stop), _table(range(DAYS - 1, DAYS))).home
    )
    want = ref.with_carry(ref.states.days[-1])
    assert last.events == want.events
    assert last.carry is not None
    assert want.carry is not None
    assert last.carry.g == want.carry.g
    np.testing.assert_array_equal(last.carry.fine.filled_tail, want.carry.fine.filled_tail)


def test_a_question_after_a_commit_reads_the_day_scored_before_it(tmp_path: Path) -> None:
    """The day being written is not scored again for every question after a commit: its result
    from before answers while at most STALE_STEPS steps behind the data; the analysis scores
    it again."""
    today = (DAYS - 1) * 1440
    wh = _warehouse(tmp_path / "wh", _table(range(DAYS), hi=today + 600))  # today to 10:00
    first = _chain(wh.home)
    assert first.analyze() == DAYS
    d = first.states.days[-1]
    wh.commit({"metrics": _table(range(DAYS), lo=today + 600, hi=today + 620)})
    asked = _chain(wh.home)
    res = asked.day(d)
    assert res is not None
    assert asked.computed == 0
    assert res.steps == 120
    assert res.carry is None
    # the analysis scores the day again, from the day before's carry
    analysed = _chain(wh.home)
    assert analysed.analyze() == 1
    res = analysed.day(d)
    assert res is not None
    assert res.steps == 124
    # more than STALE_STEPS behind: the question scores it
    wh.commit({"metrics": _table(range(DAYS), lo=today + 620, hi=today + 660)})
    behind = _chain(wh.home)
    res = behind.day(d)
    assert res is not None
    assert behind.computed == 1
    assert res.steps == 132


def test_the_analysis_two_days_at_a_time_is_the_day_by_day_chain(home: Path, tmp_path: Path) -> None:
    """``analyze`` (day states and contextual results on two threads) gives the same results."""
    plain = _chain(home)
    plain.analyze()
    wh = _warehouse(tmp_path / "wh", _table(range(DAYS)))
    threaded = _chain(wh.home)
    assert threaded.analyze() == DAYS
    for d in plain.states.days:
        a, b = plain.day(d), threaded.day(d)
        assert a is not None
        assert b is not None
        assert (a.keys, a.events, a.steps) == (b.keys, b.events, b.steps)


def test_a_blip_the_contextual_detector_alarms_on_is_a_short_anomaly_and_no_incident(
    tmp_path: Path, monkeypatch
) -> None:
    """A 2-minute blip (15 noise deviations, under the median detector's bar there): the
    contextual alarm is placed where the series left its baseline and lasts while it is away
    — not from the change point to the alarm — and makes no incident on its own."""
    from whatchanged.engine.incidents import find_incidents

    rng = np.random.default_rng(3)
    minutes = DAYS * 1440
    blip = (DAYS - 1) * 1440 + 600
    stamps = [DAY0 + timedelta(minutes=m) for m in range(minutes)]
    rows: dict[str, list[object]] = {"ts": [], "service": [], "metric": [], "value": []}
    for svc in ("a", "c"):
        x = _fleet_values(rng, minutes, change=False)
        if svc == "c":
            x[blip : blip + 2] += 15.0
        rows["ts"] += stamps
        rows["service"] += [svc] * minutes
        rows["metric"] += ["lat"] * minutes
        rows["value"] += [float(np.float32(v)) for v in x]
    wh = _warehouse(tmp_path / "wh", pa.table(rows).cast(pa.schema([METRICS.field(n) for n in rows])))
    end = DAY0 + timedelta(days=DAYS)
    monkeypatch.setattr(detect, "FLEET_CONTEXTUAL", True)
    found = detect.detect_anomalies(wh.snapshot(), DAY0, end)
    [a] = found
    at = DAY0 + timedelta(minutes=blip)
    assert (a.service, a.onset) == ("c", at)
    assert a.end is not None
    assert a.end - a.onset <= timedelta(minutes=3)
    assert a.detected_at is not None
    assert a.detected_at <= at + timedelta(minutes=10)
    assert find_incidents(wh.snapshot(), DAY0, end) == []


def test_a_series_sampled_every_five_minutes_gets_no_contextual_anomaly(tmp_path: Path, monkeypatch) -> None:
    """The contextual detector still alarms on the change of rhythm of a series exported every
    5 minutes, but there are no 1-minute scores to place it on (nor does the median detector
    see anything): no anomaly, as before the fleet ran it; explain's step search covers such
    series (docs/origin.md).  Sampled every minute with a minute missing in ten, it is reported."""
    monkeypatch.setattr(detect, "FLEET_CONTEXTUAL", True)
    start, end = CHANGE - timedelta(hours=2), CHANGE + timedelta(hours=2)
    sparse = _warehouse(tmp_path / "sparse", _table(range(DAYS), every=5))
    chain = _chain(sparse.home)
    chain.analyze()
    res = chain.day(CHANGE.date())
    assert res is not None
    assert any(res.keys[e.row][0] == "b" for e in res.events), "the stream alarms on the 5-minute series"
    assert detect.detect_anomalies(sparse.snapshot(), start, end) == []
    rows = _table(range(DAYS))
    gappy = _warehouse(tmp_path / "gappy", rows.filter(pa.array([i % 10 != 7 for i in range(rows.num_rows)])))
    b = [a for a in detect.detect_anomalies(gappy.snapshot(), start, end) if a.service == "b"]
    assert b
    assert abs(b[0].onset - CHANGE) <= timedelta(minutes=30)


def test_spikes_of_heavy_tailed_noise_are_short_anomalies_and_no_incident(
    tmp_path: Path, monkeypatch
) -> None:
    """Latency of 60 services: a daily curve plus gamma noise, nothing else.  The contextual
    detector alarms on some of its spikes (most in its first days); each becomes a short
    anomaly around its spike — a spike now and then does not hold it open — and none makes an
    incident, alone or with another service's at the same time."""
    from whatchanged.engine.incidents import find_incidents

    rng = np.random.default_rng(11)
    days, n = 4, 60
    minutes = days * 1440
    hour = (np.arange(minutes) / 60.0) % 24
    curve = 40 + 30 * (1 - (0.55 + 0.45 * np.sin((hour - 13.0) / 24.0 * 2 * np.pi) ** 2))
    stamps = [DAY0 + timedelta(minutes=m) for m in range(minutes)]
    rows: dict[str, list[object]] = {"ts": [], "service": [], "metric": [], "value": []}
    for i in range(n):
        x = np.round(curve + rng.gamma(2.0, 4.0, minutes))
        rows["ts"] += stamps
        rows["service"] += [f"svc-{i:02d}"] * minutes
        rows["metric"] += ["latency_ms"] * minutes
        rows["value"] += x.tolist()
    wh = _warehouse(tmp_path / "wh", pa.table(rows).cast(pa.schema([METRICS.field(k) for k in rows])))
    monkeypatch.setattr(detect, "FLEET_CONTEXTUAL", True)
    end = DAY0 + timedelta(days=days)
    found = [a for a in detect.detect_anomalies(wh.snapshot(), DAY0, end, online=False) if a.contextual]
    assert found, "the contextual detector alarms on some spikes"
    assert all(a.end is not None and a.end - a.onset <= timedelta(minutes=5) for a in found), [
        (a.service, a.onset, a.end) for a in found if a.end is None or a.end - a.onset > timedelta(minutes=5)
    ]
    assert find_incidents(wh.snapshot(), DAY0, end) == []
