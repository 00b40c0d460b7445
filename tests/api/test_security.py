"""Auth, body limits, content types and hostile strings, against a live server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.api.conftest import TOKENS, LiveServer, start_server
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse

DEPLOY = {
    "id": "sec-rel-1",
    "timestamp": "2010-11-17T19:15:00+01:00",
    "service": "www-main",
    "version": "v1",
    "author": "mallory",
    "description": "",
}
HOSTILE = [
    "'; DROP TABLE changes; --",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    '" OR 1=1 --',
    "changes; SELECT * FROM read_csv('/etc/passwd')",
    "%00",
    "\u0000",
    "x" * 300,
]
#: every GET query parameter of the API
PARAMS: dict[str, dict[str, str]] = {
    "/explain": {"at": "2010-11-17T19:23:00+01:00", "tz": "Europe/Paris"},
    "/changes": {
        "at": "2010-11-17T19:23:00+01:00",
        "before": "2h",
        "after": "30m",
        "kind": "deploy",
        "tz": "UTC",
    },
    "/incidents": {
        "from": "2010-11-17T00:00:00Z",
        "to": "2010-11-18T00:00:00Z",
        "tz": "UTC",
        "limit": "5",
        "offset": "0",
    },
    "/availability": {
        "service": "www-main",
        "from": "2010-11-16T00:00:00Z",
        "to": "2010-11-18T00:00:00Z",
        "exclude_planned": "false",
        "tz": "UTC",
    },
    "/services": {
        "datacenter": "P19",
        "app": "www",
        "kind": "site",
        "switch": "p19-sw-01",
        "limit": "5",
        "offset": "0",
    },
    "/status": {},
    "/healthz": {},
}


def snapshot(home: Any) -> dict[str, Any]:
    wh = Warehouse(home)
    con = wh.snapshot()
    try:
        counts = {
            t: con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("services", "changes", "states", "feedback", "metrics")
        }
    finally:
        con.close()
    return {"commits": len(wh.manifests()), **counts}


# -- tokens ---------------------------------------------------------------------------------------


def test_write_without_token_is_401(client: httpx.Client) -> None:
    r = client.post("/changes", json=DEPLOY)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    r = client.post("/changes", json=DEPLOY, headers={"Authorization": f"Basic {TOKENS[0]}"})
    assert r.status_code == 401


def test_wrong_token_is_403(client: httpx.Client) -> None:
    for token in ("nope", TOKENS[0] + "x", TOKENS[0][:-1], "é" * 5):
        header = f"Bearer {token}".encode()  # raw bytes: non-ASCII reaches the server too
        r = client.post("/changes", json=DEPLOY, headers={"Authorization": header})
        assert r.status_code == 403, token
        assert r.json()["detail"] == "the bearer token is not accepted"


def test_every_configured_token_works(client: httpx.Client) -> None:
    for n, token in enumerate(TOKENS):
        body = {**DEPLOY, "id": f"sec-token-{n}"}
        r = client.post("/changes", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def readonly_server(api_home: Any) -> Iterator[LiveServer]:
    live = start_server(Settings(home=api_home, api_tokens=""))
    yield live
    live.stop()


def test_no_configured_token_disables_writes(readonly_server: LiveServer) -> None:
    with httpx.Client(base_url=readonly_server.api) as c:
        for headers in ({}, {"Authorization": "Bearer anything"}):
            r = c.post("/changes", json=DEPLOY, headers=headers)
            assert r.status_code == 403
            assert "writes are disabled" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200


def test_auth_comes_before_body_checks(client: httpx.Client) -> None:
    assert (
        client.post(
            "/changes", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 401
    )
    assert (
        client.post("/changes", content=b"hello", headers={"content-type": "text/plain"}).status_code == 401
    )


# -- bodies ---------------------------------------------------------------------------------------------


def test_non_json_content_type_is_415(client: httpx.Client, auth: dict[str, str]) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = client.post("/changes", content=b'{"a": 1}', headers={**auth, "content-type": ctype})
        assert r.status_code == 415, ctype
    r = client.post("/changes", content=b'{"a": 1}', headers=auth)  # no content type at all
    assert r.status_code == 415


def test_malformed_json_is_400(client: httpx.Client, auth: dict[str, str]) -> None:
    for raw in (b"{not json", b"", b"[" * 30_000 + b"]" * 30_000, b'{"a": NaN}'):
        r = client.post("/changes", content=raw, headers={**auth, "content-type": "application/json"})
        assert r.status_code == 400, raw[:20]


def test_body_over_the_limit_with_content_length_is_413(
    server: LiveServer, client: httpx.Client, auth: dict[str, str]
) -> None:
    limit = 64 * 1024
    before = snapshot(server.home)
    big = b'{"pad": "' + b"x" * limit + b'"}'
    r = client.post("/changes", content=big, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["status"] == 413
    assert str(limit) in r.json()["detail"]
    assert snapshot(server.home) == before


def test_body_over_the_limit_streamed_is_413(server: LiveServer, auth: dict[str, str]) -> None:
    """Chunked transfer (no Content-Length): the bytes are counted as they arrive."""

    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(200):  # 1.6 MB: more than the limit, more than what is drained
            yield b"x" * 8192
        yield b'"}'

    with httpx.Client(base_url=server.api, timeout=30) as c:
        r = c.post("/changes", content=chunks(), headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413
    assert "transfer-encoding" not in r.request.headers or r.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in r.request.headers


def test_body_under_the_limit_streamed_is_read(server: LiveServer, auth: dict[str, str]) -> None:
    import json

    raw = json.dumps({**DEPLOY, "id": "sec-streamed"}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    with httpx.Client(base_url=server.api, timeout=30) as c:
        r = c.post("/changes", content=chunks(), headers={**auth, "content-type": "application/json"})
    assert r.status_code == 201, r.text


def test_declared_length_is_refused_before_the_body_is_sent(server: LiveServer) -> None:
    """A raw request announcing 10 MB gets its 413 without sending a byte of body."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /api/v1/changes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKENS[0]}\r\n".encode()
            + b"Content-Length: 10000000\r\n\r\n"
        )
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


