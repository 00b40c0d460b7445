"""A real uvicorn server on loopback over a real warehouse, for the API tests.

``base_home`` (once per session) generates two days of the reference night
and ingests every input a reader exists for; each test module gets its own
copy (``api_home``) and its own server (``server``) on a free port, so that
writes in one module never change what another one reads.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
import uvicorn

from whatchanged.api.app import create_app
from whatchanged.engine.errors import WhatchangedError
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import read_all

TOKENS = ("test-token-1", "test-token-2")
TZ = "Europe/Paris"


@dataclass
class LiveServer:
    url: str
    home: Path
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def start_server(settings: Settings) -> LiveServer:
    """``create_app(settings)`` under uvicorn in a thread, on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", Path(settings.home), server, thread, sock)


def build_reference_warehouse(home: Path, raw: Path) -> list[str]:
    """Two days of the reference night in ``home``; returns the inputs no reader took yet."""
    from whatchanged.data.reference_night import generate

    raw.mkdir(parents=True, exist_ok=True)
    generate(raw, days=2)
    wh = Warehouse(home)
    wh.init()
    skipped = []
    tables: dict[str, list[pa.Table]] = {}
    for unit in sorted(raw.iterdir()):
        if unit.name.startswith("."):
            continue
        try:
            read, _ = read_all([unit], ReadContext(tz=TZ))
        except WhatchangedError as exc:
            skipped.append(f"{unit.name}: {exc}")
            continue
        for name, parts in read.items():
            tables.setdefault(name, []).extend(parts)
    wh.commit({name: pa.concat_tables(parts) for name, parts in tables.items()}, source="reference-night")
    return skipped


@pytest.fixture(scope="session")
def base_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-base")
    build_reference_warehouse(root / "warehouse", root / "raw")
    return root / "warehouse"


@pytest.fixture(scope="module")
def api_home(base_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("api") / "warehouse"
    shutil.copytree(base_home, home)
    return home


@pytest.fixture(scope="module")
def settings(api_home: Path) -> Settings:
    return Settings(home=api_home, tz="UTC", api_tokens=",".join(TOKENS), max_body_bytes=64 * 1024)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    live = start_server(settings)
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.api, timeout=60) as c:
        yield c


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[0]}"}


def engine_has(module: str, name: str) -> bool:
    """Whether ``whatchanged.engine.<module>.<name>`` exists and imports (engine work in progress)."""
    import importlib

    try:
        return hasattr(importlib.import_module(f"whatchanged.engine.{module}"), name)
    except ImportError:
        return False


needs_explain = pytest.mark.skipif(
    not engine_has("explain", "explain_at"), reason="whatchanged.engine.explain not importable yet"
)
needs_changes = pytest.mark.skipif(
    not engine_has("changes", "list_changes"), reason="whatchanged.engine.changes not written yet"
)
needs_incidents = pytest.mark.skipif(
    not engine_has("incidents", "find_incidents"), reason="whatchanged.engine.incidents not importable yet"
)
needs_availability = pytest.mark.skipif(
    not engine_has("availability", "availability"), reason="whatchanged.engine.availability not written yet"
)
