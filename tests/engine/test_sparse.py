"""Series sampled more coarsely than the 1-minute grid (5-minute probes) are held between
samples, so a sustained deviation is one run the detector sees, and a real gap stays a gap."""

from __future__ import annotations

import numpy as np

from whatchanged.engine.detect import DEFAULT, detect_matrix, hold_sparse


def _five_minute(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dense = 40.0 + rng.normal(0.0, 2.0, n)
    sparse = np.full(n, np.nan)
    sparse[::5] = dense[::5]
    return dense, sparse


def test_each_sample_is_held_until_the_next_is_due() -> None:
    _, x = _five_minute(60, 1)
    held = hold_sparse(x[None, :].copy())[0]
    assert not np.isnan(held).any()
    for c in range(60):
        assert held[c] == x[c - c % 5]


def test_a_gap_longer_than_the_spacing_stays_a_gap() -> None:
    _, x = _five_minute(120, 2)
    x[40:80] = np.nan  # the probe was down for 40 minutes
    held = hold_sparse(x[None, :].copy())[0]
    assert np.isnan(held[40:80]).sum() >= 35
    assert not np.isnan(held[80:]).any()


def test_rows_at_the_grid_step_are_untouched() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, (3, 200))
    x[0, 50:60] = np.nan  # a short gap in a 1-minute series is not filled
    before = x.copy()
    assert np.array_equal(hold_sparse(x), before, equal_nan=True)


def test_a_step_in_a_five_minute_series_is_found() -> None:
    n = 3 * 1440
    dense, sparse = _five_minute(n, 4)
    start = 2 * 1440 + 600
    for x in (dense, sparse):
        x[start : start + 100] = np.where(np.isnan(x[start : start + 100]), np.nan, 600.0)
    found, _ = detect_matrix(hold_sparse(sparse[None, :].copy()), step_s=60, params=DEFAULT, online=True)
    assert found and abs(found[0].start - start) <= 5
