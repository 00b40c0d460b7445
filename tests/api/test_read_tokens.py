"""WHATCHANGED_READ_TOKENS: reads need a read (or write) token; healthz stays open."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.conftest import start_server
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse


def test_reads_need_a_token_when_read_tokens_are_set(tmp_path: Path) -> None:
    Warehouse(tmp_path / "wh").init()
    server = start_server(load_settings(home=tmp_path / "wh", read_tokens="r1, r2", api_tokens="w1"))
    try:
        status = server.api + "/status"
        none = httpx.get(status, timeout=30)
        assert none.status_code == 401
        assert none.headers["www-authenticate"].startswith("Bearer")
        assert none.headers["content-type"] == "application/problem+json"
        assert none.json()["type"] == "urn:whatchanged:problem:unauthenticated"
        assert httpx.get(status, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 403
        for token in ("r1", "r2", "w1"):
            r = httpx.get(status, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert r.status_code == 200, token
        assert httpx.get(server.url + "/metrics", timeout=30).status_code == 401
        assert httpx.get(server.api + "/healthz", timeout=30).status_code == 200
    finally:
        server.stop()
