"""``GET /status`` (what the warehouse holds), ``GET /healthz`` (liveness) and ``GET /readyz``
(whether the server can answer questions)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request

from whatchanged.api.deps import ReaderDep, WarehouseDep
from whatchanged.api.models import HealthOut, ReadyOut, StatusOut
from whatchanged.api.problems import ProblemError, Viewer, problem_responses
from whatchanged.engine.catalog import open_views
from whatchanged.engine.errors import WhatchangedError
from whatchanged.engine.warehouse import TABLES
from whatchanged.present import shapes

router = APIRouter(tags=["status"])


@router.get(
    "/status",
    operation_id="get_status",
    summary="What the warehouse holds",
    response_model=StatusOut,
    responses=problem_responses(503, 500),
)
def get_status(request: Request, warehouse: WarehouseDep) -> dict[str, Any]:
    """Rows per table, services, time range and commits, and the health of each live source
    (`whatchanged collect`) — what `whatchanged status` prints.
    `home` (the warehouse folder) is shown only to a client sending an API token."""
    from whatchanged.engine.live import sources_status

    return shapes.status(
        warehouse.status(), sources_status(warehouse), show_home=Viewer.of(request.scope).sees_paths
    )


@router.get(
    "/healthz",
    operation_id="healthz",
    summary="Liveness",
    response_model=HealthOut,
    responses=problem_responses(500),
)
def healthz(request: Request, reader: ReaderDep) -> HealthOut:
    """Answers while the process is up (a `stat` and a `listdir`, nothing read): whether the
    warehouse folder is initialised, how many manifests it holds, whether the start-up analysis
    is done.  Whether the server can answer questions is `/readyz`."""
    wh = reader.warehouse
    try:
        commits = sum(1 for n in os.listdir(wh.home / "_commits") if n.endswith(".json")) if wh.exists else 0
    except OSError:
        commits = 0
    analysis = getattr(request.app.state, "analysis", "none")
    return HealthOut.model_validate({"warehouse": wh.exists, "commits": commits, "analysis": analysis})


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness",
    response_model=ReadyOut,
    responses=problem_responses(503, 500),
)
def readyz(reader: ReaderDep) -> ReadyOut:
    """200 when questions can be answered: every manifest reads and parses, every file they
    name is there and the views open; else 503 (`warehouse-unavailable`) saying why, with
    `Retry-After`."""
    wh = reader.warehouse
    try:
        manifests = wh.manifests()
        named = [f for t in TABLES for f in wh.files(t, manifests)]
        missing = [f for f in named if not os.path.isfile(f)]
        if missing:
            raise ProblemError(
                503,
                f"{len(missing)} committed data file(s) are missing (run 'whatchanged doctor' on the server)",
                slug="warehouse-unavailable",
                headers={"Retry-After": "30"},
            )
        db = reader.snapshot()
        try:
            open_views(db, TABLES)
        finally:
            db.close()
    except (ProblemError, WhatchangedError):
        raise
    except Exception as exc:  # DuckDB cannot open a view: a corrupt or unreadable file
        raise ProblemError(
            503,
            f"the warehouse views do not open ({type(exc).__name__}; run 'whatchanged doctor' on the server)",
            slug="warehouse-unavailable",
            headers={"Retry-After": "30"},
        ) from None
    return ReadyOut(commits=len(manifests), files=len(named))
