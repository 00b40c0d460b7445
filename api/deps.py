"""Typed dependencies of the routes: settings, warehouse reads, auth, bodies, times.

Routes declare what they need with the ``Annotated`` aliases defined here
(``SettingsDep``, ``DbDep``, ``ReadingDep``, ``WriterDep``, ``JsonBodyDep`` …), in the
manner of full-stack-fastapi-template's ``api/deps.py``.

Reads go through one :class:`WarehouseReader` per process: a single
in-memory DuckDB connection holding the warehouse views, and one cursor per
request (DuckDB connections must not run two queries at once; cursors of the
same database may).  Before handing out a cursor the reader checks the
warehouse's ``_commits/`` folder (one ``stat`` and one ``listdir``) and
recreates the views when a commit landed, so a write — ours or a concurrent
``whatchanged ingest`` — is visible to the next request.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import duckdb
from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from whatchanged.api.problems import FieldError, ProblemError, found_repr
from whatchanged.dashboards.page_cache import STALE_HEADER, wants_fresh
from whatchanged.engine.errors import ConfigError, WarehouseError
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.store import commit_probe
from whatchanged.engine.timeparse import parse_duration, parse_when, zone
from whatchanged.engine.warehouse import Warehouse, latest_day

#: Times accepted from the API lie in this range; anything else is a typo or an attack.
MAX_DURATION = timedelta(days=366)
TIME_EXPECTED = (
    "ISO 8601 with an offset (2010-11-17T19:23:00+01:00 or …Z), epoch seconds, "
    "or 'YYYY-MM-DD HH:MM' / 'HH:MM' together with tz="
)
T = TypeVar("T")
_HHMM = re.compile(r"^\s*\d{1,2}:\d{2}(:\d{2})?\s*$")


# -- settings -----------------------------------------------------------------------------
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


# -- reading the warehouse -------------------------------------------------------------------
#: how long a request waits for detection on newly committed data before it is answered from
#: the previous data version (flagged ``X-Whatchanged-Stale``); the new answer keeps being
#: computed and serves the next request
STALE_AFTER_S = 1.0


class _Bounded(OrderedDict[Hashable, Any]):
    """An insertion-ordered dict keeping its ``size`` newest keys."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: Hashable, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Memo:
    """A small thread-safe LRU cache that computes each key once (concurrent askers wait).

    Exceptions are not cached.  Values must be immutable (engine results are
    frozen dataclasses).
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._done: OrderedDict[Hashable, Any] = OrderedDict()
        self._running: dict[Hashable, Future[Any]] = {}
        #: family → (order, value) of its newest data version, for :meth:`get_or_previous`
        self._previous: OrderedDict[Hashable, Any] = _Bounded(size)
        self.hits = 0
        self.misses = 0
        self.stale = 0  # answers given from an older data version

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                self.hits += 1
                value: T = self._done[key]
                return value
            future = self._running.get(key)
            owner = future is None
            if future is None:
                future = self._running[key] = Future()
                self.misses += 1
        if not owner:
            waited: T = future.result()
            return waited
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                self._running.pop(key, None)
            future.set_exception(exc)
            raise
        with self._lock:
            self._running.pop(key, None)
            self._done[key] = value
            while len(self._done) > self.size:
                self._done.popitem(last=False)
        future.set_result(value)
        return value

    def get_or_previous(
        self,
        key: Hashable,
        family: Hashable,
        start: Callable[[], Callable[[], T]],
        *,
        order: Any,
        wait_s: float,
    ) -> tuple[T, bool]:
        """``(value, stale)``: the value of ``key``, computed once; or, when it is not ready
        within ``wait_s`` seconds and some other key of the same ``family`` (the same question
        on an older data version) has a value, that value with ``stale`` True while the
        computation goes on in the background and lands in the cache for the next asker.

        ``start()`` is called by the one request that starts the computation, in its own
        thread, and returns the computation to run (it must not use the request's cursor,
        which closes when the request ends).  ``order`` sorts data versions (the commit
        key): a computation on older data finishing late never replaces a newer answer as
        the family's previous one.
        """
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                self.hits += 1
                value: T = self._done[key]
                return value, False
            future = self._running.get(key)
            kept: tuple[Any, T] | None = self._previous.get(family)
            if future is None:
                future = self._running[key] = Future()
                self.misses += 1
                compute = start()
                threading.Thread(
                    target=self._finish, args=(key, family, order, compute, future), daemon=True, name="memo"
                ).start()
        try:
            fresh: T = future.result(timeout=wait_s if kept is not None else None)
            return fresh, False
        except FutureTimeout:
            assert kept is not None  # waited without a timeout otherwise
            with self._lock:
                self.stale += 1
            return kept[1], True

    def _finish(
        self, key: Hashable, family: Hashable, order: Any, compute: Callable[[], T], future: Future[T]
    ) -> None:
        try:
            value = compute()
        except BaseException as exc:  # handed to every waiter; nothing cached
            with self._lock:
                self._running.pop(key, None)
            future.set_exception(exc)
            return
        with self._lock:
            self._running.pop(key, None)
            self._done[key] = value
            kept = self._previous.get(family)
            if kept is None or kept[0] <= order:
                self._previous[family] = (order, value)
            while len(self._done) > self.size:
                self._done.popitem(last=False)
        future.set_result(value)


@dataclass(frozen=True)
class Reading:
    """One request's reading of the warehouse: the engine's :class:`Snapshot` (connection,
    files, data versions) and the process's answers, cached by data version."""

    db: Snapshot
    memo: Memo
    #: the same reading on a new cursor, for work that outlives the request
    fork: Callable[[], Snapshot] | None = None
    #: the response whose headers say when an answer comes from older data
    response: Response | None = None
    #: the client asked for fresh answers only (``Cache-Control: no-cache``)
    fresh: bool = False

    def by_data(
        self,
        key: tuple[Hashable, ...],
        compute: Callable[[Snapshot], T],
        *,
        question: tuple[Hashable, ...] | None = None,
    ) -> T:
        """``compute(snapshot)`` once per detection data version (:meth:`Snapshot.data_version`).
        Right after a commit of monitoring data, when the new version takes longer than
        :data:`STALE_AFTER_S` and the same ``question`` (default: ``key``; e.g. "the incidents
        of all the data", whatever range that resolves to now) was answered on an older
        version, that answer is returned and the response says so in :data:`STALE_HEADER`.
        A client asking for a fresh answer (``Cache-Control: no-cache``) waits for it."""
        fork = self.fork
        versioned = (key[0], self.db.data_version(), *key[1:])
        if fork is None or self.fresh:
            return self.memo.get(versioned, lambda: compute(self.db))

        def start() -> Callable[[], T]:
            db = fork()

            def run() -> T:
                try:
                    return compute(db)
                finally:
                    db.close()

            return run

        value, stale = self.memo.get_or_previous(
            versioned,
            ("by_data", *(question or key)),
            start,
            order=self.db.latest_commit,
            wait_s=STALE_AFTER_S,
        )
        if stale and self.response is not None:
            self.response.headers[STALE_HEADER] = "1"
        return value


