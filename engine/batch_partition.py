"""The plan of a batch run and the work of one partition (on whichever worker runs it).

:func:`plan` cuts ``[start, end)`` at UTC midnights into blocks of ``partition_days`` days ×
``shards`` slices of the sorted services; :func:`run_partition` detects anomalies and outages in
one partition and returns the events it *owns* (:func:`owns_anomaly`, :func:`owns_outage`; the
rule is in :mod:`whatchanged.engine.batch`) as one :data:`EVENTS` table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.detect import detect_anomalies
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.model import Anomaly, Outage
from whatchanged.engine.outages import find_outages
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.warehouse import Warehouse

DAY = timedelta(days=1)


TS = pa.timestamp("us", tz="UTC")


#: One partition's events: anomalies and outages in one table (``kind`` tells which).
EVENTS = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),  # anomaly | outage
        pa.field("service", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),  # metric (anomaly) or check (outage)
        pa.field("start", TS, nullable=False),
        pa.field("onset", TS),
        pa.field("end", TS),
        pa.field("direction", pa.string()),
        pa.field("peak_score", pa.float64()),
        pa.field("baseline", pa.float64()),
        pa.field("observed", pa.float64()),
        pa.field("detected_at", TS),
        pa.field("onset_lookahead", pa.bool_()),
        pa.field("contextual", pa.bool_()),
        pa.field("state", pa.string()),
        pa.field("source", pa.string()),
        pa.field("external", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class BatchParams:
    """What a batch run's partitions depend on (stored in ``params.json``)."""

    home: Path
    start: datetime
    end: datetime
    partition_days: int = 15
    shards: int = 1

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ConfigError("batch: --from and --to must be aware datetimes (a zone or an offset)")
        if self.end <= self.start:
            raise ConfigError(
                f"batch: --to ({self.end.isoformat()}) must be after --from ({self.start.isoformat()})"
            )
        if self.partition_days < 1:
            raise ConfigError(f"batch: --partition-days: expected 1 or more, found {self.partition_days}")
        if self.shards < 1:
            raise ConfigError(f"batch: --shards: expected 1 or more, found {self.shards}")


@dataclass(frozen=True)
class Partition:
    """One unit of work: a time block × a slice of services (None: all of them)."""

    key: str
    start: datetime
    end: datetime
    services: tuple[str, ...] | None
    first: bool
    last: bool


def _midnight(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


def time_blocks(start: datetime, end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at UTC midnights every ``days`` days (counted from ``start``'s day)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    cuts = []
    t = _midnight(start) + days * DAY
    while t < end:
        cuts.append(t)
        t += days * DAY
    bounds = [start, *cuts, end]
    return list(itertools.pairwise(bounds))


def shard_services(
    con: Snapshot, start: datetime, end: datetime, shards: int
) -> list[tuple[str, ...] | None]:
    """The sorted services with metrics in the range or any check state, cut into ``shards``
    contiguous slices (contiguous names: the sorted metrics files prune row groups)."""
    if shards == 1:
        return [None]
    rows = con.execute(
        "SELECT DISTINCT service FROM metrics WHERE ts >= $lo AND ts < $hi "
        "UNION SELECT DISTINCT service FROM states ORDER BY 1",
        {"lo": start, "hi": end},
    ).fetchall()
    names = [str(r[0]) for r in rows]
    size = max(1, math.ceil(len(names) / shards))
    return [tuple(names[i : i + size]) for i in range(0, len(names), size)] or [()]


def plan(con: Snapshot, params: BatchParams) -> list[Partition]:
    """The partitions of a run, in time order then shard order."""
    blocks = time_blocks(params.start, params.end, params.partition_days)
    slices = shard_services(con, params.start, params.end, params.shards)
    out = []
    for i, (a, b) in enumerate(blocks):
        for k, services in enumerate(slices):
            out.append(
                Partition(
                    key=f"{a:%Y%m%dT%H%M%S}-s{k:03d}",
                    start=a,
                    end=b,
                    services=services,
                    first=i == 0,
                    last=i == len(blocks) - 1,
                )
            )
    return out


def owns_anomaly(part: Partition, a: Anomaly) -> bool:
    """True when ``part`` is the partition holding the last anomalous minute of ``a``."""
    if part.last:
        return True
    return a.end is not None and a.end <= part.end


def owns_outage(part: Partition, o: Outage) -> bool:
    """True when ``part`` holds the start of ``o`` (the first one: also earlier starts)."""
    return o.start < part.end and (part.first or o.start >= part.start)


def run_partition(home: str, part: Partition, threads: int | None = None) -> pa.Table:
    """Detect anomalies and outages in one partition; return the events it owns.

    Runs wherever the executor puts it: it opens its own connection over the
    warehouse files and returns a small Arrow table.
    """
    con = Warehouse(home).snapshot(threads=threads)
    try:
        services = list(part.services) if part.services is not None else None
        anomalies = detect_anomalies(con, part.start, part.end, services=services, online=False)
        outages = find_outages(con, part.start, part.end, services=services)
    finally:
        con.close()
    return events_table(
        [a for a in anomalies if owns_anomaly(part, a)], [o for o in outages if owns_outage(part, o)]
    )


def _anomaly_row(a: Anomaly) -> dict[str, Any]:
    return {
        "kind": "anomaly",
        "service": a.service,
        "name": a.metric,
        "start": a.start,
        "onset": a.onset,
        "end": a.end,
        "direction": a.direction,
        "peak_score": a.peak_score,
        "baseline": a.baseline,
        "observed": a.observed,
        "detected_at": a.detected_at,
        "onset_lookahead": a.onset_lookahead,
        "contextual": a.contextual,
    }


def _outage_row(o: Outage) -> dict[str, Any]:
    return {
        "kind": "outage",
        "service": o.service,
        "name": o.check,
        "start": o.start,
        "end": o.end,
        "state": o.state,
        "source": o.source,
        "external": o.external,
    }


def events_table(anomalies: Sequence[Anomaly], outages: Sequence[Outage]) -> pa.Table:
    """Anomalies and outages as one :data:`EVENTS` table, sorted."""
    rows = [*map(_anomaly_row, anomalies), *map(_outage_row, outages)]
    rows.sort(key=lambda r: (r["kind"], r["service"], r["name"], r["start"], r.get("direction") or ""))
    return pa.Table.from_pylist(rows, schema=EVENTS)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def events_from(table: pa.Table) -> tuple[list[Anomaly], list[Outage]]:
    """The anomalies and outages of an :data:`EVENTS` table."""
    anomalies: list[Anomaly] = []
    outages: list[Outage] = []
    for r in table.to_pylist():
        if r["kind"] == "anomaly":
            anomalies.append(
                Anomaly(
                    service=r["service"],
                    metric=r["name"],
                    start=r["start"].astimezone(UTC),
                    onset=r["onset"].astimezone(UTC),
                    end=_utc(r["end"]),
                    direction=r["direction"],
                    peak_score=r["peak_score"],
                    baseline=r["baseline"],
                    observed=r["observed"],
                    detected_at=_utc(r["detected_at"]),
                    onset_lookahead=bool(r["onset_lookahead"]),
                    contextual=bool(r["contextual"]),
                )
            )
        else:
            outages.append(
                Outage(
                    service=r["service"],
                    check=r["name"],
                    start=r["start"].astimezone(UTC),
                    end=_utc(r["end"]),
                    state=r["state"],
                    source=r["source"],
                    external=bool(r["external"]),
                )
            )
    return anomalies, outages
