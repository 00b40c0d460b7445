"""Batch analysis of history: the whole pipeline over a date range, partitioned, on any executor.

``whatchanged batch --from T --to T --out DIR`` calls :func:`run_batch` and
:func:`write_outputs`.  The steps::

    plan          the range cut at UTC midnights into blocks of ``partition_days``
                  days, × ``shards`` contiguous slices of the sorted service list
    partitions    per partition, on an executor: baselines + detection
                  (:func:`~whatchanged.engine.detect.detect_anomalies`, batch mode)
                  and outage extraction (:func:`~whatchanged.engine.outages.find_outages`);
                  each worker opens its own ``Warehouse(home).connect()`` and reads
                  Parquet itself; only the partition's events travel back
    stitch        serial: the events of every partition → incidents
                  (:func:`~whatchanged.engine.incidents.group_events`, same rules as
                  :func:`~whatchanged.engine.incidents.find_incidents`)
    rank          serial: :func:`~whatchanged.engine.explain.explain_incident` per incident
    availability  serial, from the stitched outages: per service, as
                  :func:`~whatchanged.engine.availability.availability` computes it

**Ownership: why stitching gives what a whole-range run gives.**  Detection is carried day
by day from the first day of data (:mod:`whatchanged.engine.daystate`; ``run_batch``
computes the missing day states once, in day order, before dispatching), so every
partition scores its minutes exactly as a whole-range run does.  A partition ``[a, b)``
looks for anomalies in the scores of the whole days from 6 hours before ``a`` to ``b``
plus the onset look-ahead, and returns those whose last anomalous minute is at or after
``a``.  It *owns* those whose last anomalous minute is before ``b`` (``end <= b``); the
last partition also owns the rest (still anomalous at the end of the data, or ending in
the look-ahead).  Every anomaly of a whole-range run is owned by exactly one partition,
which sees all of it (start, onset search, end) — unless it started more than a day
before that partition (a partition reads its scores from the day before ``a``): such an
anomaly is reported from that day's start.  One case is seen twice: two runs of one
series less than ``merge_gap_s`` apart across a boundary are one anomaly in the whole
run; the earlier partition owns the first run alone, the later one owns the merged
anomaly — same series, direction and start — and stitching keeps the one that ends
last.  An outage is owned by the partition holding its start (the first partition also
owns outages that started before the range); outages are computed from all check
states, so every partition sees the same intervals.  The result never depends on the
executor.

**Resumability.**  Each finished partition's events are written atomically
to ``DIR/.partitions/<key>.parquet`` (temporary name, then rename) by the
client process; ``DIR/.partitions/params.json`` records what they depend on
(warehouse, range, partitioning, detector settings, the warehouse's commits).
A re-run with the same ``--out`` skips finished partitions; with different
parameters it is refused (:class:`~whatchanged.engine.errors.ConfigError`).

**Determinism.**  Rows are sorted, Parquet writer options are fixed and no
run timestamp is stored, so the outputs are byte-identical whatever the
executor and whatever order partitions finish in.

Dask is imported lazily, only by :class:`DaskExecutor`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine.availability import Availability
from whatchanged.engine.detect import DEFAULT, detect_anomalies, prepare_states
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.explain import explain_incident
from whatchanged.engine.incidents import (
    FLAP_GAP_S,
    LINK_GAP_S,
    MIN_ANOMALY_S,
    _data_end,
    _incident,
    group_events,
    inventory,
)
from whatchanged.engine.model import Anomaly, Cause, Explanation, Incident, Outage
from whatchanged.engine.outages import EXTERNAL_STATES, clip, find_outages, merge_intervals, total_s
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse

FORMAT = 1
PARTITIONS_DIR = ".partitions"
#: the tables a run writes (``report.md`` and ``report.html`` are the presentation layer's)
OUTPUTS = ("incidents.parquet", "causes.parquet", "availability.parquet")
DAY = timedelta(days=1)

#: Fixed writer options: the same rows give the same bytes.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_size": 1 << 20,
    "row_group_size": 1 << 20,
    "version": "2.6",
}

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
        pa.field("state", pa.string()),
        pa.field("source", pa.string()),
        pa.field("external", pa.bool_()),
    ]
)

_ANOMALY = pa.struct(
    [
        ("service", pa.string()),
        ("metric", pa.string()),
        ("start", TS),
        ("onset", TS),
        ("end", TS),
        ("direction", pa.string()),
        ("peak_score", pa.float64()),
        ("baseline", pa.float64()),
        ("observed", pa.float64()),
    ]
)
_OUTAGE = pa.struct(
    [
        ("service", pa.string()),
        ("check", pa.string()),
        ("start", TS),
        ("end", TS),
        ("state", pa.string()),
        ("source", pa.string()),
        ("external", pa.bool_()),
    ]
)
_STRINGS = pa.list_(pa.string())

#: ``incidents.parquet``: one row per incident, by onset then id.
INCIDENTS = pa.schema(
    [
        pa.field("incident_id", pa.string(), nullable=False),
        pa.field("onset", TS, nullable=False),
        pa.field("end", TS),
        pa.field("services_affected", _STRINGS),
        pa.field("critical_services", _STRINGS),
        pa.field("outage_count", pa.int32()),
        pa.field("downtime_s", pa.float64()),
        pa.field("signals", _STRINGS),
        pa.field("onset_lookahead", pa.bool_()),
        pa.field("top_category", pa.string()),
        pa.field("top_change_id", pa.string()),
        pa.field("top_title", pa.string()),
        pa.field("top_score", pa.float64()),
        pa.field("ruled_out", pa.list_(pa.struct([("category", pa.string()), ("reason", pa.string())]))),
        pa.field("anomalies", pa.list_(_ANOMALY)),
        pa.field("outages", pa.list_(_OUTAGE)),
    ]
)

#: ``causes.parquet``: the ranked causes of every incident, by incident then rank.
CAUSES = pa.schema(
    [
        pa.field("incident_id", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("change_id", pa.string()),
        pa.field("component", pa.string()),
        pa.field("title", pa.string()),
        pa.field("start", TS),
        pa.field("end", TS),
        pa.field("score", pa.float64()),
        pa.field("evidence_for", _STRINGS),
        pa.field("evidence_against", _STRINGS),
        pa.field("features", pa.map_(pa.string(), pa.float64())),
        pa.field("downtime_s", pa.float64()),  # the incident's downtime, when this is its top cause; else 0
    ]
)

#: ``availability.parquet``: one row per service with check states, by service.
AVAILABILITY = pa.schema(
    [
        pa.field("service", pa.string(), nullable=False),
        pa.field("source", pa.string()),  # external | nagios
        pa.field("checks", _STRINGS),
        pa.field("period_s", pa.float64()),
        pa.field("downtime_s", pa.float64()),
        pa.field("outage_count", pa.int32()),
        pa.field("availability", pa.float64()),
        pa.field("percent", pa.string()),
    ]
)


# -- plan ------------------------------------------------------------------------------------------


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
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, shards: int
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


def plan(con: duckdb.DuckDBPyConnection, params: BatchParams) -> list[Partition]:
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


# -- one partition (runs on a worker) --------------------------------------------------------------


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
    con = Warehouse(home).connect(threads=threads)
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


# -- executors --------------------------------------------------------------------------------------


class Executor(Protocol):
    """Runs partitions; yields ``(partition, events)`` as each one finishes (any order)."""

    name: str

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]: ...


class InProcessExecutor:
    """One partition after another in this process (the default)."""

    name = "in-process"

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]:
        for part in parts:
            yield part, run_partition(home, part)


class PoolExecutor:
    """A local pool of ``workers`` processes (``concurrent.futures``, spawned)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ConfigError(f"batch: --workers: expected 1 or more, found {workers}")
        self.workers = workers
        self.name = f"process pool ({workers} workers)"

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding DuckDB threads
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            futures = {pool.submit(run_partition, home, p, threads): p for p in parts}
            try:
                for fut in as_completed(futures):
                    yield futures[fut], fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


