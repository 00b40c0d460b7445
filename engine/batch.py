"""Batch analysis of history: the whole pipeline over a date range, partitioned, on any executor.

``whatchanged batch --from T --to T --out DIR`` calls :func:`run_batch` and
:func:`write_outputs`.  The steps::

    plan          the range cut at UTC midnights into blocks of ``partition_days``
                  days, × ``shards`` contiguous slices of the sorted service list
    partitions    per partition, on an executor: baselines + detection
                  (:func:`~whatchanged.engine.detect.detect_anomalies`, batch mode)
                  and outage extraction (:func:`~whatchanged.engine.outages.find_outages`);
                  each worker opens its own ``Warehouse(home).snapshot()`` and reads
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
to ``DIR/.partitions/<key>.parquet`` (``storage.write_atomic``) by the
client process; ``DIR/.partitions/params.json`` records what they depend on
(warehouse, range, partitioning, detector settings, the warehouse's commits).
A re-run with the same ``--out`` skips finished partitions; with different
parameters it is refused (:class:`~whatchanged.engine.errors.ConfigError`).

**Determinism.**  Rows are sorted, Parquet writer options are fixed and no
run timestamp is stored, so the outputs are byte-identical whatever the
executor and whatever order partitions finish in.

The step in modules: :mod:`~whatchanged.engine.batch_partition` (the plan, one partition's
work, the events table), :mod:`~whatchanged.engine.batch_executors` (in-process, process pool,
Dask; Dask is imported lazily), :mod:`~whatchanged.engine.batch_tables` (the Parquet outputs);
this module runs them and re-exports their names.  The summary and ``report.md`` are the
presentation layer's (:mod:`whatchanged.present`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from whatchanged.engine.availability import Availability
from whatchanged.engine.batch_executors import (
    DaskExecutor,
    Executor,
    InProcessExecutor,
    PoolExecutor,
    executor_for,
)
from whatchanged.engine.batch_partition import (
    DAY,
    EVENTS,
    TS,
    BatchParams,
    Partition,
    events_from,
    events_table,
    owns_anomaly,
    owns_outage,
    plan,
    run_partition,
    shard_services,
    time_blocks,
)
from whatchanged.engine.batch_tables import (
    AVAILABILITY,
    CAUSES,
    INCIDENTS,
    OUTPUTS,
    PARQUET_OPTIONS,
    availability_table,
    causes_table,
    incidents_table,
    parquet_bytes,
    write_outputs,
)
from whatchanged.engine.detect import DEFAULT, prepare_states
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
from whatchanged.engine.outages import EXTERNAL_STATES, clip, merge_intervals, total_s
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.storage import write_atomic
from whatchanged.engine.warehouse import Warehouse

FORMAT = 1
PARTITIONS_DIR = ".partitions"


# -- plan ------------------------------------------------------------------------------------------


# -- one partition (runs on a worker) --------------------------------------------------------------


# -- executors --------------------------------------------------------------------------------------


# -- resumable state ---------------------------------------------------------------------------------


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
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True), fsync=True)


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
    con = wh.snapshot()
    try:
        parts = plan(con, params)
        check_params(folder, params_record(params, wh, parts))
        for stale in [*folder.glob(".*.tmp"), *Path(out).glob(".*.tmp")]:
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
            write_atomic(folder / f"{part.key}.parquet", parquet_bytes(events.cast(EVENTS)), fsync=True)
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


def stitch(con: Snapshot, anomalies: Sequence[Anomaly], outages: Sequence[Outage]) -> list[Incident]:
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
    con: Snapshot, start: datetime, end: datetime, outages: Sequence[Outage]
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
    return changes_by_downtime((inc, result.top_cause(inc.incident_id)) for inc in result.incidents)


def changes_by_downtime(tops_of: Iterable[tuple[Incident, Cause | None]]) -> list[dict[str, Any]]:
    """For (incident, its top cause) pairs: each change that is a top cause, with its title,
    class, incidents and attributed outage seconds, most downtime first (then by id)."""
    tops: dict[str, dict[str, Any]] = {}
    for inc, top in tops_of:
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


#: this module's names, with those of the modules it was split into (one import for callers)
__all__ = [
    "AVAILABILITY",
    "CAUSES",
    "DAY",
    "EVENTS",
    "FORMAT",
    "INCIDENTS",
    "OUTPUTS",
    "PARQUET_OPTIONS",
    "PARTITIONS_DIR",
    "TS",
    "BatchParams",
    "BatchResult",
    "DaskExecutor",
    "Executor",
    "InProcessExecutor",
    "Partition",
    "PoolExecutor",
    "Progress",
    "attribution",
    "availability_table",
    "causes_table",
    "changes_by_downtime",
    "check_params",
    "events_from",
    "events_table",
    "executor_for",
    "incidents_table",
    "load_events",
    "owns_anomaly",
    "owns_outage",
    "params_record",
    "parquet_bytes",
    "plan",
    "run_batch",
    "run_partition",
    "service_availability",
    "shard_services",
    "stitch",
    "time_blocks",
    "top_changes",
    "warehouse_fingerprint",
    "write_atomic",
    "write_outputs",
]
