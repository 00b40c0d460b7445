"""Fixtures: the reference-night-shaped warehouse, the app on a real uvicorn server, Chromium."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.dashboards import night
from whatchanged.engine.settings import Settings, load_settings
from whatchanged.engine.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def night_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("night") / "warehouse"
    night.build(home)
    return home


@pytest.fixture(scope="session")
def night_settings(night_home: Path) -> Settings:
    return load_settings(home=night_home, tz=night.TZ)


def make_app(settings: Settings) -> FastAPI:
    """The API app with the dashboards, as ``whatchanged serve`` runs it."""
    from whatchanged.api.app import create_app

    return create_app(settings)


class Server:
    """uvicorn on 127.0.0.1, on a socket bound before it starts, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="session")
def server(night_settings: Settings) -> Iterator[Server]:
    with Server(make_app(night_settings)) as srv:
        yield srv


@pytest.fixture(scope="session")
def night_incident_id(night_home: Path) -> str:
    """Id of the 19:23 incident (the one with the probe outages), as the engine finds it."""
    from whatchanged.engine.incidents import find_incidents

    con = Warehouse(night_home).snapshot()
    try:
        found = find_incidents(con, night.ONSET - timedelta(hours=1), night.END + timedelta(hours=1))
    finally:
        con.close()
    best = max(found, key=lambda i: (i.outage_count, len(i.services_affected)))
    return best.incident_id


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium per test module: Playwright's sync API holds an event loop in the main
    thread while it runs, so it must stop before other modules call ``asyncio.run``."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make browser)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
