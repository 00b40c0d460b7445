"""The HTTP API: :func:`create_app` builds the FastAPI application.

::

    ServerErrorMiddleware (Starlette)        last resort, never reached in practice
    └── SecurityHeadersMiddleware            nosniff, CSP, frame-ancestors, Referrer-Policy on every response
        └── CatchAllMiddleware               unexpected exception → 500 problem, logged
            └── BodyLimitMiddleware          > max_body_bytes (declared or streamed) → 413
                └── ExceptionMiddleware      ProblemError, WhatchangedError, validation → problem
                    └── routes/<resource>.py /api/v1/…

Everything a route needs comes from :mod:`whatchanged.api.deps`; every error
body from :func:`whatchanged.api.problems.problem`.  ``whatchanged serve``
runs this app under uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whatchanged.api import payloads
from whatchanged.api.deps import WarehouseReader
from whatchanged.api.problems import CatchAllMiddleware, FieldError, Problem, install_handlers, problem
from whatchanged.api.read_auth import ReadTokenMiddleware
from whatchanged.api.routes import (
    alerts,
    availability,
    changes,
    explain,
    fate,
    feedback,
    incidents,
    metrics,
    postmortem,
    services,
    status,
)
from whatchanged.dashboards import html, postmortem_page
from whatchanged.dashboards import pages as dashboard_pages
from whatchanged.dashboards.wiring import Wiring, get_wiring
from whatchanged.engine.detect import prepare_states
from whatchanged.engine.errors import WhatchangedError
from whatchanged.engine.extent import last_data_ts
from whatchanged.engine.incidents import find_incidents
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse

API_PREFIX = "/api/v1"
VERSION = "1"

DESCRIPTION = """\
What changed at 19:23?  Query the warehouse (explanations, changes, incidents,
availability, inventory) and send change events (deploys, maintenance) by webhook.

* Reads need no token.  Writes need `Authorization: Bearer <token>` with a token
  from `WHATCHANGED_API_TOKENS`; with none configured, writes are refused (403).
* Times: ISO 8601 **with an offset** (`2010-11-17T19:23:00+01:00`, `…Z`) or epoch
  seconds.  A time without an offset (`2010-11-17 19:23`, `19:23`) is accepted only
  together with `tz=` (an IANA zone); otherwise it is rejected with 422.
* Errors are `application/problem+json` (RFC 9457) with `type`, `title`, `status`,
  `detail`, `instance` and, for validation errors, `errors: [{field, expected, found}]`.
"""

TAGS = [
    {"name": "explain", "description": "What changed at a given time, ranked."},
    {"name": "changes", "description": "Change events: list them, or send them by webhook."},
    {"name": "incidents", "description": "Incidents found in the data, their causes, responders' feedback."},
    {"name": "availability", "description": "Availability over a range, like an external prober reports it."},
    {"name": "fate", "description": "Failure domains and the redundancy groups whose members share one."},
    {"name": "services", "description": "The monitored inventory."},
    {"name": "status", "description": "What the warehouse holds; liveness."},
]


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, whether declared or streamed.

    The body is read (and counted) before the app sees it, then replayed to the
    app; a chunked body is refused as soon as it grows past the limit.  Before
    answering 413 the rest of the body is read and dropped, up to
    ``drain_factor × max_bytes``, so that the client, still sending, gets the
    answer instead of a connection reset; a body declared larger than that is
    refused at once, without reading any of it.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, drain_factor: int = 4) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_max = max_bytes * drain_factor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > self.max_bytes:
            if declared <= self.drain_max:
                await self._drain(receive, 0)
            await self._refuse(scope, send, f"Content-Length {declared}")
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected before the body was complete
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            more = bool(message.get("more_body", False))
            if total > self.max_bytes:
                if more:
                    await self._drain(receive, total)
                await self._refuse(scope, send, f"more than {self.max_bytes} bytes streamed")
                return
            chunks.append(chunk)
            if not more:
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, seen: int) -> None:
        while seen <= self.drain_max:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, scope: Scope, send: Send, found: str) -> None:
        response = problem(
            413,
            f"the request body is larger than the limit of {self.max_bytes} bytes",
            instance=str(scope.get("path", "")),
            slug="payload-too-large",
            errors=[FieldError(field="body", expected=f"at most {self.max_bytes} bytes", found=found)],
            headers={"Connection": "close"},
        )

        async def no_more() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_more, send)


#: the Content-Security-Policy of the API and the dashboards: everything from this origin only;
#: the pages' one inline script (the plot loader) allowed by its hash; inline styles (the page's
#: ``<style>`` and plotly.js's own) allowed; no framing, no ``<base>``, no plugins
CSP = "; ".join(
    [
        "default-src 'none'",
        f"script-src 'self' {html.PLOT_LOADER_CSP_HASH}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
#: ``/docs`` and ``/redoc`` are FastAPI's pages, which load Swagger UI / ReDoc from a CDN and
#: start them with an inline script: allowed there only, still never in a frame
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https:; style-src 'self' 'unsafe-inline' https:; "
    "img-src 'self' data: https:; font-src 'self' https:; worker-src 'self' blob:; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    """Outermost: ``X-Content-Type-Options``, ``Referrer-Policy``, ``X-Frame-Options`` and a
    Content-Security-Policy on every response, errors included (a header the app set wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if scope.get("path") in DOCS_PATHS else CSP).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {name.lower() for name, _ in headers}
                for name, value in (*SECURITY_HEADERS, (b"content-security-policy", csp)):
                    if name not in have:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: ``WHATCHANGED_WARM=0``: no start-up analysis and no pages prepared in the background
