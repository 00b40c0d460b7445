"""Answers computed once per data version, and served stale while a newer version's is computed.

:class:`VersionedCache` is the one home of this for the API's answers (``api/deps.Memo``) and the
dashboards' pages (:class:`~whatchanged.dashboards.page_cache.PageCache`).  A *key* is a question
at one data version; its *family* is the same question on any version.  Each key is computed
once however many ask meanwhile (single flight) and kept, LRU.  Right after a commit, a reader of
a family that already has an answer waits for the new one at most ``wait_s``, then gets the
newest kept answer marked stale (:data:`STALE_HEADER`) while the computation goes on for the
next reader; a reader asking for a fresh answer (:func:`wants_fresh`) waits for its own key.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, TypeVar

V = TypeVar("V")

#: the header of an answer built from the data committed before the latest commit (value "1"),
#: on the dashboards' pages and the API's answers alike
STALE_HEADER = "X-Whatchanged-Stale"


def wants_fresh(cache_control: str) -> bool:
    """Whether a request's ``Cache-Control`` asks for a fresh answer (``no-cache`` or
    ``max-age=0``, what a browser's reload sends) rather than one from older data."""
    asked = cache_control.lower().replace(" ", "")
    return "no-cache" in asked or "max-age=0" in asked


def _in_a_thread(run: Callable[[], None]) -> None:
    threading.Thread(target=run, daemon=True, name="versioned-cache").start()


class VersionedCache(Generic[V]):
    """Values computed once per key, kept LRU (``size`` keys), each family's newest kept.

    ``keep(value)`` says whether a computed value is kept (default: all; exceptions never
    are: they reach every waiter).  Background computations (:meth:`serve`) run on
    ``executor``, or in a daemon thread each.  Values must be immutable.
    """

    def __init__(
        self,
        size: int = 256,
        *,
        keep: Callable[[V], bool] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.size = size
        self._keep = keep
        self._executor = executor
        self._lock = threading.Lock()
        self._done: OrderedDict[Hashable, V] = OrderedDict()
        self._running: dict[Hashable, Future[V]] = {}
        #: family → the key of the one background computation readers accepting stale join
        self._flight: dict[Hashable, Hashable] = {}
        #: family → (order, value) of its newest data version, LRU too
        self._newest: OrderedDict[Hashable, tuple[Any, V]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.stale = 0  # answers given from an older data version

    def peek(self, key: Hashable) -> V | None:
        """The kept value of ``key``, if there is one (a hit)."""
        with self._lock:
            return self._done[key] if self._hit(key) else None

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value of ``key``, computed by ``compute()`` in this thread by its first asker;
        concurrent askers wait for it."""
        with self._lock:
            if self._hit(key):
                return self._done[key]
            future = self._running.get(key)
            owner = future is None
            if future is None:
                future = self._running[key] = Future()
                self.misses += 1
        if owner:
            self._finish(key, None, None, compute, future)
        return future.result()

    def serve(
        self,
        key: Hashable,
        family: Hashable,
        start: Callable[[], Callable[[], V]],
        *,
        order: Any,
        wait_s: float,
        fresh: bool = False,
    ) -> tuple[V, bool]:
        """``(value, stale)`` for ``key``, computed in the background.

        At most one computation per family runs for readers who accept a stale value: a
        reader arriving while it runs (even for an earlier version) joins it, waits at most
        ``wait_s`` when the family has a kept value, then gets that value with ``stale``
        True; a value of another key is stale too.  A ``fresh`` reader waits for ``key``
        itself.  ``start()`` is called by the reader that starts the computation and returns
        it (to run in another thread: it must not use the reader's request-bound resources).
        ``order`` sorts data versions: a computation on older data finishing late never
        replaces a newer value as the family's newest.
        """
        with self._lock:
            if self._hit(key):
                return self._done[key], False
            newest = self._newest.get(family)
            running = key if fresh else self._flight.get(family, key)
            if running not in self._running:
                running = key
            future = self._running.get(running)
            if future is None:
                future = self._running[running] = Future()
                self.misses += 1
                compute = start()
                self._launch(key, family, order, compute, future)
            if not fresh:
                self._flight[family] = running
        if fresh or newest is None:
            return future.result(), running != key
        try:
            return future.result(timeout=wait_s), running != key
        except FutureTimeout:
            with self._lock:
                self.stale += 1
            return newest[1], True

    def _hit(self, key: Hashable) -> bool:
        """(Under the lock.)  Whether ``key`` is kept; if so it counts as a hit."""
        if key not in self._done:
            return False
        self._done.move_to_end(key)
        self.hits += 1
        return True

    def _launch(
        self, key: Hashable, family: Hashable, order: Any, compute: Callable[[], V], future: Future[V]
    ) -> None:
        def run() -> None:
            self._finish(key, family, order, compute, future)

        if self._executor is None:
            _in_a_thread(run)
        else:
            self._executor.submit(run)

    def _finish(
        self,
        key: Hashable,
        family: Hashable | None,
        order: Any,
        compute: Callable[[], V],
        future: Future[V],
    ) -> None:
        try:
            value = compute()
        except BaseException as exc:  # handed to every waiter; nothing kept
            with self._lock:
                self._forget(key, family)
            future.set_exception(exc)
            return
        with self._lock:
            self._forget(key, family)
            if self._keep is None or self._keep(value):
                self._done[key] = value
                self._done.move_to_end(key)
                while len(self._done) > self.size:
                    self._done.popitem(last=False)
                if family is not None:
                    newest = self._newest.get(family)
                    if newest is None or newest[0] <= order:
                        self._newest[family] = (order, value)
                    self._newest.move_to_end(family)
                    while len(self._newest) > self.size:
                        self._newest.popitem(last=False)
        future.set_result(value)

    def _forget(self, key: Hashable, family: Hashable | None) -> None:
        """(Under the lock.)  ``key`` is no longer being computed."""
        self._running.pop(key, None)
        if family is not None and self._flight.get(family) == key:
            del self._flight[family]
