"""One time range (engine.timerange) through every entry point: 4xx or one line, never 500, nothing stored."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer, start_server
from tests.ingest.test_malformed import _listing, assert_one_line_error, run_cli
from whatchanged.engine.errors import ConfigError, NotFoundError
from whatchanged.engine.settings import Settings
from whatchanged.engine.timeparse import incident_onset, parse_when
from whatchanged.engine.timerange import OutOfRange, TimeRange
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

TOKEN = "time-range-token-0123456789abcdef"
#: ISO times of the year 1, 5138 (an 11-digit epoch) and 9999, with offsets that push them past
#: the ends of Python's datetime when converted to UTC
ISO_TIMES = ["0001-01-01T00:30:00+01:00", "5138-11-16T09:46:40+00:00", "9999-12-31T23:30:00-05:00"]
QUERY_TIMES = [*ISO_TIMES, "99999999999", "NaN", "inf", "-inf", "1e20"]
NIGHT = "[1290015780] SERVICE ALERT: bo-primary;HTTPS;CRITICAL;HARD;1;CRITICAL - Socket timeout\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("timerange")
    home = root / "warehouse"
    Warehouse(home).init()
    (root / "nagios.log").write_text(NIGHT)
    ingest(Warehouse(home), [root / "nagios.log"], ReadContext())
    server = start_server(Settings(home=home, tz="UTC", api_tokens=TOKEN))
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=60) as c:
        yield c


def _assert_4xx(r: httpx.Response) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])


def test_the_range() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rng = TimeRange(now=now)
    assert rng.check(now + timedelta(hours=23)) == now + timedelta(hours=23)
    for bad in (now + timedelta(days=2), datetime(1969, 12, 31, 23, 59, tzinfo=UTC)):
        with pytest.raises(OutOfRange):
            rng.check(bad)
    assert TimeRange(allow_future=True, now=now).check(now + timedelta(days=400))
    assert rng.check(now + timedelta(days=400), observed=False)
    for value in (math.nan, math.inf, -math.inf, 1e20, 99_999_999_999, -1, "x", None):
        with pytest.raises(OutOfRange):
            rng.epoch_us(value)
    assert rng.epoch_us(1290018180) == 1290018180 * 1_000_000
    assert rng.epoch_us(1290018180000, unit=1000) == 1290018180 * 1_000_000


@pytest.mark.parametrize("text", QUERY_TIMES)
def test_parse_when_refuses_out_of_range(text: str) -> None:
    with pytest.raises(ConfigError, match="--at"):
        parse_when(text, tz="Europe/Paris", option="--at")


@pytest.mark.parametrize(
    "incident_id",
    [
        "inc-00010101T0000Z-abcdef",
        "inc-51381116T0946Z-abcdef",
        "inc-99991231T2359Z-abcdef",
        "inc-20101332T0000Z-abcdef",
    ],
)
def test_incident_ids_naming_no_possible_time(incident_id: str, client: httpx.Client) -> None:
    with pytest.raises(NotFoundError):
        incident_onset(incident_id)
    _assert_4xx(client.get(f"/api/v1/incidents/{incident_id}"))
    _assert_4xx(client.get(f"/dashboards/incidents/{incident_id}"))


@pytest.mark.parametrize("at", QUERY_TIMES)
def test_query_times(at: str, client: httpx.Client) -> None:
    _assert_4xx(client.get("/api/v1/explain", params={"at": at, "tz": "UTC"}))
    _assert_4xx(client.get("/api/v1/changes", params={"at": at, "tz": "UTC"}))
    _assert_4xx(client.get("/dashboards/explain", params={"at": at}))
    _assert_4xx(client.get("/dashboards/services/bo-primary", params={"start": at}))


@pytest.mark.parametrize("week", ["0001-W01", "5138-W46", "9999-W52", "1969-W52", "2200-W01"])
def test_weeks(week: str, client: httpx.Client) -> None:
    _assert_4xx(client.get("/dashboards/weekly", params={"week": week}))


def _bodies(when: str) -> dict[str, Any]:
    return {
        "deploy": {"id": "tr-1", "timestamp": when, "service": "www-main", "version": "v1"},
        "pagerduty": {
            "routing_key": "R0UTINGKEYEXAMPLE0000000000000AB",
            "payload": {"summary": "Deploy api v77", "timestamp": when, "source": "ci"},
        },
        "github": {
            "action": "created",
            "deployment_status": {"id": 1, "state": "success", "environment": "prod", "created_at": when},
            "deployment": {
                "id": 2,
                "sha": "9f1c2ab7e0d4c1f2a3b4c5d6e7f8091a2b3c4d5e",
                "ref": "v1",
                "environment": "prod",
                "payload": {"service": "www-main"},
                "created_at": when,
            },
            "repository": {"full_name": "acme/www"},
        },
    }


AHEAD = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("when", [*ISO_TIMES, AHEAD])
@pytest.mark.parametrize("fmt", ["deploy", "pagerduty", "github"])
def test_posted_changes(when: str, fmt: str, client: httpx.Client, live: LiveServer) -> None:
    before = _listing(live.home)
    r = client.post(
        "/api/v1/changes",
        params={"format": fmt},
        json=_bodies(when)[fmt],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    _assert_4xx(r)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _listing(live.home) == before


@pytest.mark.parametrize("value", ["1e20", "NaN", "Infinity", "99999999999000", "253402300799000"])
def test_posted_grafana_times(value: str, client: httpx.Client, live: LiveServer) -> None:
    before = _listing(live.home)
    body = '{"time": ' + value + ', "text": "Deploy webmail v3", "tags": ["deploy"]}'
    r = client.post(
        "/api/v1/changes",
        content=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    _assert_4xx(r)
    assert _listing(live.home) == before


def test_cli_explain_at(tmp_path: Path) -> None:
    home = tmp_path / "warehouse"
    Warehouse(home).init()
    for at in ("0001-01-01T00:30:00+01:00", "99999999999", "9999-12-31T23:30:00-05:00"):
        result = run_cli("explain", "--at", at, "--home", home)
        assert_one_line_error(result, "--at")


def test_allow_future(tmp_path: Path) -> None:
    """--allow-future (or the setting) lets observed times ahead of the clock in; not past 2200."""
    ahead = int(time.time()) + 3 * 86400
    src = tmp_path / "future.log"
    src.write_text(f"[{ahead}] SERVICE ALERT: bo;HTTP;OK;HARD;1;OK\n")
    home = tmp_path / "warehouse"
    Warehouse(home).init()
    refused = run_cli("ingest", src, "--home", home, "--no-analyze")
    assert_one_line_error(refused, "future.log", "line 1", "--allow-future")
    ok = run_cli("ingest", src, "--home", home, "--no-analyze", "--allow-future", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rows_added"]["states"] == 1


@pytest.mark.parametrize("at", ["1970-01-01T00:00:00Z", "2199-12-31T23:59:00Z", "0", "7258118399"])
def test_the_edges_of_the_range_answer_without_500(at: str, client: httpx.Client) -> None:
    for path, params in (
        ("/api/v1/explain", {"at": at, "tz": "UTC"}),
        ("/api/v1/changes", {"at": at, "tz": "UTC"}),
        ("/dashboards/explain", {"at": at}),
        ("/dashboards/services/bo-primary", {"start": at}),
    ):
        r = client.get(path, params=params)
        assert r.status_code < 500, (path, r.status_code, r.text[:300])
    for week in ("1970-W01", "2199-W52"):
        r = client.get("/dashboards/weekly", params={"week": week})
        assert r.status_code < 500, (week, r.status_code, r.text[:300])
