"""The reports of a batch run (``whatchanged batch``), beside its Parquet tables.

:func:`markdown` is ``report.md``: counts, outage minutes per cause class, the top changes
by attributed downtime, the incidents and the least available services.  Deterministic: no
run time, no executor, rows sorted.  (``report.html``, with the weekly figures of the
dashboards, is built by ``api/cli_batch.py``.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from whatchanged.engine.batch import BatchResult, attribution, top_changes
from whatchanged.engine.timeparse import fmt_local


def files(result: BatchResult) -> dict[str, bytes]:
    """The reports this layer writes beside the tables (name → bytes), for ``write_outputs``."""
    return {"report.md": markdown(result).encode()}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}"


def _local(ts: datetime | None, tz: str) -> str:
    return fmt_local(ts, tz, with_date=True) if ts else "ongoing"


def markdown(result: BatchResult, *, max_rows: int = 50) -> str:
    """``report.md``: the summary of a run (deterministic: no run time, no executor)."""
    tz = result.tz
    p = result.params
    lines = [
        f"# whatchanged batch report: {_local(p.start, tz)} → {_local(p.end, tz)} ({tz})",
        "",
        f"- {len(result.incidents)} incidents, {result.anomalies} anomalies, {result.outages} outages",
        f"- {sum(i.downtime_s for i in result.incidents) / 60:.0f} outage minutes in incidents",
        f"- {result.partitions} partitions ({p.partition_days} day(s) × {p.shards} shard(s))",
        "",
        "## Outage minutes per cause class",
        "",
        "| cause class | incidents | outage minutes |",
        "| --- | ---: | ---: |",
    ]
    per = attribution(result)
    counts: dict[str, int] = {}
    for inc in result.incidents:
        top = result.top_cause(inc.incident_id)
        counts[top.category if top else "unknown"] = counts.get(top.category if top else "unknown", 0) + 1
    lines += [
        f"| {klass} | {counts[klass]} | {_minutes(per[klass])} |"
        for klass in sorted(per, key=lambda k: (-per[k], k))
    ]
    lines += ["", "## Top changes by attributed downtime", ""]
    changes = top_changes(result)
    if changes:
        lines += [
            "| change | title | class | incidents | outage minutes |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        for e in changes[:max_rows]:
            lines.append(
                f"| {_md(e['change_id'])} | {_md(e['title'])} | {e['category']} | {e['incidents']} "
                f"| {_minutes(e['downtime_s'])} |"
            )
    else:
        lines.append("No incident has a change as its top cause.")
    lines += ["", "## Incidents", ""]
    ordered = sorted(result.incidents, key=lambda i: (-i.downtime_s, i.onset, i.incident_id))
    if ordered:
        lines += [
            "| incident | onset | end | services | critical | outages | outage minutes | top cause |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for inc in ordered[:max_rows]:
            top = result.top_cause(inc.incident_id)
            cause = f"{top.category}: {_md(top.title)} ({top.score:.2f})" if top else "unknown"
            lines.append(
                f"| {inc.incident_id} | {_local(inc.onset, tz)} | {_local(inc.end, tz)} "
                f"| {len(inc.services_affected)} | {len(inc.critical_services)} | {inc.outage_count} "
                f"| {_minutes(inc.downtime_s)} | {cause} |"
            )
        if len(ordered) > max_rows:
            lines.append(f"\n… and {len(ordered) - max_rows} more in incidents.parquet (by outage minutes).")
    else:
        lines.append("No incident.")
    worst = sorted(
        (a for a in result.availability if a.downtime_s > 0), key=lambda a: (a.availability, a.selection)
    )
    lines += ["", "## Least available services", ""]
    if worst:
        lines += ["| service | availability | outages | outage minutes |", "| --- | ---: | ---: | ---: |"]
        for a in worst[:max_rows]:
            lines.append(
                f"| {a.selection.removeprefix('service=')} | {a.percent} | {a.outage_count} "
                f"| {_minutes(a.downtime_s)} |"
            )
    else:
        lines.append(f"Every service with check states was up all the time ({len(result.availability)}).")
    return "\n".join(lines) + "\n"


def _md(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")
