"""Rendered dashboard pages kept between requests, each with the commit state it was built from.

:class:`PageCache` builds a page once per URL and commit state on a small thread pool; a reader
asking while a newer commit's page is being built waits up to :data:`PAGE_FRESH_WAIT_S`, then
gets the previous page marked stale (a reload waits for the new one).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from whatchanged.engine.store import commit_probe

#: Rendered pages kept per app (keyed by URL, each with the commit state it shows).
PAGE_CACHE_SIZE = 64


#: How long a reader waits for a page being rebuilt after a commit before getting the
#: previous one, marked stale (see :class:`PageCache`).
PAGE_FRESH_WAIT_S = 1.0


#: Threads building pages (each build also runs DuckDB queries on its own threads).
PAGE_BUILDERS = 2


#: the header of an answer built from the data committed before the latest commit (value "1"),
#: on the dashboards' pages and the API's answers alike
STALE_HEADER = "X-Whatchanged-Stale"


def wants_fresh(cache_control: str) -> bool:
    """Whether a request's ``Cache-Control`` asks for a fresh answer (``no-cache`` or
    ``max-age=0``, what a browser's reload sends) rather than one from older data."""
    asked = cache_control.lower().replace(" ", "")
    return "no-cache" in asked or "max-age=0" in asked


class PageCache:
    """Rendered pages of one app, keyed by URL, each with the commit state it was built from.

    A page is a pure function of the committed warehouse and its URL.  When a commit
    (ingest, webhook) moves the state on, the page of a URL is rebuilt once, on a small pool
    of threads, however many readers ask for it meanwhile (single flight).  A reader waits
    for the new page at most ``fresh_wait_s``; past that, if the URL has a page of an earlier
    state, it gets that one, marked stale (``X-Whatchanged-Stale: 1`` and a line at the top),
    while the rebuild finishes for the next reader.  A reader that asks for a fresh page
    (``Cache-Control: no-cache`` or ``max-age=0``, what a browser's reload sends) waits
    for it.  Only pages that rendered with status 200 are kept; LRU beyond ``size`` URLs.
    """

    def __init__(self, size: int = PAGE_CACHE_SIZE, *, fresh_wait_s: float = PAGE_FRESH_WAIT_S) -> None:
        self.size = size
        self.fresh_wait_s = fresh_wait_s
        self._pages: OrderedDict[tuple[str, ...], tuple[str, str]] = OrderedDict()  # url → (state, page)
        self._building: dict[tuple[str, ...], tuple[str, Future[tuple[str, int]]]] = {}
        self._fresh: dict[tuple[tuple[str, ...], str], Future[tuple[str, int]]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.hits = 0
        self.stale = 0

    def get(self, url: tuple[str, ...], state: str) -> str | None:
        """The page of ``url`` built from ``state``, if there is one."""
        with self._lock:
            found = self._pages.get(url)
            if found is None or found[0] != state:
                return None
            self._pages.move_to_end(url)
            self.hits += 1
            return found[1]

    def serve(
        self, url: tuple[str, ...], state: str, render: Callable[[], tuple[str, int]], *, fresh: bool
    ) -> tuple[str, int, bool]:
        """``(page, status, stale)`` for ``url`` at commit ``state``.

        At most one build per URL runs for readers who accept a stale page: a reader
        arriving while it runs (even for an earlier state) waits on it at most
        ``fresh_wait_s``, then gets the last page kept, marked stale.  A ``fresh`` reader
        waits for a build of ``state`` itself (one per URL and state).
        """
        with self._lock:
            found = self._pages.get(url)
            if found is not None and found[0] == state:
                self._pages.move_to_end(url)
                self.hits += 1
                return found[1], 200, False
            if fresh:
                running = self._building.get(url)
                job_state, job = state, running[1] if running and running[0] == state else None
                job = job or self._fresh.get((url, state))
                if job is None:
                    job = self._fresh[(url, state)] = self._submit(url, state, render)
            else:
                running = self._building.get(url)
                if running is None:
                    running = self._building[url] = (state, self._submit(url, state, render))
                job_state, job = running
            previous = found[1] if found is not None else None
        if fresh or previous is None:
            page, status = job.result()
            return page, status, job_state != state
        try:
            page, status = job.result(timeout=self.fresh_wait_s)
        except FutureTimeout:
            with self._lock:
                self.stale += 1
            return previous, 200, True
        return page, status, job_state != state

    def _submit(
        self, url: tuple[str, ...], state: str, render: Callable[[], tuple[str, int]]
    ) -> Future[tuple[str, int]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PAGE_BUILDERS, thread_name_prefix="page-build")
        return self._pool.submit(self._build, url, state, render)

    def _build(
        self, url: tuple[str, ...], state: str, render: Callable[[], tuple[str, int]]
    ) -> tuple[str, int]:
        try:
            page, status = render()
            with self._lock:
                kept = self._pages.get(url)
                # builds may finish out of order: never replace a page of a later commit
                if status == 200 and (kept is None or _commit_order(kept[0]) <= _commit_order(state)):
                    self._pages[url] = (state, page)
                    self._pages.move_to_end(url)
                    while len(self._pages) > self.size:
                        self._pages.popitem(last=False)
            return page, status
        finally:
            with self._lock:
                if self._building.get(url, ("", None))[0] == state:
                    del self._building[url]
                self._fresh.pop((url, state), None)


def _commit_order(state: str) -> str:
    """The newest manifest name in a :func:`commit_key` (names sort in commit order)."""
    return state.split(":", 1)[-1]


def commit_key(home: Path) -> str:
    """How many commits the warehouse has and the last one (:func:`commit_probe`)."""
    return commit_probe(home)
