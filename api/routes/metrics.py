"""``GET /metrics``: whatchanged's own health in the Prometheus text format.

::

    whatchanged_source_up{source="prom-p19",kind="prometheus"} 1
    whatchanged_source_last_success_timestamp_seconds{source="prom-p19",kind="prometheus"} 1.7e9
    whatchanged_source_lag_seconds{source="prom-p19",kind="prometheus"} 12.5
    whatchanged_source_consecutive_failures{source="prom-p19",kind="prometheus"} 0
    whatchanged_source_rows_added_total{source="prom-p19",kind="prometheus"} 17280
    whatchanged_warehouse_commits 42
    whatchanged_explain_duration_seconds_bucket{le="0.1"} 3  (… _sum, _count)

Source figures come from :func:`whatchanged.engine.live.sources_status` (the collector's health
file and the committed cursors); the explain histogram counts this process's ``GET /explain``
answers, measured by :class:`ExplainTimer`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from whatchanged.api.problems import problem_responses
from whatchanged.engine.live import sources_status
from whatchanged.engine.warehouse import Warehouse

router = APIRouter(tags=["status"])

EXPLAIN_PATH = "/api/v1/explain"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


#: the gauges of each live source (labels ``source`` and ``kind``): key → (name, help)
SOURCE_GAUGES = {
    "up": ("whatchanged_source_up", "1 when the source's last pull succeeded"),
    "last": (
        "whatchanged_source_last_success_timestamp_seconds",
        "Unix time of the source's last successful pull",
    ),
    "lag": ("whatchanged_source_lag_seconds", "Seconds since the source's last successful pull"),
    "fail": ("whatchanged_source_consecutive_failures", "Failed pulls since the last success"),
    "rows": ("whatchanged_source_rows_added_total", "Rows the source added to the warehouse, over its life"),
}


class _Sources(Collector):
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def collect(self) -> Any:
        status = sources_status(self.warehouse)
        fams = {
            key: GaugeMetricFamily(name, doc, labels=["source", "kind"])
            for key, (name, doc) in SOURCE_GAUGES.items()
        }
        for s in status:
            labels = [s["source"], s["kind"]]
            fams["up"].add_metric(labels, 1.0 if s["state"] == "ok" else 0.0)
            fams["fail"].add_metric(labels, float(s["consecutive_failures"]))
            fams["rows"].add_metric(labels, float(s["rows_added"]))
            if s["last_success"]:
                fams["last"].add_metric(labels, datetime.fromisoformat(s["last_success"]).timestamp())
                fams["lag"].add_metric(labels, float(s["seconds_since_success"]))
        yield from fams.values()
        commits = GaugeMetricFamily("whatchanged_warehouse_commits", "Commits in the warehouse")
        home = self.warehouse.home / "_commits"
        commits.add_metric([], float(len(list(home.glob("*.json")))) if home.is_dir() else 0.0)
        yield commits


def registry_for(warehouse: Warehouse) -> tuple[CollectorRegistry, Histogram]:
    """A registry of its own per app (tests build several apps in one process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Sources(warehouse))
    hist = Histogram(
        "whatchanged_explain_duration_seconds",
        "Time to answer GET /api/v1/explain",
        buckets=BUCKETS,
        registry=registry,
    )
    return registry, hist


class ExplainTimer:
    """ASGI middleware: time every ``GET /api/v1/explain`` into the app's histogram."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != EXPLAIN_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            hist = getattr(scope["app"].state, "explain_histogram", None) if "app" in scope else None
            if hist is not None:
                hist.observe(time.perf_counter() - started)


def _registry(request: Request) -> CollectorRegistry:
    state = request.app.state
    if getattr(state, "metrics_registry", None) is None:
        state.metrics_registry, state.explain_histogram = registry_for(state.reader.warehouse)
    registry: CollectorRegistry = state.metrics_registry
    return registry


def install(app: Any) -> None:
    """Create the app's registry now (so explain latencies count from the first request)."""
    app.state.metrics_registry, app.state.explain_histogram = registry_for(app.state.reader.warehouse)
    app.add_middleware(ExplainTimer)


@router.get(
    "/metrics",
    operation_id="get_metrics",
    summary="whatchanged's own health for Prometheus",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"},
        **problem_responses(500),
    },
)
def get_metrics(request: Request) -> Response:
    """Per live source: up, last successful pull, lag, consecutive failures, rows added; the
    warehouse's commits; the latency histogram of `GET /api/v1/explain` in this process."""
    body = generate_latest(_registry(request))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
