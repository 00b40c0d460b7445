"""``GET /fate``: failure domains and the redundancy groups whose members share one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from whatchanged.api.deps import NameQuery, ReadingDep
from whatchanged.api.models import FateOut
from whatchanged.api.problems import problem_responses
from whatchanged.engine.fate import fate_report
from whatchanged.present.shapes import fate as fate_shape

router = APIRouter(tags=["fate"])


@router.get(
    "/fate",
    operation_id="get_fate",
    summary="Failure domains and shared fate",
    response_model=FateOut,
    responses=problem_responses(404, 422, 503, 500),
)
def get_fate(
    reading: ReadingDep,
    group: Annotated[NameQuery, Query(description="Only this redundancy group.")] = None,
) -> dict[str, Any]:
    """The failure domains of the inventory (datacenters, switches, racks, hosts: one fault or
    one maintenance there reaches every service in it) and, for each redundancy group, the
    domains where all its members sit together — no redundancy against a fault there."""
    key = ("fate", reading.db.data_version(("services",)), group)
    data: dict[str, Any] = reading.memo.get(key, lambda: fate_shape(fate_report(reading.db, group=group)))
    return data
