"""Right after a commit of monitoring data, a question already answered on the previous data
is answered from it (flagged) when the new detection takes longer than ``STALE_AFTER_S``,
and the new answer serves the next asker: a commit never stalls every responder at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest
from fastapi import Response

from whatchanged.api.deps import Memo, Reading
from whatchanged.dashboards.stale import STALE_HEADER
from whatchanged.engine.snapshot import Snapshot


def _db(con: duckdb.DuckDBPyConnection, data: str) -> Snapshot:
    """A reading whose metrics are one file named after ``data`` (its data version), committed
    by a commit of the same name."""
    home = Path("/warehouse")
    files = {"metrics": [str(home / "metrics" / f"{data}.parquet")]}
    return Snapshot(con, home=home, manifests=[{"txid": data}], files=files)


def _snapshot(memo: Memo, data: str, response: Response | None = None, *, fresh: bool = False) -> Reading:
    root = duckdb.connect()
    return Reading(
        _db(root.cursor(), data), memo, fork=lambda: _db(root.cursor(), data), response=response, fresh=fresh
    )


def test_a_new_data_version_is_computed_once_and_the_old_answer_serves_meanwhile() -> None:
    memo = Memo()
    first = _snapshot(memo, "v1")
    assert first.by_data(("incidents_at", "19:23"), lambda cur: cur.sql("SELECT 1").fetchall()[0][0]) == 1

    release = threading.Event()
    calls: list[str] = []

    def slow(cur: Snapshot) -> int:
        calls.append("v2")
        release.wait(10)
        return int(cur.sql("SELECT 2").fetchall()[0][0])

    response = Response()
    second = _snapshot(memo, "v2", response)
    t0 = time.perf_counter()
    value = second.by_data(("incidents_at", "19:23"), slow)
    waited = time.perf_counter() - t0
    assert value == 1  # the answer on the data before the commit ...
    assert STALE_HEADER in response.headers  # ... and the response says so
    assert 0.9 <= waited < 5

    # a second asker meanwhile does not start another computation
    other = Response()
    assert _snapshot(memo, "v2", other).by_data(("incidents_at", "19:23"), slow) == 1
    assert calls == ["v2"]
    assert STALE_HEADER in other.headers

    release.set()
    deadline = time.monotonic() + 10
    fresh = Response()
    while time.monotonic() < deadline:
        fresh = Response()
        if _snapshot(memo, "v2", fresh).by_data(("incidents_at", "19:23"), slow) == 2:
            break
        time.sleep(0.05)
    assert STALE_HEADER not in fresh.headers
    assert calls == ["v2"]


def test_a_question_never_answered_waits_for_its_answer() -> None:
    memo = Memo()
    response = Response()
    snap = _snapshot(memo, "v1", response)

    def slow(_cur: Snapshot) -> str:
        time.sleep(1.5)
        return "computed"

    assert snap.by_data(("incidents_at", "18:43"), slow) == "computed"
    assert STALE_HEADER not in response.headers


def test_an_error_reaches_the_asker_and_is_not_cached() -> None:
    memo = Memo()
    snap = _snapshot(memo, "v1")

    def broken(_cur: Snapshot) -> int:
        raise LookupError("no such incident")

    with pytest.raises(LookupError):
        snap.by_data(("get_incident", "inc-x"), broken)
    assert snap.by_data(("get_incident", "inc-x"), lambda _cur: 3) == 3


def test_a_client_asking_for_fresh_data_waits_for_it() -> None:
    memo = Memo()
    assert _snapshot(memo, "v1").by_data(("incidents_at", "19:23"), lambda _cur: "old") == "old"
    response = Response()
    fresh = _snapshot(memo, "v2", response, fresh=True)

    def slow(_cur: Snapshot) -> str:
        time.sleep(1.5)
        return "new"

    assert fresh.by_data(("incidents_at", "19:23"), slow) == "new"
    assert STALE_HEADER not in response.headers


def test_the_same_question_on_a_range_that_grew_is_answered_from_the_smaller_one() -> None:
    memo = Memo()
    whole = ("find_incidents", None, None, "UTC")  # "all the data", whatever range that is now
    first = _snapshot(memo, "v1")
    assert first.by_data(("find_incidents", "to 23:00"), lambda _cur: ("a",), question=whole) == ("a",)
    release = threading.Event()

    def slow(_cur: Snapshot) -> tuple[str, ...]:
        release.wait(10)
        return ("a", "b")

    response = Response()
    later = _snapshot(memo, "v2", response)
    assert later.by_data(("find_incidents", "to 23:59"), slow, question=whole) == ("a",)
    assert STALE_HEADER in response.headers
    release.set()