class DaskExecutor:
    """A Dask cluster: ``tcp://host:8786`` (an existing scheduler) or ``local:N`` (a
    ``LocalCluster`` of N single-threaded worker processes on 127.0.0.1).

    Workers must see the warehouse at the same path and have whatchanged
    installed; tasks are retried on other workers when one dies.
    """

    def __init__(self, address: str, *, retries: int = 2) -> None:
        self.address = address
        self.retries = retries
        self.local_workers: int | None = None
        if address.startswith("local:"):
            try:
                self.local_workers = int(address.removeprefix("local:"))
            except ValueError:
                self.local_workers = 0
            if self.local_workers < 1:
                raise ConfigError(f"batch: --scheduler: expected local:N with N ≥ 1, found {address!r}")
        elif not address.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
            raise ConfigError(f"batch: --scheduler: expected tcp://host:port or local:N, found {address!r}")
        self.name = f"dask ({address})"

    def run(self, home: str, parts: Sequence[Partition]) -> Iterator[tuple[Partition, pa.Table]]:
        try:
            from dask.distributed import Client, LocalCluster
            from dask.distributed import as_completed as dask_completed
        except ImportError:  # pragma: no cover - the dask extra is missing
            raise ConfigError("batch: --scheduler needs Dask: pip install 'whatchanged[dask]'") from None
        cluster = None
        try:
            if self.local_workers is not None:
                cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=self.local_workers,
                    processes=True,
                    threads_per_worker=1,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                client = Client(cluster)  # type: ignore[no-untyped-call]
            else:
                try:
                    client = Client(self.address, timeout="20s")  # type: ignore[no-untyped-call]
                except OSError as exc:
                    raise ConfigError(
                        f"batch: cannot reach the Dask scheduler at {self.address}: {exc}"
                    ) from None
            with client:
                by_key = {f"whatchanged-batch-{p.key}-{secrets.token_hex(4)}": p for p in parts}
                futures = [
                    client.submit(run_partition, home, p, 1, key=k, pure=False, retries=self.retries)
                    for k, p in by_key.items()
                ]
                try:
                    for fut in dask_completed(futures):  # type: ignore[no-untyped-call]
                        yield by_key[fut.key], fut.result()
                finally:
                    client.cancel(futures)  # type: ignore[no-untyped-call]
        finally:
            if cluster is not None:
                cluster.close()


