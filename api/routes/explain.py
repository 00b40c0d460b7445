"""``GET /explain``: what changed at a given time (same engine call as ``whatchanged explain``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from whatchanged.api.deps import AtQuery, Reading, ReadingDep, SettingsDep, TzQuery, check_tz, parse_time
from whatchanged.api.models import ExplanationOut
from whatchanged.api.problems import problem_responses
from whatchanged.engine.explain import explain_at as explain_at_engine
from whatchanged.engine.explain import explain_incident
from whatchanged.engine.incidents import incidents_at
from whatchanged.engine.rank import model_key
from whatchanged.engine.settings import Settings
from whatchanged.present.shapes import explanation

router = APIRouter(tags=["explain"])


@router.get(
    "/explain",
    operation_id="explain_at",
    summary="What changed at this time?",
    response_model=ExplanationOut,
    responses=problem_responses(422, 503, 500),
)
def explain_at(reading: ReadingDep, settings: SettingsDep, at: AtQuery, tz: TzQuery = None) -> dict[str, Any]:
    """The incident under way at `at` (if any), its candidate causes ranked with evidence for and
    against, the cause classes ruled out and why, and the responders' reactions (restarts …)."""
    check_tz(tz)
    when = parse_time(at, name="at", tz=tz, con=reading.db)
    if tz:  # evidence sentences in the zone asked for, too
        settings = settings.model_copy(update={"tz": tz})
    return explain_cached(reading, when, settings)


def explain_cached(reading: Reading, when: datetime, settings: Settings) -> dict[str, Any]:
    """``explain_at`` with its two costs cached: incident detection until services, metrics or
    states change, and the ranking until anything is committed."""
    con, memo, tz = reading.db, reading.memo, settings.tz
    incident, overlapping = reading.by_data(("incidents_at", when), lambda cur: incidents_at(cur, when))
    if incident is None:  # the answer does not depend on the changes
        key: tuple[Any, ...] = ("explain_none", reading.db.data_version(), model_key(settings.home), when, tz)
        none: dict[str, Any] = memo.get(
            key, lambda: explanation(explain_at_engine(con, when, settings=settings), tz=tz)
        )
        return none
    key = ("explain", reading.db.version, model_key(settings.home), incident.incident_id, when, tz)
    ranked: dict[str, Any] = memo.get(
        key,
        lambda: explanation(
            explain_incident(con, incident, settings=settings, at=when, overlapping=overlapping), tz=tz
        ),
    )
    return ranked
