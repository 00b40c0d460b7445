"""Detector contract: planted anomalies are found near their true onset; quiet data stays silent."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from tests.engine import scenarios as sc
from whatchanged.engine.baseline import RobustBaseline, nanmedian_last
from whatchanged.engine.detect import detect_series

TOLERANCE = timedelta(minutes=2)


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize(
    ("make", "direction"), [(sc.level_shift, "down"), (sc.spike, "up"), (sc.drift, "up")]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_anomaly_found_with_onset_within_two_minutes(make, direction, seed, online) -> None:
    s = make(seed)
    found = detect_series(s.ts, s.values, online=online)
    assert len(found) == 1, found
    a = found[0]
    assert a.direction == direction
    assert abs(a.onset - s.onsets[0]) <= TOLERANCE
    assert a.onset <= a.start <= a.detected_at
    if online:
        assert not a.onset_lookahead


@pytest.mark.parametrize("make", [sc.seasonal_quiet, sc.missing_data])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_quiet_scenarios_stay_silent(make, seed) -> None:
    s = make(seed)
    assert detect_series(s.ts, s.values) == []


def test_capped_level_shift_stays_anomalous_while_flat() -> None:
    """200 → flat 50 Mbit/s for 83 minutes: one anomaly covering the whole cap."""
    s = sc.level_shift(0)
    [a] = detect_series(s.ts, s.values)
    assert a.end is not None
    assert abs(a.end - s.ends[0]) <= TOLERANCE
    assert a.observed == pytest.approx(50, abs=1)
    assert a.baseline > 150
    assert a.peak_score > 10


def test_level_shift_with_only_hours_of_history_is_caught_and_flagged() -> None:
    """Five hours of history, no previous day: the onset is still found, short history is said."""
    s = sc.level_shift(0)
    i = int(np.searchsorted(s.ts, np.datetime64(s.onsets[0].replace(tzinfo=None), "us")))
    ts, v = s.ts[i - 300 : i + 120], s.values[i - 300 : i + 120]
    [a] = detect_series(ts, v)
    assert abs(a.onset - s.onsets[0]) <= TOLERANCE
    base = RobustBaseline().fit(v[None, :], step_s=60).result_
    assert bool(base.short_history[0])
    full = RobustBaseline().fit(s.values[None, :], step_s=60).result_
    assert not bool(full.short_history[0])


def test_online_detection_uses_no_future_data() -> None:
    """Cutting the series right after the detection gives the same anomaly start and onset."""
    s = sc.level_shift(1)
    [a] = detect_series(s.ts, s.values, online=True)
    cut = int(np.searchsorted(s.ts, np.datetime64(a.detected_at.replace(tzinfo=None), "us"))) + 1
    [b] = detect_series(s.ts[:cut], s.values[:cut], online=True)
    assert (b.start, b.onset, b.detected_at) == (a.start, a.onset, a.detected_at)
    assert b.end is None  # still anomalous at the end of the data


def test_nanmedian_last_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(50, 7))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[0] = np.nan
    expected = np.array([np.nan if np.isnan(r).all() else np.nanmedian(r) for r in a])
    np.testing.assert_allclose(nanmedian_last(a), expected)
