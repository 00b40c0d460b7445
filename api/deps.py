"""Typed dependencies of the routes: settings, warehouse reads, auth, bodies, times.

Routes declare what they need with the ``Annotated`` aliases defined here
(``SettingsDep``, ``DbDep``, ``ReadingDep``, ``WriterDep``, ``JsonBodyDep`` …; query parameters
``AtQuery``, ``TzQuery``, ``TimeQuery``, ``NameQuery``), in the
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
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import duckdb
from fastapi import Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from whatchanged.api.problems import FieldError, ProblemError, found_repr
from whatchanged.dashboards.stale import STALE_HEADER, VersionedCache, wants_fresh
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


#: the API's answers, computed once per data version (:class:`VersionedCache`, shared with the
#: dashboards' pages): routes and the pages' views read it through :attr:`Reading.memo`
Memo = VersionedCache[Any]


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
            value: T = self.memo.get(versioned, lambda: compute(self.db))
            return value

        def start() -> Callable[[], T]:
            db = fork()

            def run() -> T:
                try:
                    return compute(db)
                finally:
                    db.close()

            return run

        value, stale = self.memo.serve(
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


# -- query parameters ----------------------------------------------------------------------------
AtQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        description=(
            "The time to explain: ISO 8601 with an offset (`2010-11-17T19:23:00+01:00`), epoch seconds, "
            "or a local time (`2010-11-17 19:23`, `19:23` = that time on the latest day with data) "
            "together with `tz`."
        ),
        examples=["2010-11-17T19:23:00+01:00"],
    ),
]
TzQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="IANA zone for times without an offset, and for the times in the answer.",
        examples=["Europe/Paris"],
    ),
]
#: a time, as ``parse_time`` reads it
TimeQuery = Annotated[str | None, Query(min_length=1, max_length=64)]
#: a service, check or group name
NameQuery = Annotated[str | None, Query(min_length=1, max_length=200)]


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
