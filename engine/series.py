"""Series for display: what the dashboards draw that the analysis steps do not return.

Every function takes an explicit DuckDB connection (from
:meth:`whatchanged.engine.store.Store.snapshot`) and aware datetimes,
and returns plain pandas frames with tz-aware UTC ``ts`` columns or frozen
dataclasses.  Nothing here decides anything: detection, grouping and ranking
live in their own modules.

Output conventions:

* :func:`metric_series` → ``ts, value`` (one service, one metric, ``[start, end]``);
* :func:`baseline_band` → ``ts, expected, lower, upper``: the median and a
  robust spread (MAD × 1.4826) of the same time of day (UTC buckets of
  ``bucket_s``) over the ``days`` days before ``start``; a display aid, not
  the detector's baseline;
* :func:`check_intervals` → ``service, check, state, source, start, end``:
  runs of one state per check, clipped to ``[start, end]``;
* :func:`critical_by_group` → ``ts, group, critical, total``: per time step,
  how many services of each topology group (``datacenter / switch`` by
  default) had at least one check CRITICAL/DOWN/down, and how many services the
  group has — the aggregate a 1002-service fleet stays legible in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from whatchanged.engine.errors import ConfigError, NotFoundError
from whatchanged.engine.extent import data_range as data_range  # its home is extent; kept for callers
from whatchanged.engine.extent import first_row
from whatchanged.engine.model import Change
from whatchanged.engine.snapshot import Snapshot

#: States counted as "down" for the heat strip and the checks strip.
BAD_STATES = ("CRITICAL", "DOWN")
#: Topology columns of ``services`` a heat strip may be grouped by.
GROUP_COLUMNS = ("datacenter", "rack", "switch", "host", "app", "kind")
#: How far before ``start`` :func:`check_intervals` looks for the state in force.
STATE_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class ServiceInfo:
    """One row of the ``services`` view."""

    service: str
    kind: str | None
    datacenter: str | None
    rack: str | None
    switch: str | None
    host: str | None
    app: str | None
    critical: bool | None


def _check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ConfigError(f"series window: expected aware datetimes, found {start!r} … {end!r}")
    if end <= start:
        raise ConfigError(f"series window: expected start before end, found {start} … {end}")


def service_info(con: Snapshot, service: str) -> ServiceInfo:
    """The inventory row of ``service``; a service seen only in data gets an empty row.

    Raises NotFoundError when the service is neither in the inventory nor in
    any metric or state.
    """
    row = first_row(
        con,
        "SELECT service, kind, datacenter, rack, switch, host, app, critical FROM services WHERE service = ?",
        [service],
    )
    if row is not None:
        return ServiceInfo(*row)
    seen = first_row(
        con,
        "SELECT 1 FROM (SELECT service FROM metrics WHERE service = $s LIMIT 1) "
        "UNION ALL SELECT 1 FROM (SELECT service FROM states WHERE service = $s LIMIT 1)",
        {"s": service},
    )
    if seen is None:
        raise NotFoundError(f"service {service!r}: not in the inventory and no metric or state names it")
    return ServiceInfo(service, None, None, None, None, None, None, None)


def service_metrics(con: Snapshot, service: str) -> list[str]:
    """Names of the metrics stored for ``service``, sorted."""
    rows = con.execute(
        "SELECT DISTINCT metric FROM metrics WHERE service = ? ORDER BY metric", [service]
    ).fetchall()
    return [str(r[0]) for r in rows]


def service_range(con: Snapshot, service: str) -> tuple[datetime, datetime] | None:
    """First and last timestamp of any metric or state of ``service``."""
    row = first_row(
        con,
        "SELECT min(ts), max(ts) FROM (SELECT ts FROM metrics WHERE service = $s "
        "UNION ALL SELECT ts FROM states WHERE service = $s)",
        {"s": service},
    )
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


def metric_series(con: Snapshot, service: str, metric: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Samples of one metric of one service in ``[start, end]``: columns ``ts, value``."""
    _check_window(start, end)
    return con.execute(
        "SELECT ts, value FROM metrics WHERE service = ? AND metric = ? AND ts BETWEEN ? AND ? ORDER BY ts",
        [service, metric, start, end],
    ).df()