class WarehouseReader:
    """The per-process DuckDB connection with the warehouse views, refreshed on commit."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._lock = threading.Lock()
        self._base: Snapshot | None = None
        self._key: str | None = None
        self.memo = Memo()
        self.refreshes = 0

    def _commit_key(self) -> str:
        """What is committed, probed cheaply (:func:`commit_probe`): when it changes, the views
        are made again."""
        self.warehouse.require()
        return commit_probe(self.warehouse.home)

    def snapshot(self) -> Snapshot:
        """What is committed now, on a new cursor (caller closes it)."""
        key = self._commit_key()  # taken before refreshing: a commit landing meanwhile changes it
        with self._lock:
            if self._base is None or key != self._key:
                con = self._base.con if self._base is not None else duckdb.connect(":memory:")
                self._base = self.warehouse.views(con)
                self._key = key
                self.refreshes += 1
            return self._base.cursor()

    def reading(self, response: Response | None = None, *, fresh: bool = False) -> Reading:
        """A :class:`Reading` of what is committed now (caller closes ``reading.db``);
        ``response``: where to say that an answer comes from older data."""
        db = self.snapshot()

        def fork() -> Snapshot:
            with self._lock:
                if self._base is None:
                    raise WarehouseError("the warehouse reader is closed")
                return db.over(self._base.con.cursor())

        return Reading(db, self.memo, fork=fork, response=response, fresh=fresh)

    def close(self) -> None:
        with self._lock:
            if self._base is not None:
                self._base.close()
                self._base = None
                self._key = None


async def get_reader(request: Request) -> WarehouseReader:
    reader: WarehouseReader = request.app.state.reader
    return reader


async def get_warehouse(request: Request) -> Warehouse:
    reader: WarehouseReader = request.app.state.reader
    return reader.warehouse


# The dependencies below are plain ``def``: FastAPI runs them on its thread pool, not on the
# event loop.  Usually they stat the commits folder and open a cursor (microseconds), but after
# a commit they read every manifest and recreate the views, and they may wait for another
# thread doing so: on the event loop that would stall every request in flight.
def get_db(reader: Annotated[WarehouseReader, Depends(get_reader)]) -> Iterator[Snapshot]:
    db = reader.snapshot()
    try:
        yield db
    finally:
        db.close()


def get_reading(
    reader: Annotated[WarehouseReader, Depends(get_reader)], request: Request, response: Response
) -> Iterator[Reading]:
    reading = reader.reading(response, fresh=wants_fresh(request.headers.get("cache-control", "")))
    try:
        yield reading
    finally:
        reading.db.close()


ReaderDep = Annotated[WarehouseReader, Depends(get_reader)]
ReadingDep = Annotated[Reading, Depends(get_reading)]
WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]
DbDep = Annotated[Snapshot, Depends(get_db)]


# -- writes: bearer token and JSON body ---------------------------------------------------------
_bearer = HTTPBearer(
    auto_error=False,
    description="A token from WHATCHANGED_API_TOKENS (comma-separated). Only writes need one.",
)


async def require_writer(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The writer's identity (``token-<n>``) or a 401/403 problem."""
    tokens = settings.token_list
    if not tokens:
        raise ProblemError(
            403,
            "writes are disabled: no API token is configured on this server (set WHATCHANGED_API_TOKENS)",
            slug="forbidden",
        )
    if credentials is None or not credentials.credentials:
        raise ProblemError(
            401,
            "this write needs an 'Authorization: Bearer <token>' header",
            slug="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="whatchanged"'},
        )
    given = credentials.credentials.encode("utf-8", "replace")
    # compare against every token, without stopping early
    matches = [hmac.compare_digest(given, t.encode("utf-8", "replace")) for t in tokens]
    if not any(matches):
        raise ProblemError(403, "the bearer token is not accepted", slug="forbidden")
    return f"token-{matches.index(True) + 1}"


