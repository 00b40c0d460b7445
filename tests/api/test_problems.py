"""Every error the API can produce is one problem+json shape (RFC 9457)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import TOKENS, LiveServer, needs_incidents
from whatchanged.api.app import create_app
from whatchanged.engine.settings import Settings

BAD = {"Authorization": "Bearer wrong"}
GOOD = {"Authorization": f"Bearer {TOKENS[0]}"}
JSON = {"content-type": "application/json"}
NAIVE = "2010-11-17 19:23"

#: (method, path, request kwargs, expected status) — one or more per error-producing endpoint
CASES: list[tuple[str, str, dict[str, Any], int]] = [
    # routing
    ("GET", "/api/v1/no-such-thing", {}, 404),
    ("GET", "/nowhere", {}, 404),
    ("DELETE", "/api/v1/changes", {}, 405),
    ("PUT", "/api/v1/incidents/x/feedback", {}, 405),
    ("POST", "/api/v1/explain", {}, 405),
    # explain
    ("GET", "/api/v1/explain", {}, 422),
    ("GET", "/api/v1/explain", {"params": {"at": NAIVE}}, 422),
    ("GET", "/api/v1/explain", {"params": {"at": "19:23"}}, 422),
    ("GET", "/api/v1/explain", {"params": {"at": "tomorrow"}}, 422),
    ("GET", "/api/v1/explain", {"params": {"at": NAIVE, "tz": "Mars/Olympus"}}, 422),
    ("GET", "/api/v1/explain", {"params": {"at": "9999-12-31T23:59:59-14:00"}}, 422),
    # changes
    ("GET", "/api/v1/changes", {"params": {"at": NAIVE}}, 422),
    ("GET", "/api/v1/changes", {"params": {"at": "2010-11-17T19:23Z", "before": "forever"}}, 422),
    ("GET", "/api/v1/changes", {"params": {"at": "2010-11-17T19:23Z", "after": "9999999999999999w"}}, 422),
    ("GET", "/api/v1/changes", {"params": {"at": "2010-11-17T19:23Z", "kind": "coffee"}}, 422),
    ("POST", "/api/v1/changes", {"json": {}}, 401),
    ("POST", "/api/v1/changes", {"json": {}, "headers": BAD}, 403),
    ("POST", "/api/v1/changes", {"content": b"{", "headers": {**GOOD, **JSON}}, 400),
    ("POST", "/api/v1/changes", {"content": b"{}", "headers": {**GOOD, "content-type": "text/csv"}}, 415),
    ("POST", "/api/v1/changes", {"content": b"[" + b"1," * 40_000 + b"1]", "headers": {**GOOD, **JSON}}, 413),
    ("POST", "/api/v1/changes", {"json": {"what": "ever"}, "headers": GOOD}, 422),
    ("POST", "/api/v1/changes", {"json": [], "headers": GOOD}, 422),
    (
        "POST",
        "/api/v1/changes",
        {"json": {"id": "p", "timestamp": NAIVE, "service": "s"}, "headers": GOOD},
        422,
    ),
    ("POST", "/api/v1/changes", {"params": {"format": "svn"}, "json": {}, "headers": GOOD}, 422),
    # incidents
    ("GET", "/api/v1/incidents", {"params": {"from": NAIVE}}, 422),
    ("GET", "/api/v1/incidents", {"params": {"limit": 0}}, 422),
    ("GET", "/api/v1/incidents", {"params": {"offset": -1}}, 422),
    ("GET", "/api/v1/incidents", {"params": {"from": "2010-11-18T00:00Z", "to": "2010-11-17T00:00Z"}}, 422),
    ("GET", "/api/v1/incidents", {"params": {"from": "2010-01-01T00:00Z", "to": "2010-11-17T00:00Z"}}, 422),
    ("GET", "/api/v1/incidents/no-such-incident", {}, 404),
    ("GET", "/api/v1/incidents/x", {"params": {"tz": "Nowhere/Else"}}, 422),
    ("GET", "/api/v1/incidents/no-such-incident/postmortem", {}, 404),
    ("GET", "/api/v1/incidents/x/postmortem", {"params": {"lang": "tlh"}}, 422),
    ("GET", "/api/v1/incidents/x/postmortem", {"params": {"format": "pdf"}}, 422),
    ("GET", "/api/v1/incidents/x/postmortem", {"params": {"audience": "board"}}, 422),
    ("GET", "/api/v1/incidents/x/postmortem", {"params": {"tz": "Nowhere/Else"}}, 422),
    ("POST", "/api/v1/incidents/x/postmortem", {}, 405),
    ("POST", "/api/v1/incidents/x/feedback", {"json": {"category": "hosting"}}, 401),
    ("POST", "/api/v1/incidents/x/feedback", {"json": {"category": "hosting"}, "headers": BAD}, 403),
    (
        "POST",
        "/api/v1/incidents/x/feedback",
        {"content": b"hi", "headers": {**GOOD, "content-type": "text/plain"}},
        415,
    ),
    ("POST", "/api/v1/incidents/x/feedback", {"json": {"category": "aliens"}, "headers": GOOD}, 422),
    (
        "POST",
        "/api/v1/incidents/no-such-incident/feedback",
        {"json": {"category": "hosting"}, "headers": GOOD},
        404,
    ),
    # availability
    ("GET", "/api/v1/availability", {"params": {"from": NAIVE, "service": "www-main"}}, 422),
    ("GET", "/api/v1/availability", {"params": {"exclude_planned": "perhaps", "service": "www-main"}}, 422),
    ("GET", "/api/v1/availability", {"params": {}}, 422),
    ("GET", "/api/v1/availability", {"params": {"service": "no-such-service"}}, 404),
    # services
    ("GET", "/api/v1/services", {"params": {"limit": 100000}}, 422),
    ("GET", "/api/v1/services", {"params": {"datacenter": ""}}, 422),
]
ENGINE_STATUSES = {"/api/v1/incidents/no-such-incident", "/api/v1/availability"}


def assert_problem(r: httpx.Response, status: int, path: str) -> dict[str, Any]:
    assert r.status_code == status, (path, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json", r.headers["content-type"]
    body = r.json()
    assert set(body) <= {"type", "title", "status", "detail", "instance", "errors"}, body
    assert body["type"].startswith("urn:whatchanged:problem:")
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["instance"] == path
    for err in body.get("errors", []):
        assert set(err) == {"field", "expected", "found"}, err
        assert isinstance(err["field"], str)
        assert isinstance(err["expected"], str)
        assert err["found"] is None or isinstance(err["found"], str)
    assert "Traceback" not in r.text
    return body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"), CASES, ids=[f"{c[3]}-{c[0]}-{c[1]}" for c in CASES]
)
def test_error_is_a_problem(
    server: LiveServer, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    if path.startswith(tuple(ENGINE_STATUSES)) and status == 404:
        pytest.importorskip("whatchanged.engine.incidents")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.request(method, path, **kwargs)
    body = assert_problem(r, status, path)
    if status == 422 and "params" in kwargs:
        assert body["errors"], body
        assert body["errors"][0]["field"].startswith("query."), body


def test_offset_rule_names_the_parameter(client: httpx.Client) -> None:
    body = client.get("/explain", params={"at": NAIVE}).json()
    assert body["errors"][0]["field"] == "query.at"
    assert "offset" in body["detail"]
    assert "tz" in body["detail"]
    assert body["errors"][0]["found"] == repr(NAIVE)


def test_method_not_allowed_says_what_is(client: httpx.Client) -> None:
    r = client.delete("/changes")
    assert r.status_code == 405
    assert "GET" in r.headers["allow"]
    assert "allowed: GET" in r.json()["detail"]


@pytest.mark.parametrize("status", [503])
def test_missing_warehouse_is_503(tmp_path: Any, status: int) -> None:
    from tests.api.conftest import start_server

    live = start_server(Settings(home=tmp_path / "nothing-here"))
    try:
        with httpx.Client(base_url=live.url) as c:
            assert_problem(c.get("/api/v1/services"), status, "/api/v1/services")
            assert_problem(c.get("/api/v1/status"), status, "/api/v1/status")
            health = c.get("/api/v1/healthz")
            assert health.status_code == 200
            assert health.json()["warehouse"] is False
    finally:
        live.stop()


def test_unexpected_exception_is_a_500_problem_without_trace(tmp_path: Any) -> None:
    app: FastAPI = create_app(Settings(home=tmp_path))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals /etc/shadow")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.get("/boom")

    r = asyncio.run(call())
    body = assert_problem(r, 500, "/boom")
    assert "secret" not in r.text
    assert "RuntimeError" not in r.text
    assert body["type"] == "urn:whatchanged:problem:internal-error"


@needs_incidents
def test_feedback_unknown_cause_change_is_422(client: httpx.Client) -> None:
    items = client.get("/incidents", params={"from": "2010-11-17T00:00Z", "to": "2010-11-18T00:00Z"}).json()[
        "items"
    ]
    path = f"/api/v1/incidents/{items[0]['id']}/feedback"
    with httpx.Client(base_url=str(client.base_url).split("/api/v1")[0]) as c:
        r = c.post(path, json={"cause_change_id": "no-such-change"}, headers=GOOD)
    body = assert_problem(r, 422, path)
    assert body["errors"][0]["field"] == "body.cause_change_id"