def executor_for(*, scheduler: str | None = None, workers: int | None = None) -> Executor:
    """The executor the CLI options name (in-process when neither is given)."""
    if scheduler and workers:
        raise ConfigError("batch: give either --scheduler or --workers, not both")
    if scheduler:
        return DaskExecutor(scheduler)
    if workers:
        return PoolExecutor(workers)
    return InProcessExecutor()


# -- resumable state ---------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same folder, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as Parquet with :data:`PARQUET_OPTIONS` (same rows → same bytes)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return bytes(sink.getvalue().to_pybytes())


def warehouse_fingerprint(wh: Warehouse) -> str:
    """A hash of the committed manifests: changes when anything is ingested."""
    txids = sorted(str(m.get("txid")) for m in wh.manifests())
    return hashlib.sha256("\n".join(txids).encode()).hexdigest()[:16]


def params_record(params: BatchParams, wh: Warehouse, parts: Sequence[Partition]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "home": str(wh.home),
        "from": params.start.astimezone(UTC).isoformat(),
        "to": params.end.astimezone(UTC).isoformat(),
        "partition_days": params.partition_days,
        "shards": params.shards,
        "detect": asdict(DEFAULT),
        "warehouse": warehouse_fingerprint(wh),
        "partitions": [p.key for p in parts],
    }


def check_params(folder: Path, record: Mapping[str, Any]) -> None:
    """Store ``record`` in ``folder/params.json``, or refuse if a different one is there."""
    path = folder / "params.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc}); delete {folder} to start over") from None
        differ = [k for k in sorted(set(stored) | set(record)) if stored.get(k) != record.get(k)]
        if differ:
            detail = "; ".join(
                f"{k}: stored {_short(stored.get(k))}, now {_short(record.get(k))}" for k in differ
            )
            raise ConfigError(
                f"{folder.parent}: holds partitions of a batch run with other parameters ({detail}); "
                f"use another --out, or delete {folder} to start over"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True).encode())


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


# -- the run ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """One partition done: reported to the ``progress`` callback of :func:`run_batch`."""

    key: str
    done: int
    total: int
    cached: bool


@dataclass(frozen=True)
class BatchResult:
    params: BatchParams
    executor: str
    partitions: int
    cached: int
    anomalies: int
    outages: int
    incidents: tuple[Incident, ...]
    explanations: dict[str, Explanation]
    availability: tuple[Availability, ...]
    tz: str = "UTC"

    def top_cause(self, incident_id: str) -> Cause | None:
        causes = self.explanations[incident_id].causes
        return causes[0] if causes else None


