"""Step 2b — check states become outage intervals.

A check's state holds from the row that reports it until the next row of
the same (service, check).  An **outage** is a maximal run of rows in a *bad*
state:

* ``CRITICAL``, ``DOWN``, ``UNREACHABLE`` (Nagios/Icinga service and host
  states) — ``external=False``;
* ``down`` (an external up/down probe such as Pingdom) — ``external=True``.

It ends at the first following row in any other state (``OK``, ``WARNING``,
``UNKNOWN``, ``up`` …); with no such row before the data cut-off it is still
open (``end=None``).  Flapping stays as separate outages: grouping runs of
short outages is the incidents step's job.  ``state`` is the state of the
run's first row.

Nagios SOFT states count like HARD ones by default (the first failed attempt
is the earliest evidence); pass ``hard_only=True`` to ignore SOFT rows.

Computed in DuckDB with window functions (gaps-and-islands), not in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from whatchanged.engine.model import Outage
from whatchanged.engine.snapshot import Snapshot

BAD_STATES = ("CRITICAL", "DOWN", "UNREACHABLE", "down")
EXTERNAL_STATES = ("up", "down")


def find_outages(
    con: Snapshot,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    services: Sequence[str] | None = None,
    checks: Sequence[str] | None = None,
    until: datetime | None = None,
    hard_only: bool = False,
) -> list[Outage]:
    """Outages overlapping ``[start, end)`` (either bound may be None), oldest first.

    ``until`` is the data cut-off: rows at or after it are ignored (online
    analysis at time ``until``); None uses every row.
    """
    where = ["TRUE"]
    args: dict[str, Any] = {"bad": list(BAD_STATES)}
    if until is not None:
        where.append("ts < $until")
        args["until"] = until
    if services is not None:
        where.append("list_contains($services, service)")
        args["services"] = list(services)
    if checks is not None:
        where.append('list_contains($checks, "check")')
        args["checks"] = list(checks)
    if hard_only:
        where.append("(state_type IS NULL OR upper(state_type) <> 'SOFT')")
    overlap = ["TRUE"]
    if start is not None:
        overlap.append("(o_end IS NULL OR o_end > $start)")
        args["start"] = start
    if end is not None:
        overlap.append("o_start < $end")
        args["end"] = end
    sql = f"""
        WITH s AS (
            SELECT service, "check", ts, state, source,
                   list_contains($bad, state) AS bad
            FROM (SELECT service, "check", ts, state, source,
                         row_number() OVER (PARTITION BY service, "check", ts
                                            ORDER BY list_contains($bad, state) DESC, state) AS k
                  FROM states WHERE {" AND ".join(where)})
            WHERE k = 1
        ), g AS (
            SELECT *, sum(CASE WHEN bad IS DISTINCT FROM prev THEN 1 ELSE 0 END)
                      OVER (PARTITION BY service, "check" ORDER BY ts) AS island
            FROM (SELECT *, lag(bad) OVER (PARTITION BY service, "check" ORDER BY ts) AS prev FROM s)
        ), i AS (
            SELECT service, "check", island, bool_or(bad) AS bad, min(ts) AS o_start,
                   arg_min(state, ts) AS state, arg_min(source, ts) AS source
            FROM g GROUP BY service, "check", island
        ), o AS (
            SELECT *, lead(o_start) OVER (PARTITION BY service, "check" ORDER BY island) AS o_end FROM i
        )
        SELECT service, "check", o_start, o_end, state, source FROM o
        WHERE bad AND {" AND ".join(overlap)}
        ORDER BY o_start, service, "check"
    """
    rows = con.execute(sql, args).fetchall()
    return [
        Outage(
            service=str(svc),
            check=str(chk),
            start=o_start,
            end=o_end,
            state=str(state),
            source=str(source) if source is not None else "",
            external=state in EXTERNAL_STATES,
        )
        for svc, chk, o_start, o_end, state, source in rows
    ]


def merge_intervals(
    intervals: Sequence[tuple[datetime, datetime]], *, gap_s: float = 0.0
) -> list[tuple[datetime, datetime]]:
    """Union of intervals; neighbours closer than ``gap_s`` are joined (``gap_s=0``: touching only)."""
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if out and (a - out[-1][1]).total_seconds() <= gap_s:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def clip(
    intervals: Sequence[tuple[datetime, datetime]], lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime]]:
    """Intervals cut to ``[lo, hi)``; empty ones dropped."""
    return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]


def total_s(intervals: Sequence[tuple[datetime, datetime]]) -> float:
    return sum((b - a).total_seconds() for a, b in intervals)
