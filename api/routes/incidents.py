"""``GET /incidents`` (paginated) and ``GET /incidents/{incident_id}`` (with ranked causes)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from whatchanged.api.deps import (
    Reading,
    ReadingDep,
    SettingsDep,
    TimeQuery,
    TzQuery,
    bad_param,
    check_tz,
    parse_time,
)
from whatchanged.api.models import ExplanationOut, IncidentPage
from whatchanged.api.problems import problem_responses
from whatchanged.engine.explain import explain_incident
from whatchanged.engine.extent import observed_range
from whatchanged.engine.incidents import find_incidents, overlapping
from whatchanged.engine.incidents import get_incident as find_incident
from whatchanged.engine.model import Incident
from whatchanged.engine.rank import model_key
from whatchanged.engine.timeparse import incident_onset
from whatchanged.present.shapes import explanation, incident_page

router = APIRouter(tags=["incidents"])

#: Longest range one request may scan for incidents (detection runs over all of it).
MAX_RANGE = timedelta(days=31)

IncidentId = Annotated[
    str,
    Path(min_length=1, max_length=200, description="An incident id from `GET /incidents`."),
]


def resolve_range(
    con: Any,
    start_text: str | None,
    end_text: str | None,
    tz: str | None,
    *,
    max_range: timedelta = MAX_RANGE,
) -> tuple[datetime, datetime] | None:
    """(start, end) from ``from``/``to``, defaulting to the data's range; None when there is no data."""
    check_tz(tz)
    start = parse_time(start_text, name="from", tz=tz, con=con) if start_text else None
    end = parse_time(end_text, name="to", tz=tz, con=con) if end_text else None
    if start is None or end is None:
        span = observed_range(con)
        if span is None:
            return None
        lo, hi = span
        end = end or hi + timedelta(seconds=1)
        start = start or max(lo, end - max_range)
    if end <= start:
        raise bad_param(
            "to",
            f"to ({end.isoformat()}) is not after from ({start.isoformat()})",
            end_text,
            "a time after from",
        )
    if end - start > max_range:
        raise bad_param(
            "to",
            f"from → to spans {end - start}, more than {max_range.days} days",
            end_text,
            f"at most {max_range.days} days after from",
        )
    return start, end


@router.get(
    "/incidents",
    operation_id="list_incidents",
    summary="Incidents in a time range",
    response_model=IncidentPage,
    responses=problem_responses(422, 503, 500),
)
def list_incidents(
    reading: ReadingDep,
    settings: SettingsDep,
    start: Annotated[
        TimeQuery,
        Query(
            alias="from",
            description="Start of the range (same formats as `at` of /explain); default: the data's start, at most 31 days before `to`.",
        ),
    ] = None,
    end: Annotated[
        TimeQuery, Query(alias="to", description="End of the range; default: the end of the data.")
    ] = None,
    tz: TzQuery = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Index of the first item.")] = 0,
) -> dict[str, Any]:
    """Incidents whose onset lies in the range, oldest first (without their outage lists:
    `GET /incidents/{incident_id}` has them).  Times in `tz` (default: the server's
    configured zone, as in every answer and in `whatchanged incidents`)."""
    con = reading.db
    span = resolve_range(con, start, end, tz)
    found: list[Incident] = []
    if span:
        found = reading.by_data(
            ("find_incidents", span),
            lambda cur: find_incidents(cur, span[0], span[1]),
            question=("find_incidents", start, end, tz),
        )
    return incident_page(found, tz=tz or settings.tz, limit=limit, offset=offset)


@router.get(
    "/incidents/{incident_id}",
    operation_id="get_incident",
    summary="One incident and its ranked causes",
    response_model=ExplanationOut,
    responses=problem_responses(404, 422, 503, 500),
)
def get_incident(
    reading: ReadingDep, settings: SettingsDep, incident_id: IncidentId, tz: TzQuery = None
) -> dict[str, Any]:
    """The incident with its outages and anomalies, its candidate causes ranked with evidence,
    the cause classes ruled out, and the reactions — the same shape as `GET /explain`."""
    check_tz(tz)
    if tz:
        settings = settings.model_copy(update={"tz": tz})
    con, memo, tz = reading.db, reading.memo, settings.tz
    incident = incident_by_id(reading, incident_id)
    key = ("explain", reading.db.version, model_key(settings.home), incident.incident_id, None, tz)
    result: dict[str, Any] = memo.get(
        key,
        lambda: explanation(
            explain_incident(con, incident, settings=settings, overlapping=overlapping(con, incident)), tz=tz
        ),
    )
    return result


def incident_by_id(reading: Reading, incident_id: str) -> Incident:
    """``get_incident``, cached until services, metrics or states change (NotFoundError → 404)."""
    incident_onset(incident_id)  # a NotFoundError (404) for an id that names no possible time
    return reading.by_data(("get_incident", incident_id), lambda cur: find_incident(cur, incident_id))
