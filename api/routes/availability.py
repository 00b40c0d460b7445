"""``GET /availability``: availability over a range, like the external prober reports it."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from whatchanged.api.deps import NameQuery, ReadingDep, SettingsDep, TimeQuery, TzQuery, bad_param
from whatchanged.api.models import AvailabilityOut
from whatchanged.api.problems import ProblemError, problem_responses
from whatchanged.api.routes.changes import cached_aliases
from whatchanged.api.routes.incidents import resolve_range
from whatchanged.engine.availability import availability
from whatchanged.engine.changes import aliases_path
from whatchanged.present.shapes import availability as availability_shape

router = APIRouter(tags=["availability"])


@router.get(
    "/availability",
    operation_id="get_availability",
    summary="Availability over a range",
    response_model=AvailabilityOut,
    responses=problem_responses(404, 422, 503, 500),
)
def get_availability(
    reading: ReadingDep,
    settings: SettingsDep,
    service: Annotated[
        NameQuery, Query(description="One service (give one of service, check, group).")
    ] = None,
    check: Annotated[NameQuery, Query(description="One check name, on every service that has it.")] = None,
    group: Annotated[
        NameQuery,
        Query(description="A datacenter, app or kind of the inventory, or service names, comma-separated."),
    ] = None,
    start: Annotated[
        TimeQuery, Query(alias="from", description="Start of the range; default: the data's start.")
    ] = None,
    end: Annotated[
        TimeQuery, Query(alias="to", description="End of the range; default: the end of the data.")
    ] = None,
    exclude_planned: Annotated[
        bool, Query(description="Leave out downtime inside planned maintenance windows.")
    ] = False,
    tz: TzQuery = None,
) -> dict[str, Any]:
    """Availability of exactly one of `service`, `check` or `group` over the range: down time is
    the union of its outages (external probes when it has any, else check states); with
    `exclude_planned`, maintenance windows covering it are taken out of period and down time."""
    given = [name for name, value in (("service", service), ("check", check), ("group", group)) if value]
    if len(given) != 1:
        raise bad_param(
            given[1] if len(given) > 1 else "service",
            f"give exactly one of service, check or group (found {', '.join(given) or 'none'})",
            ",".join(given) or None,
            "exactly one of service, check, group",
        )
    con = reading.db
    span = resolve_range(con, start, end, tz, max_range=timedelta(days=366))
    if span is None:
        raise ProblemError(404, "the warehouse holds no metrics or check states yet", slug="not-found")
    key = ("availability", reading.db.version, span, service, check, group, exclude_planned)

    def compute() -> dict[str, Any]:
        result = availability(
            con,
            span[0],
            span[1],
            service=service,
            check=check,
            group=group,
            exclude_planned=exclude_planned,
            aliases=cached_aliases(aliases_path(settings)) if exclude_planned else None,
        )
        return availability_shape(result)

    data: dict[str, Any] = reading.memo.get(key, compute)
    return data
