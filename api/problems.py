"""Errors over HTTP: RFC 9457 problem details, built by one function.

Every error response of the API is ``application/problem+json``::

    {"type": "urn:whatchanged:problem:invalid-parameter",
     "title": "Invalid parameter",
     "status": 422,
     "detail": "at: '2010-11-17 19:23' has no offset; give tz= or an ISO 8601 offset",
     "instance": "/api/v1/explain",
     "errors": [{"field": "query.at", "expected": "…", "found": "'2010-11-17 19:23'"}]}

:func:`problem` is the only place a problem body is built; :func:`install_handlers`
registers the handlers that turn every error — our :class:`ProblemError`,
the engine's :class:`~whatchanged.engine.errors.WhatchangedError` tree,
FastAPI's request validation errors, Starlette's 404/405 — into one.
Unexpected exceptions become a 500 problem (logged with its traceback on the
server, never shown to the client) in :class:`CatchAllMiddleware`.

``type`` values are ``urn:whatchanged:problem:<slug>``; the slugs are listed
in ``docs/api.md`` and in :data:`SLUGS`.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whatchanged.engine.errors import InputError, StorageError, WarehouseError, WhatchangedError
from whatchanged.present.status import status_of

log = logging.getLogger("whatchanged.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:whatchanged:problem:"
FOUND_MAX_CHARS = 200

#: slug → the status it goes with and what it means (documented in docs/api.md)
SLUGS: dict[str, tuple[int, str]] = {
    "malformed-request": (400, "the body is not valid JSON or a parameter cannot be used"),
    "unauthenticated": (401, "no or malformed Authorization: Bearer header on a write"),
    "forbidden": (403, "the token is not accepted, or writes are disabled"),
    "not-found": (404, "no such route, incident or other resource"),
    "method-not-allowed": (405, "the route exists but not with this method"),
    "conflict": (409, "the write contradicts what is stored"),
    "payload-too-large": (413, "the body is larger than max_body_bytes"),
    "unsupported-media-type": (415, "a write whose Content-Type is not JSON"),
    "invalid-parameter": (422, "a query or path parameter failed validation"),
    "invalid-body": (422, "the JSON body failed validation"),
    "warehouse-unavailable": (503, "the warehouse folder is missing or unusable"),
    "internal-error": (500, "an unexpected error; the server log has the details"),
}


class FieldError(BaseModel):
    """One field that failed validation: where, what was expected, what was found."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Where: `query.at`, `path.incident_id`, `body.start` …")
    expected: str = Field(description="What the field should hold.")
    found: str | None = Field(description="What it held (repr, truncated), or null when it was missing.")


