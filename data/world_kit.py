"""The kit the worlds of :mod:`whatchanged.data.worlds` are written with: what a world is
(services, truths, files), helpers for times, the fleet's topology and its metric series."""

import csv
import io
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

MIN = timedelta(minutes=1)


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Svc:
    """One inventory row."""

    name: str
    kind: str
    dc: str
    rack: str
    switch: str
    host: str
    app: str
    critical: bool = False


@dataclass(frozen=True)
class Truth:
    """What the answer to "what changed at ``at``?" must say.

    ``cause`` is the change id, or the component for ``hosting`` (None for
    ``unknown``); ``also`` lists names that denote the same thing (the rack of
    a rack whose only switch failed).  ``onset`` is UTC; ``outages`` is the
    incident's outage count (external probe intervals merged, else merged
    CRITICAL/DOWN intervals, 0 when the world has no check data).
    """

    world: str
    label: str
    at: datetime
    tz: str
    category: str
    cause: str | None
    onset: datetime
    outages: int
    also: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.world if self.label == "" else f"{self.world}@{self.label}"

    @property
    def at_local(self) -> str:
        """``at`` as the wall time an operator types (``--at 'YYYY-MM-DD HH:MM' --tz``)."""
        return self.at.astimezone(ZoneInfo(self.tz)).strftime("%Y-%m-%d %H:%M")

    def accepts(self, cause: str | None) -> bool:
        return cause == self.cause or (cause is not None and cause in self.also)


@dataclass(frozen=True)
class Webhook:
    """A body to POST to ``/api/v1/changes?format=…`` after the files are ingested."""

    format: str
    body: Any


@dataclass
class World:
    name: str
    story: str
    tz: str
    files: dict[str, bytes]
    truths: list[Truth]
    webhooks: list[Webhook] = field(default_factory=list)

    def write(self, folder: Path) -> list[Path]:
        """Write the files under ``folder``; returns the paths to give ``whatchanged ingest``."""
        folder.mkdir(parents=True, exist_ok=True)
        tops: dict[str, None] = {}
        for rel, data in sorted(self.files.items()):
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            tops.setdefault(rel.split("/")[0], None)
        return [folder / t for t in tops]


# --------------------------------------------------------------------------- helpers


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def utc(zone: str, text: str) -> datetime:
    """A wall time ``YYYY-MM-DD HH:MM[:SS]`` in ``zone`` as aware UTC (``fold=0``)."""
    naive = datetime.fromisoformat(text)
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def iso(t: datetime, zone: str = "UTC") -> str:
    return t.astimezone(ZoneInfo(zone)).isoformat()