WriterDep = Annotated[str, Depends(require_writer)]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def json_body(request: Request) -> Any:
    """The parsed JSON body; 415 unless Content-Type is JSON, 400 unless it parses."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        raise ProblemError(
            415,
            f"expected Content-Type: application/json, found {ctype[:80]!r}"
            if ctype
            else "expected Content-Type: application/json, found no Content-Type",
            slug="unsupported-media-type",
        )
    raw = await request.body()
    if not raw.strip():
        raise ProblemError(400, "the body is empty; expected a JSON document", slug="malformed-request")
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ProblemError(
            400,
            f"the body is not valid JSON{where}",
            slug="malformed-request",
            errors=[FieldError(field="body", expected="a JSON document", found=found_repr(raw[:80]))],
        ) from None


JsonBodyDep = Annotated[Any, Depends(json_body)]

#: One write at a time per process: each commit is atomic anyway, this keeps them in order.
WRITE_LOCK = threading.Lock()

M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], body: Any, *, prefix: str = "body") -> M:
    """``body`` validated as ``model``, or a 422 problem listing every bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [
            FieldError(
                field=".".join([prefix, *(str(p) for p in err["loc"])]),
                expected=err["msg"],
                found=None if err["type"] == "missing" else found_repr(err.get("input")),
            )
            for err in exc.errors()
        ]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ProblemError(
            422, f"{errors[0].field}: {errors[0].expected}{more}", slug="invalid-body", errors=errors
        ) from None


# -- parameters that need more than a type ------------------------------------------------------
def bad_param(name: str, message: str, value: object, expected: str) -> ProblemError:
    return ProblemError(
        422,
        message,
        slug="invalid-parameter",
        errors=[FieldError(field=f"query.{name}", expected=expected, found=found_repr(value))],
    )


def check_tz(tz: str | None, *, name: str = "tz") -> str | None:
    """``tz`` if it is a known IANA zone (or None), else a 422 problem."""
    if tz is None:
        return None
    try:
        zone(tz)
    except ConfigError as exc:
        raise bad_param(name, f"{name}: {exc}", tz, "an IANA time zone such as Europe/Paris or UTC") from None
    return tz


def parse_time(value: str, *, name: str, tz: str | None, con: Snapshot | None = None) -> datetime:
    """A time query parameter as aware UTC; no offset is accepted only together with tz=."""
    default_day = None
    if _HHMM.match(value) and con is not None and tz is not None:
        default_day = latest_day(con, tz)
    try:
        when = parse_when(value, tz=tz, default_day=default_day, option=name, require_tz=True)
    except ConfigError as exc:
        raise bad_param(name, str(exc), value, TIME_EXPECTED) from None
    except (OverflowError, OSError, ValueError):
        raise bad_param(name, f"{name}: {value!r} is not a usable time", value, TIME_EXPECTED) from None
    result: datetime = when  # in 1970–2200: parse_when holds it to engine.timerange
    return result


def parse_span(value: str, *, name: str) -> timedelta:
    """A duration query parameter (``90s``, ``30m``, ``2h``, ``1d``), at most a year."""
    expected = "a duration such as 30m, 2h or 1d (at most 366d)"
    try:
        span = parse_duration(value, option=name)
    except ConfigError as exc:
        raise bad_param(name, str(exc), value, expected) from None
    except (OverflowError, ValueError):
        raise bad_param(name, f"{name}: {value!r} is not a usable duration", value, expected) from None
    if span > MAX_DURATION:
        raise bad_param(name, f"{name}: {value!r} is longer than 366 days", value, expected)
    result: timedelta = span
    return result