class Problem(BaseModel):
    """An RFC 9457 problem details object (``application/problem+json``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:whatchanged:problem:invalid-parameter",
                    "title": "Invalid parameter",
                    "status": 422,
                    "detail": "at: '2010-11-17 19:23' has no offset; give tz= or an ISO 8601 offset",
                    "instance": "/api/v1/explain",
                    "errors": [
                        {
                            "field": "query.at",
                            "expected": "ISO 8601 with an offset, or tz=",
                            "found": "'2010-11-17 19:23'",
                        }
                    ],
                }
            ]
        },
    )

    type: str = Field(description="`urn:whatchanged:problem:<slug>`; slugs are listed in docs/api.md.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, in one sentence.")
    instance: str = Field(description="The request path.")
    errors: list[FieldError] | None = Field(
        default=None, description="Per-field validation errors, when the problem is about fields."
    )


class ProblemError(Exception):
    """Raise in a route or dependency to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        errors: Iterable[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


def found_repr(value: Any) -> str | None:
    """``value`` as shown in ``errors[].found``: repr, cut to FOUND_MAX_CHARS."""
    if value is None:
        return None
    text = repr(value)
    return text if len(text) <= FOUND_MAX_CHARS else text[: FOUND_MAX_CHARS - 1] + "…"


def _default_slug(status: int) -> str:
    for slug, (code, _) in SLUGS.items():
        if code == status:
            return slug
    return "internal-error" if status >= 500 else "malformed-request"


def problem_body(
    status: int,
    detail: str,
    *,
    instance: str,
    slug: str | None = None,
    errors: Iterable[FieldError] | None = None,
) -> dict[str, Any]:
    """The problem+json body (a dict) — the single builder of every error body."""
    slug = slug or _default_slug(status)
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    if slug in ("invalid-parameter", "invalid-body"):
        title = "Invalid parameter" if slug == "invalid-parameter" else "Invalid body"
    elif slug == "warehouse-unavailable":
        title = "Warehouse unavailable"
    body = Problem(
        type=TYPE_PREFIX + slug,
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=list(errors) if errors is not None else None,
    )
    out = body.model_dump()
    if out["errors"] is None:
        del out["errors"]
    return out


def problem(
    status: int,
    detail: str,
    *,
    instance: str,
    slug: str | None = None,
    errors: Iterable[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response (see :func:`problem_body`)."""
    return JSONResponse(
        problem_body(status, detail, instance=instance, slug=slug, errors=errors),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


#: seconds a client is told to wait after a 503 (``Retry-After``)
RETRY_AFTER_S = 30
#: what a filesystem path of the server is shown as to anonymous clients
HIDDEN_PATH = "<warehouse>"


@dataclass(frozen=True)
class Viewer:
    """Who is asking, as far as error bodies care: whether they may see the server's paths.

    Only a client holding one of the configured API tokens does; everyone else sees
    the warehouse folder (and the working folder) as ``<warehouse>``.
    """

    sees_paths: bool = False
    hidden: tuple[str, ...] = ()

    @classmethod
    def of(cls, scope: Scope) -> Viewer:
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        if settings is None:
            return cls()
        home = Path(settings.home)
        hidden = sorted(
            {str(home.resolve()), str(home.absolute()), os.getcwd()} - {"/"}, key=len, reverse=True
        )
        return cls(sees_paths=is_admin(scope, settings.token_list), hidden=tuple(hidden))

    def redact(self, text: str) -> str:
        if self.sees_paths:
            return text
        for path in self.hidden:
            text = text.replace(path, HIDDEN_PATH)
        return text


def is_admin(scope: Scope, tokens: Sequence[str]) -> bool:
    """Whether the request carries ``Authorization: Bearer <t>`` with a configured token."""
    if not tokens:
        return False
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, given = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                return False
            raw = given.strip().encode("utf-8", "replace")
            return any(hmac.compare_digest(raw, t.encode("utf-8", "replace")) for t in tokens)
    return False


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route of ``app`` answers on ``path`` (asked of the routes themselves,
    however the router nests them), sorted."""
    routes = getattr(getattr(app, "router", None), "routes", [])
    allowed = []
    for method in _METHODS:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        for route in routes:
            try:
                match, _ = route.matches(scope)
            except Exception:  # a route that cannot judge a bare scope
                continue
            if match == Match.FULL:
                allowed.append(method)
                break
    return allowed


# -- mapping exceptions to problems ------------------------------------------------------
def from_exception(
    exc: Exception, instance: str, *, viewer: Viewer | None = None, app: Any = None
) -> JSONResponse:
    """The problem for any exception a request can raise.

    ``viewer`` says whether the client may see filesystem paths (default: no — they
    are replaced by ``<warehouse>``); ``app`` lets a 405 list every method of the path.
    """
    viewer = viewer or Viewer()
    if isinstance(exc, ProblemError):
        return problem(
            exc.status,
            viewer.redact(exc.detail),
            instance=instance,
            slug=exc.slug,
            errors=exc.errors,
            headers=exc.headers,
        )
    if isinstance(exc, RequestValidationError):
        return _validation_problem(exc, instance)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {instance}; see /docs for the API"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            if app is not None:  # Starlette names the methods of the first route matching the path only
                headers["Allow"] = ", ".join(allowed_methods(app, instance)) or headers.get("Allow", "")
            detail = f"method not allowed on {instance}; allowed: {headers.get('Allow', '?')}"
        return problem(exc.status_code, viewer.redact(detail), instance=instance, headers=headers)
    if isinstance(exc, WhatchangedError):
        return _domain_problem(exc, instance, viewer)
    log.error("unexpected error on %s", instance, exc_info=exc)
    return problem(
        500,
        "unexpected server error; the server log has the details",
        instance=instance,
        slug="internal-error",
    )


def _domain_problem(exc: WhatchangedError, instance: str, viewer: Viewer) -> JSONResponse:
    """An error of the engine's tree, with its status from the one table (``present.status``)."""
    status, slug = status_of(exc)
    detail = viewer.redact(str(exc))
    errors = None
    headers: dict[str, str] = {}
    if isinstance(exc, InputError) and exc.field:
        errors = [
            FieldError(
                field=f"body.{exc.field}", expected=exc.expected or exc.reason, found=found_repr(exc.found)
            )
        ]
    if isinstance(exc, StorageError) and not viewer.sees_paths:
        detail = exc.public
    if isinstance(exc, WarehouseError):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return problem(status, detail, instance=instance, slug=slug, errors=errors, headers=headers)


def _validation_problem(exc: RequestValidationError, instance: str) -> JSONResponse:
    errors = []
    malformed = False
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if err.get("type") == "json_invalid":
            malformed = True
        errors.append(
            FieldError(
                field=".".join(loc) or "request",
                expected=str(err.get("msg", "a valid value")),
                found=found_repr(err.get("input")) if err.get("type") != "missing" else None,
            )
        )
    if malformed:
        return problem(400, "the body is not valid JSON", instance=instance, errors=errors)
    where = errors[0].field.split(".")[0] if errors else ""
    slug = "invalid-body" if where == "body" else "invalid-parameter"
    first = f"{errors[0].field}: {errors[0].expected}" if errors else "invalid request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem(422, first + more, instance=instance, slug=slug, errors=errors)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    return from_exception(exc, request.url.path, viewer=Viewer.of(request.scope), app=request.app)


def install_handlers(app: FastAPI) -> None:
    """Render every expected error as problem+json (the one handler set)."""
    for cls in (ProblemError, RequestValidationError, StarletteHTTPException, WhatchangedError):
        app.add_exception_handler(cls, _handle)


class CatchAllMiddleware:
    """Outermost of ours: an exception no handler took becomes a 500 problem, logged here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                log.error("error after the response started on %s", scope.get("path"), exc_info=exc)
                raise
            response = from_exception(
                exc, str(scope.get("path", "")), viewer=Viewer.of(scope), app=scope.get("app")
            )
            await response(scope, receive, send)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for ``statuses``, each a problem+json with an example."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        slug = _default_slug(status)
        if status == 422:
            slug = "invalid-parameter"
        example = problem_body(status, SLUGS[slug][1], instance="/api/v1/…", slug=slug)
        out[status] = {
            "description": f"{HTTPStatus(status).phrase}: {SLUGS[slug][1]}",
            "content": {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}
            },
        }
    return out