def csv_bytes(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def inventory_csv(svcs: Sequence[Svc]) -> bytes:
    return csv_bytes(
        (
            (s.name, s.kind, s.dc, s.rack, s.switch, s.host, s.app, "true" if s.critical else "false", "")
            for s in svcs
        ),
        ("service", "kind", "datacenter", "rack", "switch", "host", "app", "critical", "tags"),
    )


def fleet(
    count: int,
    *,
    name: Callable[[int], str],
    dcs: Sequence[str],
    per_rack: int,
    per_host: int,
    apps: Sequence[str],
    rack_name: Callable[[str, int], str],
    switch_name: Callable[[str, int], str],
    host_name: Callable[[str, int], str],
    kind: str = "app",
) -> list[Svc]:
    """``count`` services spread over ``dcs`` in order, ``per_rack`` to a rack behind one switch."""
    out = []
    per_dc = -(-count // len(dcs))
    for i in range(count):
        dc = dcs[i // per_dc]
        j = i % per_dc
        rack = j // per_rack + 1
        host = j // per_host + 1
        out.append(
            Svc(
                name=name(i),
                kind=kind,
                dc=dc,
                rack=rack_name(dc, rack),
                switch=switch_name(dc, rack),
                host=host_name(dc, host),
                app=apps[i % len(apps)],
                critical=i % 7 == 0,
            )
        )
    return out


def switches_as_services(svcs: Sequence[Svc]) -> list[Svc]:
    """The top-of-rack switches as inventory rows of kind ``switch`` (monitored by ping)."""
    seen: dict[str, Svc] = {}
    for s in svcs:
        if s.switch not in seen:
            seen[s.switch] = Svc(s.switch, "switch", s.dc, s.rack, s.switch, s.switch, "network", True)
    return list(seen.values())


# --------------------------------------------------------------------------- metrics

#: metric → (typical level, relative noise, daily swing, decimals)
PROFILES: dict[str, tuple[float, float, float, int]] = {
    "cpu_pct": (38.0, 0.04, 0.25, 1),
    "http_5xx_rate": (0.5, 0.20, 0.3, 3),
    "p99_ms": (210.0, 0.05, 0.15, 1),
    "rx_bytes": (3.2e6, 0.04, 0.35, 0),
}


@dataclass(frozen=True)
class Effect:
    """What the incident does to a set of series.

    ``mode``: ``mul`` (multiply by ``value``), ``set`` (level ``value`` ×
    the metric's noise), ``gap`` (no sample at all: the exporter or host is
    gone, or the collector lost them).
    """

    services: tuple[str, ...]
    metrics: tuple[str, ...]
    start: datetime
    end: datetime
    mode: str
    value: float = 1.0


@dataclass
class Series:
    """Metrics on a regular grid: ``values[service, metric, step]`` (NaN = no sample)."""

    services: list[str]
    metrics: list[str]
    times: np.ndarray  # epoch seconds, int64
    values: np.ndarray

    def samples(self) -> Iterable[tuple[int, int, np.ndarray]]:
        for i in range(len(self.services)):
            for j in range(len(self.metrics)):
                yield i, j, self.values[i, j]


def make_series(
    world: str,
    services: Sequence[str],
    metrics: Sequence[str],
    start: datetime,
    end: datetime,
    step_s: int,
    *,
    tz: str,
    effects: Sequence[Effect] = (),
    noise: float = 1.0,
    missing: float = 0.0,
) -> Series:
    """Series with a daily shape in local time, per-service levels, noise and the incident effects."""
    rng = np.random.default_rng(seed_of(world))
    t0 = int(start.timestamp())
    times = np.arange(t0, int(end.timestamp()), step_s, dtype=np.int64)
    offset = ZoneInfo(tz).utcoffset(start.replace(tzinfo=None)) or timedelta()
    local_h = ((times + offset.total_seconds()) % 86400) / 3600.0
    shape = np.sin((local_h - 9.0) / 24.0 * 2 * np.pi)  # busiest mid-afternoon local
    n, m = len(services), len(metrics)
    values = np.empty((n, m, len(times)), dtype=np.float64)
    for j, metric in enumerate(metrics):
        level, rel, swing, _ = PROFILES[metric]
        lv = level * rng.uniform(0.6, 1.4, size=(n, 1))
        base = lv * (1.0 + swing * shape)[None, :]
        values[:, j, :] = base * (1.0 + rel * noise * rng.standard_normal((n, len(times))))
    index = {s: i for i, s in enumerate(services)}
    mindex = {k: j for j, k in enumerate(metrics)}
    for e in effects:
        rows = np.array([index[s] for s in e.services], dtype=np.intp)
        cols = [mindex[k] for k in e.metrics if k in mindex]
        steps = np.flatnonzero((times >= int(e.start.timestamp())) & (times < int(e.end.timestamp())))
        cells = (rows[:, None], steps[None, :])
        for j in cols:
            plane = values[:, j, :]  # a view
            if e.mode == "mul":
                plane[cells] *= e.value
            elif e.mode == "set":
                rel = PROFILES[metrics[j]][1]
                plane[cells] = e.value * (1.0 + rel * rng.standard_normal((len(rows), len(steps))))
            elif e.mode == "gap":
                plane[cells] = np.nan
            else:  # pragma: no cover - a typo in a world
                raise ValueError(e.mode)
    np.maximum(values, 0.0, out=values)
    if missing:
        values[rng.random(values.shape) < missing] = np.nan
    for j, metric in enumerate(metrics):
        values[:, j, :] = np.round(values[:, j, :], PROFILES[metric][3])
    return Series(list(services), list(metrics), times, values)
