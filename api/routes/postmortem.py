"""``GET /incidents/{incident_id}/postmortem``: the draft account of an incident (the same engine
calls as ``whatchanged postmortem``), as JSON, Markdown or HTML."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from whatchanged.api.deps import ReadingDep, SettingsDep, TzQuery, bad_param, check_tz
from whatchanged.api.models import PostmortemOut
from whatchanged.api.problems import problem_responses
from whatchanged.api.routes.incidents import IncidentId, incident_by_id
from whatchanged.dashboards.postmortem import html_document, markdown
from whatchanged.engine.postmortem import build_postmortem
from whatchanged.engine.rank import model_key
from whatchanged.present.postmortem import languages, postmortem_document

router = APIRouter(tags=["incidents"])

MEDIA = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


@router.get(
    "/incidents/{incident_id}/postmortem",
    operation_id="get_postmortem",
    summary="The postmortem draft of an incident",
    response_model=PostmortemOut,
    responses={
        200: {
            "description": "The draft: JSON (`format=json`, the source of truth), Markdown or HTML.",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        **problem_responses(404, 422, 503, 500),
    },
)
def get_postmortem(
    request: Request,
    reading: ReadingDep,
    settings: SettingsDep,
    incident_id: IncidentId,
    tz: TzQuery = None,
    lang: Annotated[
        str,
        Query(
            min_length=2, max_length=8, description="Language of the text: one catalogue file each (en, fr)."
        ),
    ] = "en",
    fmt: Annotated[
        Literal["json", "md", "html"],
        Query(
            alias="format", description="json (facts and traced sentences), md or html (rendered from it)."
        ),
    ] = "json",
    audience: Annotated[
        Literal["team", "customers"],
        Query(description="team: the postmortem; customers: the status-page update and a Statuspage body."),
    ] = "team",
) -> Any:
    """Summary, impact, timeline, cause with evidence, classes ruled out, related incidents and
    what would have helped — or, for customers, what happened, since when, what is being done
    and the next update.  Every figure is a field of the JSON form's `facts`."""
    check_tz(tz)
    if lang not in languages():
        raise bad_param("lang", f"lang: no catalogue for {lang!r}", lang, f"one of {', '.join(languages())}")
    if tz:
        settings = settings.model_copy(update={"tz": tz})
    incident = incident_by_id(reading, incident_id)
    con, zone = reading.db, settings.tz
    key = (
        "postmortem",
        reading.db.version,
        model_key(settings.home),
        incident.incident_id,
        zone,
        lang,
        audience,
    )
    doc: dict[str, Any] = reading.memo.get(
        key,
        lambda: postmortem_document(
            build_postmortem(con, incident, settings=settings), lang=lang, tz=zone, audience=audience
        ),
    )
    if fmt == "json":  # the form as built, the same bytes the CLI prints (no model defaults added)
        return JSONResponse(doc)
    base = str(request.base_url).rstrip("/")
    body = markdown(doc, base_url=base) if fmt == "md" else html_document(doc, base_url=base)
    return Response(body, media_type=MEDIA[fmt])