WARM_ENV = "WHATCHANGED_WARM"
#: how often the warm-up thread looks for a new commit, and how many of the latest
#: incidents' pages it prepares after each
WARM_POLL_S = 5.0
WARM_PAGES = 5


def _warm_once(app: FastAPI, warehouse: Warehouse, settings: Settings) -> None:
    """Bring the day states up to date, then render the incident pages of the last day's
    incidents into the page cache: the responder who opens the incident happening now
    gets it at once."""
    con = warehouse.snapshot()
    try:
        prepare_states(con)
        last = last_data_ts(con)
        found = find_incidents(con, last - timedelta(days=1), last + timedelta(minutes=1)) if last else []
    finally:
        con.close()
    latest = sorted(found, key=lambda i: i.onset)[-WARM_PAGES:]

    async def render() -> None:
        # the app's own routes, in process (an ASGI transport runs no lifespan: no second warm-up)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://warm") as c:
            for inc in latest:
                # the link of the index page, as the browser sends it (the page cache key is the URL)
                await c.get(f"/dashboards/incidents/{inc.incident_id}?tz={settings.tz}")

    asyncio.run(render())
    app.state.analysis = "ready"
    app.state.warm_pages = [i.incident_id for i in latest]


def _warm(app: FastAPI, warehouse: Warehouse, settings: Settings, stop: threading.Event) -> None:
    """The warm-up thread: :func:`_warm_once` at start and after every commit of metrics or
    check states.  A failure only means that requests compute what they need themselves
    (``/healthz`` says so)."""
    seen: tuple[str, ...] | None = None
    while not stop.is_set():
        try:  # monitoring data only: a posted deploy does not move detection (pages are built on request)
            manifests = warehouse.manifests()
            key = tuple(warehouse.files("metrics", manifests) + warehouse.files("states", manifests))
        except (OSError, ValueError, WhatchangedError):
            key = ()
        if key != seen:
            seen = key
            try:
                _warm_once(app, warehouse, settings)
            except Exception:  # a warm-up must never take the server down
                app.state.analysis = "failed"
        stop.wait(WARM_POLL_S)


def create_app(settings: Settings) -> FastAPI:
    """The API over the warehouse at ``settings.home``."""
    reader = WarehouseReader(Warehouse(settings.home))
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:  # open the views now rather than on the first request
            if reader.warehouse.exists:
                reader.snapshot().close()
                if os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no"):
                    # the detection state and the latest incidents' pages, while the responder types
                    app.state.analysis = "running"
                    threading.Thread(
                        target=_warm, args=(app, reader.warehouse, settings, stop), daemon=True
                    ).start()
        except WhatchangedError:
            pass  # reported per request as 503 problems
        yield
        stop.set()
        reader.close()

    app = FastAPI(
        title="whatchanged",
        version=VERSION,
        summary="Root-cause correlation over monitoring data: what changed at 19:23?",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        separate_input_output_schemas=False,
    )
    app.state.settings = settings
    app.state.reader = reader
    # the dashboards are handed what they need; they never read app.state
    app.state.dashboards = wiring = Wiring(settings=settings, reader=reader)
    app.dependency_overrides[get_wiring] = lambda: wiring
    install_handlers(app)
    for module in (
        explain,
        changes,
        incidents,
        postmortem,
        feedback,
        availability,
        fate,
        services,
        status,
        alerts,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(dashboard_pages.router)
    app.include_router(postmortem_page.router)
    app.include_router(metrics.router)  # GET /metrics, where Prometheus looks
    metrics.install(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboards/")

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.read_token_list:  # WHATCHANGED_READ_TOKENS: reads behind a token (write tokens read too)
        app.add_middleware(ReadTokenMiddleware, tokens=settings.read_token_list + settings.token_list)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            separate_input_output_schemas=False,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        documented: tuple[type[BaseModel], ...] = (Problem, FieldError, *payloads.REQUEST_BODY_MODELS)
        for model in documented:
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(js.pop("$defs", {}))
            components[model.__name__] = js
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn's ``--factory`` (multi-worker ``serve``): settings from the environment."""
    from whatchanged.engine.settings import load_settings

    return create_app(load_settings())
