"""The one stale-while-revalidate primitive the API's answers and the dashboards' pages share."""

from __future__ import annotations

import threading

import pytest

from whatchanged.dashboards.stale import VersionedCache, wants_fresh


def test_get_computes_a_key_once_and_keeps_no_error() -> None:
    cache = VersionedCache[int](size=2)
    calls: list[str] = []
    assert cache.get("a", lambda: calls.append("a") or 1) == 1
    assert cache.get("a", lambda: calls.append("again") or 2) == 1
    assert calls == ["a"]
    with pytest.raises(LookupError):
        cache.get("b", lambda: (_ for _ in ()).throw(LookupError("no")))
    assert cache.get("b", lambda: 3) == 3
    cache.get("c", lambda: 4)  # LRU: "a" is the oldest of three
    assert cache.peek("a") is None
    assert cache.peek("c") == 4


def test_serve_runs_one_computation_per_family_and_serves_the_newest_kept_meanwhile() -> None:
    cache = VersionedCache[str]()
    assert cache.serve(("q", 1), "q", lambda: lambda: "v1", order=1, wait_s=5) == ("v1", False)
    gate = threading.Event()
    started: list[int] = []

    def slow(version: int) -> object:
        started.append(version)
        return lambda: gate.wait(10) and f"v{version}"

    assert cache.serve(("q", 2), "q", lambda: slow(2), order=2, wait_s=0.05) == ("v1", True)
    # a newer version meanwhile joins the computation in flight rather than starting another
    assert cache.serve(("q", 3), "q", lambda: slow(3), order=3, wait_s=0.05) == ("v1", True)
    assert started == [2]
    gate.set()
    # the fresh reader of version 3 waits for version 3 itself
    assert cache.serve(("q", 3), "q", lambda: slow(3), order=3, wait_s=0.05, fresh=True) == ("v3", False)
    assert cache.stale == 2


def test_a_value_not_kept_is_never_served_stale() -> None:
    cache = VersionedCache[int](keep=lambda v: v > 0)
    assert cache.serve(("q", 1), "q", lambda: lambda: -1, order=1, wait_s=0.01) == (-1, False)
    assert cache.peek(("q", 1)) is None


@pytest.mark.parametrize(
    ("header", "fresh"), [("no-cache", True), ("max-age=0", True), ("Max-Age = 0", True), ("", False)]
)
def test_wants_fresh(header: str, fresh: bool) -> None:
    assert wants_fresh(header) is fresh
