"""Contextual single-series detector (engine/contextual.py): planted anomalies, quiet data, causality."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.engine import scenarios as sc
from tests.helpers import run_cli
from whatchanged.engine import ctxnumpy
from whatchanged.engine import ctxstream as cs
from whatchanged.engine.contextual import detect_series_combined
from whatchanged.engine.ctxstream import Calib, combine, gated_ratio, lag_novelty, lag_set, variability
from whatchanged.engine.detect import detect_series

TOLERANCE = timedelta(minutes=2)
CHANGE = sc.DAY0 + timedelta(days=1, hours=15, minutes=20)


def pattern_change(seed: int = 0) -> sc.Series:
    """A 60-minute cycle that turns into a 16-minute cycle of the same level and amplitude."""
    rng = np.random.default_rng(seed)
    ts = sc._grid(sc.DAY0, 2 * 1440)
    minute = np.arange(ts.size, dtype=float)
    i = sc._minute(ts, CHANGE)
    period = np.where(np.arange(ts.size) < i, 60.0, 16.0)
    phase = np.concatenate([[0.0], np.cumsum(2 * np.pi / period[:-1])])
    v = 100.0 + 20.0 * np.sin(phase) + rng.normal(0, 1.0, minute.size)
    return sc.Series(ts, v, (CHANGE,))


def _row(ts: np.ndarray, at: datetime) -> int:
    return int(np.searchsorted(ts, np.datetime64(at.replace(tzinfo=None), "us")))


@pytest.mark.parametrize(
    ("make", "direction"), [(sc.level_shift, "down"), (sc.spike, "up"), (sc.drift, "up")]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_anomaly_raises_one_alarm_with_onset_within_two_minutes(make, direction, seed) -> None:
    s = make(seed)
    found = detect_series_combined(s.ts, s.values)
    assert len(found) == 1, found
    a = found[0]
    assert a.direction == direction
    assert abs(a.onset - s.onsets[0]) <= TOLERANCE
    assert a.detected_at is not None
    assert a.onset <= a.detected_at <= s.onsets[0] + timedelta(minutes=10)
    assert not a.onset_lookahead


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_change_of_pattern_at_the_same_level_is_detected(seed) -> None:
    """The level and spread stay the same; only the rhythm changes — the contextual part sees it."""
    s = pattern_change(seed)
    found = detect_series_combined(s.ts, s.values)
    assert len(found) == 1, found
    a = found[0]
    assert a.detected_at is not None
    assert timedelta(0) <= a.detected_at - CHANGE <= timedelta(minutes=15)
    assert abs(a.onset - CHANGE) <= timedelta(minutes=15)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_change_of_variability_the_median_detector_misses_is_found(seed) -> None:
    """Same level, same daily shape, values within ±3 spreads: the series starts flapping from one
    minute to the next.  The median/MAD detector sees no departure; the variability score does."""
    s = sc.jitter(seed)
    assert detect_series(s.ts, s.values) == []
    found = detect_series_combined(s.ts, s.values)
    assert found, "no alarm"
    first = found[0].detected_at
    assert first is not None
    assert s.onsets[0] <= first <= s.onsets[0] + timedelta(minutes=20)


@pytest.mark.parametrize("make", [sc.seasonal_quiet, sc.missing_data])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_quiet_scenarios_stay_silent(make, seed) -> None:
    s = make(seed)
    assert detect_series_combined(s.ts, s.values) == []


@pytest.mark.parametrize("make", [sc.level_shift, sc.spike, pattern_change, sc.jitter])
def test_appending_future_points_does_not_change_earlier_decisions(make) -> None:
    """Alarms (detection time, onset, direction) before a cut are the same with or without the data
    after it — with the true continuation or with other, random data appended."""
    s = make(1)
    full = detect_series_combined(s.ts, s.values)
    rng = np.random.default_rng(7)
    cut0 = _row(s.ts, s.onsets[0])
    for cut in (cut0 - 500, cut0 + 1, cut0 + 3, cut0 + 30, s.ts.size - 200):
        head = detect_series_combined(s.ts[:cut], s.values[:cut])
        at_cut = s.ts[cut - 1].astype(datetime).replace(tzinfo=sc.DAY0.tzinfo)
        before = [a for a in full if a.detected_at is not None and a.detected_at <= at_cut]
        key = [(a.detected_at, a.onset, a.direction) for a in before]
        assert [(a.detected_at, a.onset, a.direction) for a in head] == key
        other = s.values.copy()
        other[cut:] = rng.normal(0, 1000.0, other.size - cut)
        changed = detect_series_combined(s.ts, other)
        got = [(a.detected_at, a.onset, a.direction) for a in changed if a.detected_at <= at_cut]
        assert got == key


def test_novelty_is_the_distance_to_the_nearest_lagged_context() -> None:
    """The lag-by-lag novelty against a by-hand nearest neighbour, one and three neighbours;
    a lag reaching before the series' start does not count; causal."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 400))
    x[1, 200:] += 1e3  # a large step leaves no rounding error behind it
    window, lags = 5, np.array([5, 7, 20, 50, 130])
    for k in (1, 3):
        a = lag_novelty(x, 400 - 150, lags, window, k)  # the last 250 steps
        for row in range(3):
            for t in range(150, 400):
                c = x[row, t - window + 1 : t + 1]
                d = sorted(
                    float(np.sqrt(((c - x[row, t - L - window + 1 : t - L + 1]) ** 2).sum()))
                    for L in lags.tolist()
                )
                assert a[row, t - 150] == pytest.approx(np.mean(d[:k]), rel=1e-4, abs=1e-3)
    head = lag_novelty(x[:, :300], 300 - 150, lags, window, 1)
    np.testing.assert_array_equal(head, lag_novelty(x, 400 - 150, lags, window, 1)[:, :150])
    lag_set_ = lag_set(10, 3000, recent=10, stride=10)
    assert lag_set_[0] == 10 and lag_set_[-1] == 3000 and lag_set_.size == 300  # noqa: PT018


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_novelty_is_the_numpy_passes_to_the_bit(
    dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled loops (many series) against the numpy passes (a few): the same figures to
    the bit, with NaN (never near; a query holding one: NaN), infinite values, a huge step,
    windows of one to thirteen steps, one to three neighbours, lags beyond the history, one
    thread or two."""
    monkeypatch.setattr(cs, "COMPILED_ROWS", 0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(140, 420)) * 50
    x[1, 200:] += 1e9
    x[2, 50:60] = np.nan
    x[3, 405] = np.nan
    x[4, 100], x[4, 300], x[5, 415] = np.inf, -np.inf, np.inf
    x[6, :] = np.nan
    x = x.astype(dtype)
    for window in (1, 2, 3, 5, 10, 13):
        for k in (1, 2, 3):
            lags = np.array([window, window + 2, 20, 50, 130, 400, 500])
            for rows in (x[:7], x):  # one thread, two
                want = ctxnumpy.lag_novelty(rows, 250, lags, window, k)
                got = lag_novelty(rows, 250, lags, window, k)
                np.testing.assert_array_equal(got, want)
    assert lag_novelty(x, 0, np.array([5]), 5, 1).shape == (140, 0)
    with pytest.raises(ValueError, match="k >= 1"):
        lag_novelty(x, 10, np.array([5]), 5, 0)


@pytest.mark.parametrize("compiled", [True, False])
def test_gates_and_combination_are_their_formulas(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gated ratio and the combination, compiled (many series) or numpy passes (a few),
    against their formulas, to the bit: NaN, infinity, a zero reference (a division by zero
    gives inf or NaN, no exception)."""
    monkeypatch.setattr(cs, "COMPILED_ROWS", 0 if compiled else 10**9)
    rng = np.random.default_rng(2)
    shape = (50, 40)

    def draw() -> NDArray[np.float64]:
        v = rng.random(shape) * 3
        v.flat[rng.choice(v.size, 60, replace=False)] = np.nan
        v.flat[rng.choice(v.size, 10, replace=False)] = np.inf
        v.flat[rng.choice(v.size, 10, replace=False)] = 0.0
        return v

    a, ref, floor, top = draw(), draw(), draw(), draw()
    count = rng.integers(0, 400, shape).astype(np.float64)
    for strong in (None, 3.5):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            r = np.where(count >= 200, a / ref, np.nan)
            gate = np.isfinite(a) & np.isfinite(r) & (a >= 3.0 * floor)
            t = np.nan_to_num(top, nan=0.0)
            ok = a >= 1.2 * t
            if strong is not None:
                ok |= (r >= strong) & (a >= 0.4 * t)
            want = 0.9 * np.where(gate & ok, r, 0.0)
        got = gated_ratio(
            a,
            ref,
            floor,
            count,
            top,
            warmup=200,
            novelty_floor=3.0,
            long_gate=1.2,
            strong_ratio=strong,
            strong_gate=0.4,
            weight=0.9,
        )
        np.testing.assert_array_equal(got, want)
    ratios = [draw() for _ in range(4)]
    ratios[2][0, :5] = -np.inf
    clean = [np.nan_to_num(v, nan=0.0, posinf=1e12) for v in ratios]
    first = np.maximum.reduce(clean)
    second = np.zeros(shape)
    best = clean[0].copy()
    for v in clean[1:]:
        second = np.maximum(second, np.minimum(best, v))
        best = np.maximum(best, v)
    np.testing.assert_array_equal(combine(ratios, 0.2), first + 0.2 * second)


def test_variability_ignores_one_jump() -> None:
    step = np.abs(np.diff(np.concatenate([np.zeros(50), np.full(50, 10.0)])))[None, :]
    assert np.nanmax(variability(step, 6)) == 0  # one jump: no variability
    flap = np.abs(np.diff(np.tile([0.0, 1.0], 50)))[None, :]
    np.testing.assert_allclose(variability(flap, 6)[0, 6:], 1.0)


@pytest.mark.parametrize("compiled", [True, False])
def test_calibration_is_over_whole_blocks_before_the_delay(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ref``: the largest (or rank-th largest) maximum of the whole blocks ending at or before
    ``t - delay``; ``count``: finite values in those blocks and all before; chunks change
    nothing; the ranking compiled (many series) or in numpy (a few)."""
    monkeypatch.setattr(cs, "COMPILED_ROWS", 0 if compiled else 10**9)
    rng = np.random.default_rng(1)
    a = rng.random((2, 300))
    a[0, 40:60] = np.nan
    a[1] = np.round(a[1] * 4) / 4  # ties among the block maxima
    size, n, delay, g0 = 4, 5, 3, 1001
    for rank in (1, 2, 4):
        whole = Calib.empty(2, size * n, delay, g0, medians=False, size=size, rank=rank).push(a, g0)
        calib = Calib.empty(2, size * n, delay, g0, medians=False, size=size, rank=rank)
        parts = [calib.push(a[:, i : i + 37], g0 + i) for i in range(0, 300, 37)]
        for k in (0, 2):  # ref and count
            np.testing.assert_array_equal(np.concatenate([p[k] for p in parts], axis=1), whole[k])
        for row, t in itertools.product(range(2), range(300)):
            g = g0 + t
            last = (g - delay + 1) // size - 1  # the last whole block ending by g - delay
            blocks = [
                a[row, max(b * size - g0, 0) : max((b + 1) * size - g0, 0)]
                for b in range(last - n + 1, last + 1)
            ]
            maxima = sorted((np.nanmax(v) for v in blocks if np.isfinite(v).any()), reverse=True)
            want = maxima[rank - 1] if len(maxima) >= rank else (0.0 if rank > 1 else np.nan)
            got = whole[0][row, t]
            assert (np.isnan(got) and np.isnan(want)) or got == want, (row, t, got, want)


def test_cli_detect_prints_the_alarm_of_a_level_shift(tmp_path) -> None:
    """``whatchanged detect --input FILE.csv --json`` runs this detector: one alarm at 19:23."""
    s = sc.level_shift(0)
    path = tmp_path / "bandwidth.csv"
    lines = ["timestamp,value"]
    lines += [f"{str(t)[:19]}Z,{v:.3f}" for t, v in zip(s.ts, s.values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    done = run_cli("detect", "--input", str(path), "--json", "--tz", "UTC")
    assert done.returncode == 0, done.stderr
    [alarm] = json.loads(done.stdout)
    assert alarm["service"] == "bandwidth"
    assert alarm["direction"] == "down"
    assert alarm["onset"] == "2010-11-17T19:23:00+00:00"
    assert alarm["detected_at"] == "2010-11-17T19:23:00+00:00"