# -- hostile strings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(PARAMS))
def test_hostile_strings_in_every_query_parameter_are_harmless(
    server: LiveServer, client: httpx.Client, path: str
) -> None:
    before = snapshot(server.home)
    for name in PARAMS[path] or {"unknown": ""}:
        for evil in HOSTILE:
            params = {**PARAMS[path], name: evil}
            r = client.get(path, params=params)
            assert r.status_code < 500, (path, name, evil, r.text)
            assert r.status_code in (200, 404, 422), (path, name, evil, r.status_code)
            if r.status_code != 200:
                assert r.headers["content-type"] == "application/problem+json"
    assert snapshot(server.home) == before


@pytest.mark.parametrize("evil", HOSTILE)
def test_hostile_strings_in_path_parameters_are_harmless(
    server: LiveServer, client: httpx.Client, auth: dict[str, str], evil: str
) -> None:
    before = snapshot(server.home)
    quoted = quote(evil, safe="")
    responses = [
        client.get(f"/incidents/{quoted}"),
        client.post(f"/incidents/{quoted}/feedback", json={"category": "hosting"}, headers=auth),
    ]
    if evil.isprintable():  # as typed: '../' segments are normalised by the client or refused
        responses.append(client.get(f"/incidents/{evil}"))
    for r in responses:
        assert r.status_code in (404, 422), (evil, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert snapshot(server.home) == before


@pytest.mark.parametrize("evil", HOSTILE[:5])
def test_hostile_strings_in_posted_fields_are_stored_verbatim(
    server: LiveServer, client: httpx.Client, auth: dict[str, str], evil: str
) -> None:
    """Values are bound as data, never spliced into SQL or paths: they come back as sent."""
    before = snapshot(server.home)
    body = {**DEPLOY, "id": f"sec-{evil}", "service": evil, "description": evil, "author": evil}
    r = client.post("/changes", json=body, headers=auth)
    assert r.status_code == 201, r.text
    after = snapshot(server.home)
    assert after["changes"] == before["changes"] + 1
    assert after["services"] == before["services"]
    listed = client.get(
        "/changes", params={"at": "2010-11-17T19:15:00+01:00", "before": "1m", "after": "1m"}
    ).json()
    stored = {c["change_id"]: c for c in listed["changes"]}[f"sec-{evil}"]
    assert stored["author"] == evil
    assert stored["description"] == evil
    for tz in HOSTILE:
        r = client.post("/changes", params={"tz": tz}, json={**body, "id": "sec-tz"}, headers=auth)
        assert r.status_code == 422, (tz, r.text)
    assert snapshot(server.home)["changes"] == after["changes"]
