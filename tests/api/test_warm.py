"""The server's warm-up: at start (and after each commit) it brings the day states up to
date, says so on /healthz, and prepares the pages of the latest incidents."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from whatchanged.api.app import create_app
from whatchanged.data.scenarios import SCENARIOS, truths_of
from whatchanged.engine.extent import last_data_ts
from whatchanged.engine.incidents import find_incidents
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest


def test_warm_up_prepares_states_and_the_latest_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATCHANGED_WARM", "1")
    truth = truths_of(SCENARIOS["host_failure_no_change"](tmp_path / "in"))[0]
    wh = Warehouse(tmp_path / "wh")
    ingest(wh, [tmp_path / "in"], ReadContext(tz=truth.tz))
    con = wh.snapshot()
    last = last_data_ts(con)
    assert last is not None
    window = find_incidents(con, last - timedelta(days=1), last + timedelta(minutes=1))
    latest = max(window, key=lambda i: i.onset)
    app = create_app(load_settings(home=wh.home, tz=truth.tz))

    async def scenario() -> None:
        async with (
            app.router.lifespan_context(app),  # the server's start: the warm-up thread
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            deadline = time.monotonic() + 120
            while getattr(app.state, "warm_pages", None) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert (await client.get("/api/v1/healthz")).json()["analysis"] == "ready"
            assert list((wh.home / "_cache" / "daystate").glob("*.npz"))
            assert latest.incident_id in app.state.warm_pages
            cache = app.state.dashboards.pages
            before = cache.hits
            page = await client.get(f"/dashboards/incidents/{latest.incident_id}?tz={truth.tz}")
            assert page.status_code == 200
            assert latest.incident_id in page.text
            assert cache.hits == before + 1, (
                "the first request for the latest incident was not served prepared"
            )

    asyncio.run(scenario())


def test_no_warm_up_when_disabled(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    app = create_app(load_settings(home=wh.home))

    async def scenario() -> None:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            assert (await client.get("/api/v1/healthz")).json()["analysis"] == "none"  # WHATCHANGED_WARM=0

    asyncio.run(scenario())
