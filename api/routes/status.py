"""``GET /status`` (what the warehouse holds) and ``GET /healthz`` (liveness)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from whatchanged.api.deps import ReaderDep, WarehouseDep
from whatchanged.api.models import HealthOut, StatusOut
from whatchanged.api.problems import problem_responses

router = APIRouter(tags=["status"])


@router.get(
    "/status",
    operation_id="get_status",
    summary="What the warehouse holds",
    response_model=StatusOut,
    responses=problem_responses(503, 500),
)
def get_status(warehouse: WarehouseDep) -> dict[str, Any]:
    """Rows per table, services, time range and commits, and the health of each live source
    (`whatchanged collect`) — what `whatchanged status` prints."""
    from whatchanged.engine.live import sources_status

    status: dict[str, Any] = warehouse.status()
    status["sources"] = sources_status(warehouse)
    return status


@router.get(
    "/healthz",
    operation_id="healthz",
    summary="Liveness",
    response_model=HealthOut,
    responses=problem_responses(500),
)
def healthz(request: Request, reader: ReaderDep) -> HealthOut:
    """Answers while the process is up; says whether the warehouse exists, how many commits it
    has and whether the start-up analysis is done."""
    wh = reader.warehouse
    commits = len(list((wh.home / "_commits").glob("*.json"))) if wh.exists else 0
    analysis = getattr(request.app.state, "analysis", "none")
    return HealthOut.model_validate({"warehouse": wh.exists, "commits": commits, "analysis": analysis})