def run_batch(
    params: BatchParams,
    out: Path,
    *,
    settings: Settings,
    executor: Executor | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Run the partitions not done yet, stitch, rank and compute availability.

    Outputs are not written here: :func:`write_outputs` does it.
    ``on_plan(total, cached)`` is called once the partitions are known.
    """
    executor = executor or InProcessExecutor()
    wh = Warehouse(params.home)
    wh.require()
    folder = Path(out) / PARTITIONS_DIR
    con = wh.connect()
    try:
        parts = plan(con, params)
        check_params(folder, params_record(params, wh, parts))
        for stale in [*folder.glob(".*.tmp-*"), *Path(out).glob(".*.tmp-*")]:
            stale.unlink(missing_ok=True)  # left by a killed run: never renamed, never read
        done = {p.key for p in parts if (folder / f"{p.key}.parquet").is_file()}
        todo = [p for p in parts if p.key not in done]
        if on_plan:
            on_plan(len(parts), len(done))
        count = 0
        for p in parts:
            if p.key in done:
                count += 1
                if progress:
                    progress(Progress(p.key, count, len(parts), True))
        if todo:
            # the day-by-day detection state, in day order, once: partitions then read it
            prepare_states(con)
        for part, events in executor.run(str(wh.home), todo):
            write_atomic(folder / f"{part.key}.parquet", parquet_bytes(events.cast(EVENTS)))
            count += 1
            if progress:
                progress(Progress(part.key, count, len(parts), False))
        anomalies, outages = load_events(folder, parts)
        incidents = stitch(con, anomalies, outages)
        explanations = {inc.incident_id: explain_incident(con, inc, settings=settings) for inc in incidents}
        avail = service_availability(con, params.start, params.end, outages)
    finally:
        con.close()
    return BatchResult(
        params=params,
        executor=executor.name,
        partitions=len(parts),
        cached=len(done),
        anomalies=len(anomalies),
        outages=len(outages),
        incidents=tuple(incidents),
        explanations=explanations,
        availability=tuple(avail),
        tz=settings.tz,
    )


def load_events(folder: Path, parts: Sequence[Partition]) -> tuple[list[Anomaly], list[Outage]]:
    """The events of every partition; an anomaly owned twice (runs merged across a boundary)
    is kept once, in its longest form."""
    best: dict[tuple[str, str, str, datetime], Anomaly] = {}
    outages: list[Outage] = []
    for p in parts:
        anomalies, owned = events_from(pq.read_table(folder / f"{p.key}.parquet"))
        outages += owned
        for a in anomalies:
            k = (a.service, a.metric, a.direction, a.start)
            seen = best.get(k)
            if seen is None or _end_key(a) > _end_key(seen):
                best[k] = a
    found = sorted(best.values(), key=lambda a: (a.onset, a.service, a.metric))
    outages.sort(key=lambda o: (o.start, o.service, o.check))
    return found, outages


def _end_key(a: Anomaly) -> tuple[int, datetime]:
    return (1, a.start) if a.end is None else (0, a.end)


def stitch(
    con: duckdb.DuckDBPyConnection, anomalies: Sequence[Anomaly], outages: Sequence[Outage]
) -> list[Incident]:
    """Incidents from every partition's events, by the rules of ``find_incidents`` (open ends
    count up to the end of the data, as there)."""
    cutoff = _data_end(con)
    groups = group_events(
        anomalies, outages, inventory(con), cutoff=cutoff, flap_gap_s=FLAP_GAP_S, link_gap_s=LINK_GAP_S
    )
    found = [i for g in groups if (i := _incident(g, cutoff, False, MIN_ANOMALY_S)) is not None]
    found.sort(key=lambda i: (i.onset, i.incident_id))
    return found


def service_availability(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, outages: Sequence[Outage]
) -> list[Availability]:
    """Per service with check states, what ``availability(service=…)`` gives (planned
    maintenance counted), from outages already found."""
    rows = con.execute(
        'SELECT service, "check", bool_and(list_contains($ext, state)) FROM states '
        'GROUP BY service, "check" ORDER BY 1, 2',
        {"ext": list(EXTERNAL_STATES)},
    ).fetchall()
    checks: dict[str, list[tuple[str, bool]]] = {}
    for svc, chk, ext in rows:
        checks.setdefault(str(svc), []).append((str(chk), bool(ext)))
    by_service: dict[str, list[Outage]] = {}
    for o in outages:
        by_service.setdefault(o.service, []).append(o)
    period = (end - start).total_seconds()
    out = []
    for svc in sorted(checks):
        external = [c for c, e in checks[svc] if e]
        measured = set(external or [c for c, _ in checks[svc]])
        down = clip(
            merge_intervals(
                [(o.start, o.end or end) for o in by_service.get(svc, []) if o.check in measured]
            ),
            start,
            end,
        )
        downtime = total_s(down)
        out.append(
            Availability(
                selection=f"service={svc}",
                source="external" if external else "nagios",
                start=start,
                end=end,
                checks=tuple(f"{svc}/{c}" for c in sorted(measured)),
                period_s=period,
                downtime_s=downtime,
                outage_count=len(down),
                planned_s=0.0,
                exclude_planned=False,
                availability=1.0 - downtime / period if period > 0 else 1.0,
            )
        )
    return out


# -- outputs ------------------------------------------------------------------------------------------


def incidents_table(result: BatchResult) -> pa.Table:
    rows = []
    for inc in result.incidents:
        expl = result.explanations[inc.incident_id]
        top = expl.causes[0] if expl.causes else None
        rows.append(
            {
                "incident_id": inc.incident_id,
                "onset": inc.onset,
                "end": inc.end,
                "services_affected": list(inc.services_affected),
                "critical_services": list(inc.critical_services),
                "outage_count": inc.outage_count,
                "downtime_s": inc.downtime_s,
                "signals": list(inc.signals),
                "onset_lookahead": inc.onset_lookahead,
                "top_category": top.category if top else None,
                "top_change_id": top.change_id if top else None,
                "top_title": top.title if top else None,
                "top_score": top.score if top else None,
                "ruled_out": [{"category": r.category, "reason": r.reason} for r in expl.ruled_out],
                "anomalies": [
                    {
                        "service": a.service,
                        "metric": a.metric,
                        "start": a.start,
                        "onset": a.onset,
                        "end": a.end,
                        "direction": a.direction,
                        "peak_score": a.peak_score,
                        "baseline": a.baseline,
                        "observed": a.observed,
                    }
                    for a in inc.anomalies
                ],
                "outages": [
                    {
                        "service": o.service,
                        "check": o.check,
                        "start": o.start,
                        "end": o.end,
                        "state": o.state,
                        "source": o.source,
                        "external": o.external,
                    }
                    for o in inc.outages
                ],
            }
        )
    return pa.Table.from_pylist(rows, schema=INCIDENTS)


def _cause_row(inc: Incident, c: Cause) -> dict[str, Any]:
    return {
        "incident_id": inc.incident_id,
        "rank": c.rank,
        "category": c.category,
        "change_id": c.change_id,
        "component": c.component,
        "title": c.title,
        "start": c.start,
        "end": c.end,
        "score": c.score,
        "evidence_for": list(c.evidence_for),
        "evidence_against": list(c.evidence_against),
        "features": sorted((str(k), float(v)) for k, v in c.features.items()),
        "downtime_s": inc.downtime_s if c.rank == 1 else 0.0,
    }


def causes_table(result: BatchResult) -> pa.Table:
    rows = [
        _cause_row(inc, c) for inc in result.incidents for c in result.explanations[inc.incident_id].causes
    ]
    return pa.Table.from_pylist(rows, schema=CAUSES)


def availability_table(result: BatchResult) -> pa.Table:
    rows = [
        {
            "service": a.selection.removeprefix("service="),
            "source": a.source,
            "checks": list(a.checks),
            "period_s": a.period_s,
            "downtime_s": a.downtime_s,
            "outage_count": a.outage_count,
            "availability": a.availability,
            "percent": a.percent,
        }
        for a in result.availability
    ]
    return pa.Table.from_pylist(rows, schema=AVAILABILITY)


def attribution(result: BatchResult) -> dict[str, float]:
    """Downtime (s) per cause class of the incidents' top causes (``unknown`` without one)."""
    per: dict[str, float] = {}
    for inc in result.incidents:
        top = result.top_cause(inc.incident_id)
        klass = top.category if top else "unknown"
        per[klass] = per.get(klass, 0.0) + inc.downtime_s
    return per


