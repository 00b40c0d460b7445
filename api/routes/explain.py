"""``GET /explain``: what changed at a given time (same engine call as ``whatchanged explain``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from whatchanged.api.deps import ConDep, SettingsDep, check_tz, engine, parse_time
from whatchanged.api.models import ExplanationOut
from whatchanged.api.problems import problem_responses

router = APIRouter(tags=["explain"])

AtQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        description=(
            "The time to explain: ISO 8601 with an offset (`2010-11-17T19:23:00+01:00`), epoch seconds, "
            "or a local time (`2010-11-17 19:23`, `19:23` = that time on the latest day with data) "
            "together with `tz`."
        ),
        examples=["2010-11-17T19:23:00+01:00"],
    ),
]
TzQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="IANA zone for times without an offset, and for the times in the answer.",
        examples=["Europe/Paris"],
    ),
]


@router.get(
    "/explain",
    operation_id="explain_at",
    summary="What changed at this time?",
    response_model=ExplanationOut,
    responses=problem_responses(422, 501, 503, 500),
)
def explain_at(con: ConDep, settings: SettingsDep, at: AtQuery, tz: TzQuery = None) -> dict[str, Any]:
    """The incident under way at `at` (if any), its candidate causes ranked with evidence for and
    against, the cause classes ruled out and why, and the responders' reactions (restarts …)."""
    check_tz(tz)
    when = parse_time(at, name="at", tz=tz, con=con)
    if tz:  # evidence sentences in the zone asked for, too
        settings = settings.model_copy(update={"tz": tz})
    explanation = engine("explain", "explain_at")(con, when, settings=settings)
    result: dict[str, Any] = engine("explain", "explanation_json")(explanation, tz=settings.tz)
    return result