def baseline_band(
    con: Snapshot,
    service: str,
    metric: str,
    start: datetime,
    end: datetime,
    *,
    days: int = 7,
    bucket_s: int = 300,
    width: float = 3.0,
) -> pd.DataFrame:
    """Expected value and band for display: columns ``ts, expected, lower, upper``.

    For each ``bucket_s`` bucket of ``[start, end]``, the median of the same
    time-of-day bucket over the ``days`` days before ``start`` and
    ``median ± width × max(1.4826 × MAD, 1% of |median|)``.  Buckets with no
    history are absent (the figure then draws no band there).
    """
    _check_window(start, end)
    if days < 1 or bucket_s < 1:
        raise ConfigError(f"baseline_band: expected days ≥ 1 and bucket_s ≥ 1, found {days}, {bucket_s}")
    sql = """
    WITH hist AS (
        SELECT (epoch(ts)::BIGINT % 86400) // $bucket AS b, value
        FROM metrics
        WHERE service = $service AND metric = $metric AND value IS NOT NULL
          AND ts >= $start - to_days($days) AND ts < $start
    ),
    med AS (SELECT b, median(value) AS m FROM hist GROUP BY b),
    spread AS (
        SELECT h.b, any_value(m.m) AS m, median(abs(h.value - m.m)) AS mad
        FROM hist h JOIN med m USING (b) GROUP BY h.b
    ),
    grid AS (
        SELECT unnest(generate_series(time_bucket(to_seconds($bucket), $start), $end::TIMESTAMPTZ,
                                      to_seconds($bucket))) AS ts
    )
    SELECT g.ts, s.m AS expected,
           s.m - $width * greatest(1.4826 * s.mad, 0.01 * abs(s.m)) AS lower,
           s.m + $width * greatest(1.4826 * s.mad, 0.01 * abs(s.m)) AS upper
    FROM grid g JOIN spread s ON (epoch(g.ts)::BIGINT % 86400) // $bucket = s.b
    ORDER BY g.ts
    """
    return con.execute(
        sql,
        {
            "service": service,
            "metric": metric,
            "start": start,
            "end": end,
            "days": days,
            "bucket": bucket_s,
            "width": width,
        },
    ).df()