def top_changes(result: BatchResult) -> list[dict[str, Any]]:
    """Changes that are some incident's top cause, by attributed downtime (then id)."""
    tops: dict[str, dict[str, Any]] = {}
    for inc in result.incidents:
        top = result.top_cause(inc.incident_id)
        if top is None or top.change_id is None:
            continue
        entry = tops.setdefault(
            top.change_id,
            {
                "change_id": top.change_id,
                "title": top.title,
                "category": top.category,
                "incidents": 0,
                "downtime_s": 0.0,
            },
        )
        entry["incidents"] += 1
        entry["downtime_s"] += inc.downtime_s
    return sorted(tops.values(), key=lambda e: (-float(e["downtime_s"]), str(e["change_id"])))


def write_outputs(result: BatchResult, out: Path, *, extra: Mapping[str, bytes] | None = None) -> list[Path]:
    """Write the Parquet outputs (:data:`OUTPUTS`) and ``extra`` (name → bytes: the reports of
    ``present.report``) into ``out``.

    Every file is written under a temporary name first and all are renamed
    at the end, so an interrupted run leaves no partial output file.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        "incidents.parquet": parquet_bytes(incidents_table(result)),
        "causes.parquet": parquet_bytes(causes_table(result)),
        "availability.parquet": parquet_bytes(availability_table(result)),
        **(extra or {}),
    }
    staged: list[tuple[Path, Path]] = []
    try:
        for name, data in files.items():
            tmp = out / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            staged.append((tmp, out / name))
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [final for _, final in staged]
