"""Honest health: liveness and readiness, security headers on every response, no server
paths for anonymous clients, a 405 naming every method, storage faults as 503 + Retry-After."""

from __future__ import annotations

import asyncio
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import TOKENS, LiveServer, start_server
from whatchanged.api.app import create_app
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse

AUTH = {"Authorization": f"Bearer {TOKENS[0]}"}
DEPLOY = {"id": "health-1", "timestamp": "2010-11-17T19:15:00+01:00", "service": "www-main"}


@pytest.fixture
def own_server(base_home: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """A server over a private copy of the warehouse, which the test may damage."""
    home = tmp_path / "warehouse"
    shutil.copytree(base_home, home)
    live = start_server(Settings(home=home, tz="UTC", api_tokens=",".join(TOKENS)))
    yield live
    live.stop()


def test_ready_when_the_warehouse_answers(server: LiveServer) -> None:
    r = httpx.get(server.api + "/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert body["commits"] >= 1
    assert body["files"] >= 1


def test_broken_manifest_is_alive_but_not_ready(own_server: LiveServer) -> None:
    (own_server.home / "_commits" / "99999999999999999999-1-broken.json").write_text('{"txid": ')
    with httpx.Client(base_url=own_server.api) as c:
        assert c.get("/healthz").status_code == 200  # the process is up
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "30"
        body = r.json()
        assert body["type"].endswith("warehouse-unavailable")
        assert "manifest" in body["detail"]
        assert str(own_server.home) not in r.text
        assert "<warehouse>" in body["detail"]
        assert c.get("/services").status_code == 503  # and readiness told the truth
        with_token = c.get("/readyz", headers=AUTH)
        assert str(own_server.home.resolve()) in with_token.json()["detail"]


def test_missing_data_file_is_not_ready(own_server: LiveServer) -> None:
    Path(Warehouse(own_server.home).files("metrics")[0]).unlink()
    r = httpx.get(own_server.api + "/readyz")
    assert r.status_code == 503
    assert "missing" in r.json()["detail"]
    assert "doctor" in r.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/status", "/api/v1/healthz", "/api/v1/nope", "/openapi.json", "/dashboards/", "/docs"],
)
def test_security_headers_on_every_response(server: LiveServer, path: str) -> None:
    r = httpx.get(server.url + path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    if path != "/docs":
        assert "default-src 'none'" in csp
        assert "'unsafe-inline'" not in csp.split("style-src")[0]


def test_security_headers_on_a_413(server: LiveServer) -> None:
    r = httpx.post(
        server.api + "/changes",
        content=b"x" * (200 * 1024),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["x-content-type-options"] == "nosniff"


def test_status_shows_the_path_to_token_holders_only(server: LiveServer) -> None:
    anonymous = httpx.get(server.api + "/status")
    assert anonymous.status_code == 200
    assert anonymous.json()["home"] is None
    assert str(server.home.resolve()) not in anonymous.text
    admin = httpx.get(server.api + "/status", headers=AUTH)
    assert admin.json()["home"] == str(server.home.resolve())
    wrong = httpx.get(server.api + "/status", headers={"Authorization": "Bearer nope"})
    assert wrong.json()["home"] is None


def test_missing_warehouse_503_hides_the_path(tmp_path: Path) -> None:
    home = tmp_path / "nothing-here"
    live = start_server(Settings(home=home, api_tokens=TOKENS[0]))
    try:
        r = httpx.get(live.api + "/services")
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert str(tmp_path) not in r.text
        assert "<warehouse>" in r.json()["detail"]
        assert str(home.resolve()) in httpx.get(live.api + "/services", headers=AUTH).json()["detail"]
        page = httpx.get(live.url + "/dashboards/weekly")
        assert page.status_code == 503
        assert str(tmp_path) not in page.text
    finally:
        live.stop()


def test_405_lists_every_method_of_the_path(server: LiveServer) -> None:
    r = httpx.delete(server.api + "/changes")
    assert r.status_code == 405
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "POST" in r.json()["detail"]


def test_storage_fault_on_a_write_is_503_with_retry_after(
    base_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "warehouse"
    shutil.copytree(base_home, home)
    app = create_app(Settings(home=home, api_tokens=",".join(TOKENS)))
    before = sorted(p.name for p in (home / "_commits").iterdir())

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(home / "_commits" / "x.json"))

    monkeypatch.setattr(Warehouse, "_publish", disk_full)

    async def post(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post("/api/v1/changes", json=DEPLOY, headers=headers)

    r = asyncio.run(post(AUTH))
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "30"
    body = r.json()
    assert body["type"].endswith("warehouse-unavailable")
    assert "no space left" in body["detail"]
    assert str(home) in body["detail"]
    assert sorted(p.name for p in (home / "_commits").iterdir()) == before
    assert not list((home / ".tmp").iterdir())


def test_storage_fault_detail_for_anonymous_has_no_path() -> None:
    from whatchanged.api.problems import Viewer, from_exception
    from whatchanged.engine.storage import storage_error

    exc = storage_error(OSError(errno.EROFS, "Read-only file system", "/srv/wh/_commits/x.json"), "/srv/wh")
    assert exc is not None
    r = from_exception(exc, "/api/v1/changes", viewer=Viewer())
    assert r.status_code == 503
    assert b"/srv" not in r.body
    assert b"read-only" in r.body
    assert r.headers["retry-after"] == "30"