def check_intervals(
    con: Snapshot,
    start: datetime,
    end: datetime,
    *,
    service: str | None = None,
    checks: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Runs of one state per (service, check) overlapping ``[start, end]``, clipped to it.

    Columns ``service, check, state, source, start, end``.  A run lasts from
    its first result to the first result of the next state (or ``end``).
    State names are upper-cased (``down`` → ``DOWN``).
    """
    _check_window(start, end)
    where = ["ts < $end", "ts >= $start - to_days($lookback)"]
    params: dict[str, Any] = {"start": start, "end": end, "lookback": STATE_LOOKBACK.days}
    if service is not None:
        where.append("service = $service")
        params["service"] = service
    if checks:
        where.append('"check" IN (SELECT unnest($checks))')
        params["checks"] = list(checks)
    sql = f"""
    WITH s AS (
        SELECT service, "check", upper(state) AS state, source, ts
        FROM states WHERE {" AND ".join(where)}
    ),
    flagged AS (
        SELECT *, CASE WHEN state IS DISTINCT FROM lag(state) OVER w THEN 1 ELSE 0 END AS new_run
        FROM s WINDOW w AS (PARTITION BY service, "check" ORDER BY ts)
    ),
    runs AS (
        SELECT *, sum(new_run) OVER (PARTITION BY service, "check" ORDER BY ts) AS run FROM flagged
    ),
    grouped AS (
        SELECT service, "check", run, any_value(state) AS state, any_value(source) AS source,
               min(ts) AS run_start
        FROM runs GROUP BY service, "check", run
    ),
    bounded AS (
        SELECT *, coalesce(lead(run_start) OVER (PARTITION BY service, "check" ORDER BY run), $end)
                  AS run_end
        FROM grouped
    )
    SELECT service, "check", state, source,
           greatest(run_start, $start) AS start, least(run_end, $end) AS "end"
    FROM bounded WHERE run_end > $start
    ORDER BY service, "check", start
    """
    return con.execute(sql, params).df()


def critical_by_group(
    con: Snapshot,
    start: datetime,
    end: datetime,
    *,
    by: Sequence[str] = ("datacenter", "switch"),
    step_s: int = 60,
) -> pd.DataFrame:
    """Per ``step_s`` step and topology group: services with a check down, out of how many.

    Columns ``ts, group, critical, total``; ``group`` joins the ``by``
    columns with `` / `` (``P19 / sw-p19-a``); services absent from the
    inventory form the group ``(not in inventory)``.  Every group of the
    inventory appears at every step, with ``critical`` 0 when nothing was
    down, so the heat strip has no holes.
    """
    _check_window(start, end)
    bad = [c for c in by if c not in GROUP_COLUMNS]
    if not by or bad:
        raise ConfigError(f"critical_by_group: expected columns among {GROUP_COLUMNS}, found {list(by)}")
    if step_s < 1:
        raise ConfigError(f"critical_by_group: expected step_s ≥ 1, found {step_s}")
    label = " || ' / ' || ".join(f"coalesce({c}, '?')" for c in by)
    states = ", ".join(f"'{s}'" for s in BAD_STATES)
    sql = f"""
    WITH s AS (
        SELECT service, "check", upper(state) AS state, ts,
               lead(ts) OVER (PARTITION BY service, "check" ORDER BY ts) AS next_ts
        FROM states WHERE ts < $end AND ts >= $start - to_days($lookback)
    ),
    bad AS (
        SELECT service, ts AS b_start, coalesce(next_ts, $end) AS b_end
        FROM s WHERE state IN ({states}) AND coalesce(next_ts, $end) > $start
    ),
    grid AS (
        SELECT unnest(generate_series(time_bucket(to_seconds($step), $start), $end::TIMESTAMPTZ,
                                      to_seconds($step))) AS ts
    ),
    hits AS (
        SELECT DISTINCT g.ts, b.service FROM grid g JOIN bad b
        ON b.b_start < g.ts + to_seconds($step) AND b.b_end > g.ts
    ),
    groups AS (SELECT service, {label} AS grp FROM services),
    totals AS (SELECT grp, count(*) AS total FROM groups GROUP BY grp),
    counted AS (
        SELECT h.ts, coalesce(gr.grp, '(not in inventory)') AS grp, count(*) AS critical
        FROM hits h LEFT JOIN groups gr USING (service) GROUP BY ALL
    ),
    all_groups AS (
        SELECT grp FROM totals UNION SELECT DISTINCT grp FROM counted
    )
    SELECT g.ts, a.grp AS "group", coalesce(c.critical, 0)::BIGINT AS critical,
           coalesce(t.total, 0)::BIGINT AS total
    FROM grid g CROSS JOIN all_groups a
    LEFT JOIN counted c ON c.ts = g.ts AND c.grp = a.grp
    LEFT JOIN totals t ON t.grp = a.grp
    ORDER BY a.grp, g.ts
    """
    return con.execute(
        sql, {"start": start, "end": end, "step": step_s, "lookback": STATE_LOOKBACK.days}
    ).df()


def changes_touching(changes: Iterable[Change], info: ServiceInfo) -> list[Change]:
    """The changes whose resolved scope (:func:`whatchanged.engine.changes.resolve_scope`, the one
    matcher, aliases included) holds the service ``info`` describes."""
    return [c for c in changes if info.service in c.resolved_services]
