"""Rendered dashboard pages kept between requests, each with the commit state it was built from.

:class:`PageCache` builds a page once per URL and commit state on a small thread pool; a reader
asking while a newer commit's page is being built waits up to :data:`PAGE_FRESH_WAIT_S`, then
gets the previous page marked stale (a reload waits for the new one).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from whatchanged.dashboards.stale import VersionedCache

#: Rendered pages kept per app (keyed by URL and the commit state it shows).
PAGE_CACHE_SIZE = 64


#: How long a reader waits for a page being rebuilt after a commit before getting the
#: previous one, marked stale (see :class:`PageCache`).
PAGE_FRESH_WAIT_S = 1.0


#: Threads building pages (each build also runs DuckDB queries on its own threads).
PAGE_BUILDERS = 2


class PageCache:
    """Rendered pages of one app, keyed by URL, each with the commit state it was built from.

    A page is a pure function of the committed warehouse and its URL.  When a commit
    (ingest, webhook) moves the state on, the page of a URL is rebuilt once, on a small pool
    of threads, however many readers ask for it meanwhile (single flight).  A reader waits
    for the new page at most ``fresh_wait_s``; past that, if the URL has a page of an earlier
    state, it gets that one, marked stale (``X-Whatchanged-Stale: 1`` and a line at the top),
    while the rebuild finishes for the next reader.  A reader that asks for a fresh page
    (``Cache-Control: no-cache`` or ``max-age=0``, what a browser's reload sends) waits
    for it.  Only pages that rendered with status 200 are kept; LRU beyond ``size`` pages.
    The caching is :class:`~whatchanged.dashboards.stale.VersionedCache`'s, as the API's.
    """

    def __init__(self, size: int = PAGE_CACHE_SIZE, *, fresh_wait_s: float = PAGE_FRESH_WAIT_S) -> None:
        self.fresh_wait_s = fresh_wait_s
        self._pages = VersionedCache[tuple[str, int]](
            size,
            keep=lambda page: page[1] == 200,
            executor=ThreadPoolExecutor(max_workers=PAGE_BUILDERS, thread_name_prefix="page-build"),
        )

    @property
    def hits(self) -> int:
        return self._pages.hits

    @property
    def stale(self) -> int:
        return self._pages.stale

    def get(self, url: tuple[str, ...], state: str) -> str | None:
        """The page of ``url`` built from ``state``, if there is one."""
        found = self._pages.peek((url, state))
        return None if found is None else found[0]

    def serve(
        self, url: tuple[str, ...], state: str, render: Callable[[], tuple[str, int]], *, fresh: bool
    ) -> tuple[str, int, bool]:
        """``(page, status, stale)`` for ``url`` at commit ``state`` (:meth:`VersionedCache.serve`:
        one build per URL for readers accepting a stale page, one per URL and state for
        ``fresh`` ones)."""
        (page, status), stale = self._pages.serve(
            (url, state),
            url,
            lambda: render,
            order=_commit_order(state),
            wait_s=self.fresh_wait_s,
            fresh=fresh,
        )
        return page, status, stale


def _commit_order(state: str) -> str:
    """The newest manifest name in a :func:`~whatchanged.engine.store.commit_probe` (names sort
    in commit order)."""
    return state.split(":", 1)[-1]
