"""Reads behind a token: with ``WHATCHANGED_READ_TOKENS`` set, every request but
``/api/v1/healthz`` needs ``Authorization: Bearer <token>`` with a read or a write token.

An ASGI middleware, so that the API, the dashboards, ``/metrics`` and the OpenAPI pages are
covered alike; writes still check their own (write) token in their route.  Refusals are the
API's problem+json (401 with ``WWW-Authenticate: Bearer``, 403 for a token not accepted).
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/api/v1/healthz"})


class ReadTokenMiddleware:
    def __init__(self, app: ASGIApp, *, tokens: list[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not given.strip():
            await _refuse(
                scope, send, 401, "unauthenticated", "reads need an 'Authorization: Bearer <token>' header"
            )
            return
        matches = [hmac.compare_digest(given.strip(), t) for t in self.tokens]  # no early exit
        if not any(matches):
            await _refuse(scope, send, 403, "forbidden", "the bearer token is not accepted")
            return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, status: int, slug: str, detail: str) -> None:
    body = json.dumps(
        {
            "type": f"urn:whatchanged:problem:{slug}",
            "title": "Unauthenticated" if status == 401 else "Forbidden",
            "status": status,
            "detail": detail,
            "instance": scope.get("path", ""),
        }
    ).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="whatchanged"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
