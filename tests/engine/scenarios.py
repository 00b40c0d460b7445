"""Seeded scenario generators with known truth (ruptures-style).

Every generator takes a ``seed`` and returns what it built together with the
truth: the true onsets of the anomalies it planted (empty for quiet
scenarios).  Series are 1-minute samples in UTC.

* :func:`level_shift` — seasonal bandwidth ~200 Mbit/s capped flat near 50
  for 83 minutes (the reference night's signature);
* :func:`spike` — a short 5-minute burst on a flat noisy series;
* :func:`drift` — a slow linear climb;
* :func:`jitter` — the same level and daily shape, but the series starts flapping ±3 noise
  standard deviations from one minute to the next (a changed variability, not level);
* :func:`seasonal_quiet` — daily traffic with noise and nothing else (must stay silent);
* :func:`missing_data` — the quiet scenario with 10 % of samples and a 2-hour gap missing;
* :func:`flapping_states` — an external probe going down/up N times (check states rows);
* :func:`reference_night` — warehouse tables shaped like the reference night.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

DAY0 = datetime(2010, 11, 15, tzinfo=UTC)
NIGHT = datetime(2010, 11, 17, 19, 23, tzinfo=UTC)


@dataclass(frozen=True)
class Series:
    ts: np.ndarray  # datetime64[us]
    values: np.ndarray
    onsets: tuple[datetime, ...] = ()
    ends: tuple[datetime, ...] = ()


def _grid(start: datetime, minutes: int) -> np.ndarray:
    base = np.datetime64(start.replace(tzinfo=None), "us")
    return base + np.arange(minutes).astype("timedelta64[m]")


def _minute(ts: np.ndarray, at: datetime) -> int:
    return int((np.datetime64(at.replace(tzinfo=None), "us") - ts[0]) // np.timedelta64(1, "m"))


def traffic(
    ts: np.ndarray, rng: np.random.Generator, *, mean: float = 200.0, noise: float = 5.0
) -> np.ndarray:
    """Daily shape: low at night, high in the evening (peak around 20:00 UTC)."""
    minute_of_day = (ts - ts.astype("datetime64[D]")) // np.timedelta64(1, "m")
    phase = 2 * np.pi * (minute_of_day.astype(float) - 20 * 60) / 1440
    return mean + 0.3 * mean * np.cos(phase) + rng.normal(0, noise, ts.size)


def level_shift(seed: int = 0, *, days: int = 3, at: datetime = NIGHT, minutes: int = 83) -> Series:
    rng = np.random.default_rng(seed)
    ts = _grid(DAY0, days * 1440)
    v = traffic(ts, rng)
    i = _minute(ts, at)
    v[i : i + minutes] = 50.0 + rng.normal(0, 0.5, minutes)
    return Series(ts, v, (at,), (at + timedelta(minutes=minutes),))


def spike(seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    ts = _grid(DAY0, 2 * 1440)
    v = 100.0 + rng.normal(0, 2.0, ts.size)
    at = DAY0 + timedelta(days=1, hours=14, minutes=7)
    i = _minute(ts, at)
    v[i : i + 5] += 60.0
    return Series(ts, v, (at,), (at + timedelta(minutes=5),))


def drift(seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    ts = _grid(DAY0, 2 * 1440)
    v = 100.0 + rng.normal(0, 2.0, ts.size)
    at = DAY0 + timedelta(days=1, hours=9, minutes=41)
    i = _minute(ts, at)
    ramp = np.arange(ts.size - i, dtype=float) * 1.5
    v[i:] += np.minimum(ramp, 120.0)
    return Series(ts, v, (at,))


def jitter(seed: int = 0, *, days: int = 3) -> Series:
    rng = np.random.default_rng(seed)
    ts = _grid(DAY0, days * 1440)
    v = traffic(ts, rng, noise=2.0)
    at = DAY0 + timedelta(days=days - 1, hours=10, minutes=5)
    i = _minute(ts, at)
    v[i:] += 6.0 * np.where(np.arange(ts.size - i) % 2 == 0, 1.0, -1.0)
    return Series(ts, v, (at,))


def seasonal_quiet(seed: int = 0, *, days: int = 4) -> Series:
    rng = np.random.default_rng(seed)
    ts = _grid(DAY0, days * 1440)
    return Series(ts, traffic(ts, rng))


def missing_data(seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    s = seasonal_quiet(seed)
    keep = rng.random(s.ts.size) > 0.10
    gap0 = _minute(s.ts, DAY0 + timedelta(days=2, hours=3))
    keep[gap0 : gap0 + 120] = False
    return Series(s.ts[keep], s.values[keep])


# -- check states -------------------------------------------------------------------------------

#: the reference night's external probe: 14 outages, 54 minutes down, 19:23 → 20:46
NIGHT_DOWN_MIN = (5, 3, 4, 4, 3, 5, 4, 3, 4, 4, 3, 4, 4, 4)
NIGHT_UP_MIN = (2, 3, 2, 2, 3, 2, 2, 2, 3, 2, 2, 2, 2)


def flapping_intervals(
    at: datetime = NIGHT, down: tuple[int, ...] = NIGHT_DOWN_MIN, up: tuple[int, ...] = NIGHT_UP_MIN
) -> list[tuple[datetime, datetime]]:
    out, t = [], at
    for i, d in enumerate(down):
        out.append((t, t + timedelta(minutes=d)))
        t += timedelta(minutes=d + (up[i] if i < len(up) else 0))
    return out


@dataclass
class StateRows:
    ts: list[datetime] = field(default_factory=list)
    service: list[str] = field(default_factory=list)
    check: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)

    def add(self, ts: datetime, service: str, check: str, state: str, source: str) -> None:
        self.ts.append(ts)
        self.service.append(service)
        self.check.append(check)
        self.state.append(state)
        self.source.append(source)

    def intervals(
        self,
        service: str,
        check: str,
        intervals: list[tuple[datetime, datetime]],
        *,
        bad: str,
        good: str,
        source: str,
        first: datetime | None = None,
    ) -> None:
        if first is not None:
            self.add(first, service, check, good, source)
        for a, b in intervals:
            self.add(a, service, check, bad, source)
            self.add(b, service, check, good, source)

    def table(self) -> pa.Table:
        return pa.table(
            {
                "ts": pa.array(self.ts, pa.timestamp("us", tz="UTC")),
                "service": self.service,
                "check": self.check,
                "state": self.state,
                "source": self.source,
            }
        )


def flapping_states(*, service: str = "www", check: str = "pingdom-home") -> StateRows:
    rows = StateRows()
    rows.intervals(service, check, flapping_intervals(), bad="down", good="up", source="pingdom", first=DAY0)
    return rows


# -- the reference night -------------------------------------------------------------------------


@dataclass(frozen=True)
class Night:
    tables: dict[str, pa.Table]
    onset: datetime
    critical: tuple[str, ...]
    downtime_s: float


def reference_night(seed: int = 0, *, n_sites: int = 60) -> Night:
    """Inventory in P19 (a load balancer, the public site probed by Pingdom, sites and
    back offices), three days of 1-minute bandwidth of the load balancer with the
    capped level shift at 19:23, ~30 services CRITICAL in Nagios between 19:25 and
    20:40, and the probe's 14 outages."""
    rng = np.random.default_rng(seed)
    sites = [f"site{i:03d}" for i in range(n_sites)]
    services = ["lb-p19", "www", *sites]
    inv = pa.table(
        {
            "service": services,
            "kind": ["load_balancer", "site", *(["site"] * n_sites)],
            "datacenter": ["P19"] * len(services),
            "rack": ["r1"] * len(services),
            "switch": ["sw-p19-1"] * 2 + [f"sw-p19-{1 + i % 3}" for i in range(n_sites)],
            "host": ["lb1", "web1", *[f"web{1 + i % 8}" for i in range(n_sites)]],
            "app": ["lb", "sites", *[("sites" if i % 2 else "backoffice") for i in range(n_sites)]],
        }
    )
    bw = level_shift(seed, days=3)
    m_ts = [bw.ts]
    m_service = [np.full(bw.ts.size, "lb-p19")]
    m_metric = [np.full(bw.ts.size, "bandwidth_mbps")]
    m_val = [bw.values]
    # a quiet second metric on a few sites
    for s in sites[:5]:
        q = seasonal_quiet(int(rng.integers(1 << 30)), days=3)
        m_ts.append(q.ts)
        m_service.append(np.full(q.ts.size, s))
        m_metric.append(np.full(q.ts.size, "requests_per_s"))
        m_val.append(q.values / 10)
    metrics = pa.table(
        {
            "ts": pa.array(np.concatenate(m_ts), pa.timestamp("us", tz="UTC")),
            "service": np.concatenate(m_service).tolist(),
            "metric": np.concatenate(m_metric).tolist(),
            "value": np.concatenate(m_val),
        }
    )
    rows = flapping_states()
    critical = tuple(sorted(rng.choice(sites, size=30, replace=False).tolist()))
    for s in critical:
        a = NIGHT + timedelta(minutes=int(rng.integers(2, 20)))
        b = a + timedelta(minutes=int(rng.integers(10, 60)))
        rows.intervals(s, "http", [(a, b)], bad="CRITICAL", good="OK", source="nagios", first=DAY0)
    for s in sites:
        if s not in critical:
            rows.add(DAY0, s, "http", "OK", "nagios")
    return Night(
        tables={"services": inv, "metrics": metrics, "states": rows.table()},
        onset=NIGHT,
        critical=critical,
        downtime_s=60.0 * sum(NIGHT_DOWN_MIN),
    )
