"""Sources that fail: a Statuspage (a third-party SaaS, faked by a loopback HTTP server in the
test) answering 500, then garbage, then a valid page.  The collector recovers, nothing is
duplicated, the other source keeps going, and ``status`` (CLI and HTTP) shows each failure."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.api.conftest import start_server
from whatchanged.api.cli import build
from whatchanged.engine.live import sources_status
from whatchanged.engine.settings import load_settings
from whatchanged.engine.store import changes_history
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.collect import Collector
from whatchanged.ingest.sources import load_sources

DATA = Path(__file__).parents[1] / "data"


def _page() -> bytes:
    files = sorted((DATA / "github-status" / "incidents").glob("*.json"))[:6]
    docs = [json.loads(f.read_text()) for f in files]
    return json.dumps({"page": docs[0]["page"], "incidents": [d["incident"] for d in docs]}).encode()


class FakeStatuspage:
    """``/api/v2/incidents.json`` answers the scripted responses in turn (the last one repeats);
    ``/api/v2/scheduled-maintenances.json`` is always a valid empty list."""

    def __init__(self, script: list[tuple[int, bytes]]) -> None:
        self.script = list(script)
        self.hits = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/api/v2/incidents.json":
                    status, body = fake.script[min(fake.hits, len(fake.script) - 1)]
                    fake.hits += 1
                elif self.path == "/api/v2/scheduled-maintenances.json":
                    status, body = (
                        200,
                        b'{"page": {"id": "x", "name": "GitHub"}, "scheduled_maintenances": []}',
                    )
                else:
                    status, body = 404, b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake() -> Iterator[FakeStatuspage]:
    f = FakeStatuspage([(500, b"Internal Server Error"), (200, b"<html>oops</html>"), (200, _page())])
    try:
        yield f
    finally:
        f.close()


def _home(tmp_path: Path, url: str, retries: int) -> Warehouse:
    home = tmp_path / "wh"
    (home / "notices").mkdir(parents=True)
    shutil.copy(DATA / "maintenance-ical" / "ical_ical1.ics", home / "notices")
    (home / "sources.toml").write_text(
        f"""
[collect]
retries = {retries}
backoff = "2s"
timeout = "5s"

[[statuspage]]
name = "github"
url = "{url}"

[[ical]]
name = "notices"
folder = "notices"
"""
    )
    return Warehouse(home)


def _changes(wh: Warehouse) -> int:
    con = wh.snapshot()
    try:
        # every stored version, not only the latest per change: a doubled row would show here
        n: int = changes_history(con).count("*").fetchall()[0][0]
        return n
    finally:
        con.close()


def test_failing_source_is_shown_retried_and_recovers_without_duplicates(
    fake: FakeStatuspage, tmp_path: Path
) -> None:
    wh = _home(tmp_path, fake.url, retries=0)
    waits: list[float] = []
    collector = Collector(wh, load_sources(wh.home), sleep=waits.append)
    try:
        first = {o.source: o for o in collector.run_pass()}
        assert not first["github"].ok
        assert first["github"].error.startswith("HTTP 500 from ")
        assert first["notices"].ok
        assert first["notices"].rows_added["changes"] == 1
        status = {s["source"]: s for s in sources_status(wh)}
        assert status["github"]["state"] == "failing"
        assert status["github"]["consecutive_failures"] == 1
        assert status["github"]["last_error"].startswith("HTTP 500")
        assert status["github"]["next_retry"] is not None
        assert status["notices"]["state"] == "ok"

        # between passes a failing source waits for its backoff: --every skips it meanwhile
        skipped = {o.source: o for o in collector.run_pass(respect_backoff=True)}
        assert skipped["github"].skipped
        assert fake.hits == 1

        second = {o.source: o for o in collector.run_pass()}
        assert "not valid JSON" in (second["github"].error or "")
        assert sources_status(wh)[0]["consecutive_failures"] == 2

        # the HTTP API and the CLI show the same
        server = start_server(load_settings(home=wh.home))
        try:
            body = httpx.get(server.api + "/status", timeout=30).json()
        finally:
            server.stop()
        api = {s["source"]: s for s in body["sources"]}
        assert api["github"]["state"] == "failing"
        assert "not valid JSON" in api["github"]["last_error"]
        cli = CliRunner().invoke(build("status"), ["status", "--home", str(wh.home), "--json"])
        assert cli.exit_code == 0, cli.output
        assert json.loads(cli.output)["sources"][0]["last_error"] == api["github"]["last_error"]

        third = {o.source: o for o in collector.run_pass()}
        assert third["github"].ok
        assert third["github"].rows_added["changes"] == 6
        assert third["notices"].commits == 0  # nothing new in the folder
        stored = _changes(wh)
        assert stored == 7
        # the same page again: the cursor says nothing is new; nothing is committed or doubled
        fourth = {o.source: o for o in collector.run_pass()}
        assert fourth["github"].ok
        assert fourth["github"].commits == 0
        assert _changes(wh) == stored
        ok = {s["source"]: s for s in sources_status(wh)}["github"]
        assert ok["state"] == "ok"
        assert ok["last_error"] is None
        assert ok["consecutive_failures"] == 0
        assert ok["cursor"]["stamp"].startswith("20")
    finally:
        collector.close()
    assert waits == []  # retries = 0: no wait inside a pass


def test_retries_inside_one_pass_with_backoff(fake: FakeStatuspage, tmp_path: Path) -> None:
    wh = _home(tmp_path, fake.url, retries=2)
    waits: list[float] = []
    collector = Collector(wh, load_sources(wh.home), sleep=waits.append)
    try:
        (github, _) = collector.run_pass()
    finally:
        collector.close()
    assert github.ok
    assert github.attempts == 3
    assert github.rows_added["changes"] == 6
    assert waits == [2.0, 4.0]  # backoff, then twice the backoff
    assert sources_status(wh)[0]["state"] == "ok"


def test_a_dead_source_times_out_and_is_reported(tmp_path: Path) -> None:
    from tests.servers import free_port

    wh = _home(tmp_path, f"http://127.0.0.1:{free_port()}", retries=0)  # nothing listens there
    collector = Collector(wh, load_sources(wh.home))
    try:
        (github, notices) = collector.run_pass()
    finally:
        collector.close()
    assert not github.ok
    assert github.error.startswith("connection failed for http://127.0.0.1:")
    assert notices.ok


def test_feed_source_pulls_once_then_only_what_is_new(tmp_path: Path) -> None:
    from tests.servers import Recorder

    rss = (Path(__file__).parent / "golden" / "feed" / "statuspage.rss.xml").read_bytes()
    with Recorder(body=rss) as site:
        home = tmp_path / "wh"
        home.mkdir()
        (home / "sources.toml").write_text(f'[[feed]]\nname = "works"\nurl = "{site.url}/rss.xml"\n')
        wh = Warehouse(home)
        collector = Collector(wh, load_sources(home))
        try:
            (first,) = collector.run_pass()
            (second,) = collector.run_pass()
        finally:
            collector.close()
    assert first.ok
    assert first.rows_added["changes"] > 0
    assert first.commits == 1
    assert second.ok
    assert second.commits == 0
    assert _changes(wh) == first.rows_added["changes"]
    assert [r["path"] for r in site.requests] == ["/rss.xml", "/rss.xml"]
