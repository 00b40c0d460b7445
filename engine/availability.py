"""Availability: the share of time a check, a service or a group was up.

Definitions (over ``[start, end)``, ``T = end - start``):

* the **checks** measured: for the selection, the external up/down probe
  checks (state values ``up``/``down``, e.g. Pingdom) if the selection has
  any, else its Nagios-style checks (``source="nagios"`` in the result);
* **down** time: the union of the outage intervals
  (:func:`whatchanged.engine.outages.find_outages`) of those checks, cut to
  the range — for a service or a group the selection is down when *any* of
  its checks is down; ``outage_count`` is the number of merged intervals;
* **planned maintenance** (``exclude_planned=True``): windows of ``changes``
  of kind ``maintenance``, not cancelled, whose scope resolves to one of the
  selected services (:func:`whatchanged.engine.changes.resolve_scope`, with
  the aliases passed: the matcher ``explain`` uses), windows as updated.  Their union ``M`` (cut to the
  range) is removed from both the period and the down time:
  ``availability = 1 - (D - |D ∩ M|) / (T - |M|)``.  With
  ``exclude_planned=False`` (default, what a prober reports)
  ``availability = 1 - D / T``.

Selections: ``service=`` one service; ``check=`` one check name (on every
service that has it); ``group=`` a value of the inventory's ``datacenter``,
``app`` or ``kind`` column, or a comma-separated list of such values and/or
service names (the services matching any of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from whatchanged.engine.changes import Aliases, list_changes
from whatchanged.engine.errors import ConfigError, NotFoundError
from whatchanged.engine.outages import EXTERNAL_STATES, clip, find_outages, merge_intervals, total_s
from whatchanged.engine.snapshot import Snapshot


@dataclass(frozen=True)
class Availability:
    """Up time of a selection over a range."""

    selection: str  # e.g. "service=www", "check=pingdom-home", "group=P19"
    source: str  # "external" (up/down probes) or "nagios"
    start: datetime
    end: datetime
    checks: tuple[str, ...]  # "service/check" measured
    period_s: float  # T, minus planned maintenance when excluded
    downtime_s: float  # D, minus its overlap with planned maintenance when excluded
    outage_count: int
    planned_s: float  # maintenance time inside the range (0 unless excluded)
    exclude_planned: bool
    availability: float  # fraction in [0, 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (datetimes as ISO 8601), with ``percent`` added."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        out["checks"] = list(self.checks)
        out["percent"] = self.percent
        return out

    @property
    def percent(self) -> str:
        """``99.98%``: two decimals, rounded down so an outage never shows as 100.00%."""
        value = int(self.availability * 10000) / 100
        return f"{value:.2f}%"


def _services(con: Snapshot) -> dict[str, dict[str, Any]]:
    rel = con.sql("SELECT service, kind, datacenter, rack, switch, host, app FROM services")
    cols = rel.columns
    return {str(r[0]): dict(zip(cols, r, strict=True)) for r in rel.fetchall()}


def select_services(con: Snapshot, group: str) -> list[str]:
    """Services of a group: inventory datacenter/app/kind values or service names, comma-separated."""
    wanted = {g.strip() for g in group.split(",") if g.strip()}
    inv = _services(con)
    chosen = [
        s
        for s, row in inv.items()
        if s in wanted or any(row.get(c) in wanted for c in ("datacenter", "app", "kind"))
    ]
    return sorted(chosen)


def _checks(con: Snapshot, services: Iterable[str] | None, check: str | None) -> list[tuple[str, str, bool]]:
    where: list[str] = ["TRUE"]
    args: dict[str, Any] = {}
    if services is not None:
        where.append("list_contains($services, service)")
        args["services"] = list(services)
    if check is not None:
        where.append('"check" = $check')
        args["check"] = check
    rows = con.execute(
        f'SELECT service, "check", bool_and(list_contains($ext, state)) FROM states '
        f'WHERE {" AND ".join(where)} GROUP BY service, "check" ORDER BY 1, 2',
        {**args, "ext": list(EXTERNAL_STATES)},
    ).fetchall()
    return [(str(s), str(c), bool(e)) for s, c, e in rows]


def maintenance_windows(
    con: Snapshot,
    services: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    aliases: Aliases | None = None,
) -> list[tuple[datetime, datetime]]:
    """Merged windows (as updated) of non-cancelled maintenance whose scope resolves to any of
    ``services`` — the one scope matcher, :func:`whatchanged.engine.changes.resolve_scope`,
    with the aliases in force — cut to the range."""
    wanted = set(services)
    windows = [
        (c.start, c.end)
        for c in list_changes(con, start=start, end=end, kind="maintenance", aliases=aliases)
        if not c.cancelled and c.end is not None and c.end > start and wanted & set(c.resolved_services)
    ]
    merged: list[tuple[datetime, datetime]] = clip(merge_intervals(windows), start, end)
    return merged


def availability(
    con: Snapshot,
    start: datetime,
    end: datetime,
    *,
    service: str | None = None,
    check: str | None = None,
    group: str | None = None,
    exclude_planned: bool = False,
    aliases: Aliases | None = None,
) -> Availability:
    """Availability of one service, one check or a group (exactly one of them) over ``[start, end)``."""
    given = [(k, v) for k, v in (("service", service), ("check", check), ("group", group)) if v]
    if len(given) != 1:
        raise ConfigError("availability: give exactly one of --service, --check or --group")
    if end <= start:
        raise ConfigError(
            f"availability: --to ({end.isoformat()}) must be after --from ({start.isoformat()})"
        )
    kind, value = given[0]
    services: list[str] | None
    if kind == "service":
        services = [value]
    elif kind == "group":
        services = select_services(con, value)
        if not services:
            raise NotFoundError(
                f"group {value!r}: no service has this datacenter, app, kind or name in the inventory"
            )
    else:
        services = None
    checks = _checks(con, services, check if kind == "check" else None)
    if not checks:
        raise NotFoundError(f"{kind} {value!r}: no check states in the warehouse")
    external = [c for c in checks if c[2]]
    measured = external or checks
    outages = find_outages(
        con,
        start,
        end,
        services=sorted({s for s, _, _ in measured}),
        checks=sorted({c for _, c, _ in measured}),
    )
    pairs = {(s, c) for s, c, _ in measured}
    down = clip(
        merge_intervals([(o.start, o.end or end) for o in outages if (o.service, o.check) in pairs]),
        start,
        end,
    )
    period = (end - start).total_seconds()
    downtime = total_s(down)
    planned = 0.0
    if exclude_planned:
        maint = maintenance_windows(con, sorted({s for s, _, _ in measured}), start, end, aliases=aliases)
        planned = total_s(maint)
        overlap = sum(total_s(clip(down, a, b)) for a, b in maint)
        downtime -= overlap
        period -= planned
    frac = 1.0 - downtime / period if period > 0 else 1.0
    return Availability(
        selection=f"{kind}={value}",
        source="external" if external else "nagios",
        start=start,
        end=end,
        checks=tuple(f"{s}/{c}" for s, c, _ in measured),
        period_s=period,
        downtime_s=downtime,
        outage_count=len(down),
        planned_s=planned,
        exclude_planned=exclude_planned,
        availability=frac,
    )
