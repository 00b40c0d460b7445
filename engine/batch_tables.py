"""The tables a batch run writes: ``incidents.parquet``, ``causes.parquet``, ``availability.parquet``.

Rows are sorted and the Parquet writer options fixed (:data:`PARQUET_OPTIONS`), so the same
result gives the same bytes; :func:`write_outputs` writes them (and the reports the presentation
layer gives it) under temporary names, then renames them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine.batch_partition import TS
from whatchanged.engine.model import Cause, Incident
from whatchanged.engine.storage import write_all_atomic

if TYPE_CHECKING:
    from whatchanged.engine.batch import BatchResult


#: the tables a run writes (``report.md`` and ``report.html`` are the presentation layer's)
OUTPUTS = ("incidents.parquet", "causes.parquet", "availability.parquet")


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


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as Parquet with :data:`PARQUET_OPTIONS` (same rows → same bytes)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return bytes(sink.getvalue().to_pybytes())


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
    write_all_atomic({out / name: data for name, data in files.items()}, fsync=True)
    return [out / name for name in files]
