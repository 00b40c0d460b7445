"""``GET /services``: the monitored inventory, filtered and paginated."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from whatchanged.api.deps import DbDep, NameQuery
from whatchanged.api.models import ServicePage
from whatchanged.api.problems import problem_responses
from whatchanged.engine.catalog import services_page

router = APIRouter(tags=["services"])


@router.get(
    "/services",
    operation_id="list_services",
    summary="The monitored services",
    response_model=ServicePage,
    responses=problem_responses(422, 503, 500),
)
def list_services(
    con: DbDep,
    datacenter: Annotated[
        NameQuery, Query(description="Only services in this datacenter (e.g. P19).")
    ] = None,
    app: Annotated[NameQuery, Query(description="Only services of this application.")] = None,
    kind: Annotated[
        NameQuery, Query(description="Only services of this kind (site, backoffice, switch …).")
    ] = None,
    switch: Annotated[NameQuery, Query(description="Only services behind this switch.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Index of the first item.")] = 0,
) -> dict[str, Any]:
    """Services of the inventory matching every filter given, ordered by name."""
    given = {"datacenter": datacenter, "app": app, "kind": kind, "switch": switch}
    total, rows = services_page(con, given, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "items": rows}
