"""``POST /incidents/{incident_id}/feedback``: a responder's verdict, appended to ``feedback``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyarrow as pa
from fastapi import APIRouter

from whatchanged.api.deps import (
    WRITE_LOCK,
    JsonBodyDep,
    ReadingDep,
    WarehouseDep,
    WriterDep,
    validate_body,
)
from whatchanged.api.models import FeedbackIn, FeedbackOut
from whatchanged.api.problems import FieldError, ProblemError, found_repr, problem_responses
from whatchanged.api.routes.incidents import IncidentId, incident_by_id
from whatchanged.engine.catalog import change_stored
from whatchanged.engine.warehouse import FEEDBACK

router = APIRouter(tags=["incidents"])


@router.post(
    "/incidents/{incident_id}/feedback",
    operation_id="create_feedback",
    summary="Record the confirmed cause of an incident",
    status_code=201,
    response_model=FeedbackOut,
    responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 503, 500),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeedbackIn"}}},
        },
    },
)
def create_feedback(
    writer: WriterDep,
    body: JsonBodyDep,
    reading: ReadingDep,
    warehouse: WarehouseDep,
    incident_id: IncidentId,
) -> FeedbackOut:
    """Append a responder's verdict (the change that caused the incident and/or its cause class,
    a comment, who says so) to the warehouse's `feedback` table; fitted ranking weights learn
    from these.  Needs a bearer token."""
    verdict = validate_body(FeedbackIn, body)
    con = reading.db
    incident_by_id(reading, incident_id)  # 404 when unknown
    if verdict.cause_change_id is not None and not change_stored(con, verdict.cause_change_id):
        raise ProblemError(
            422,
            f"cause_change_id: no change {verdict.cause_change_id!r} is stored",
            slug="invalid-body",
            errors=[
                FieldError(
                    field="body.cause_change_id",
                    expected="the change_id of a stored change (GET /changes)",
                    found=found_repr(verdict.cause_change_id),
                )
            ],
        )
    out = FeedbackOut(
        feedback_id=uuid.uuid4().hex,
        incident_id=incident_id,
        cause_change_id=verdict.cause_change_id,
        category=verdict.category,
        comment=verdict.comment,
        author=verdict.author or writer,
        created=datetime.now(UTC),
    )
    table = pa.Table.from_pylist([out.model_dump()], schema=FEEDBACK)
    with WRITE_LOCK:
        warehouse.commit({"feedback": table}, source=f"api:feedback:{writer}")
    return out
