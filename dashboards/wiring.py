"""What the dashboard pages need from the app that mounts them, and what one page is built from.

The app hands a :class:`Wiring` over once, by overriding :func:`get_wiring` (the API app does,
``api/app.py``): the settings, its shared reader, the page cache.  The pages never read the
app's ``state``.  :func:`source` opens what one page build reads: a cursor of the shared reader
with its memo, or a connection of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends

from whatchanged.dashboards import views
from whatchanged.dashboards.page_cache import PageCache
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.warehouse import Warehouse


class Reader(Protocol):
    """A shared reader of the warehouse, as the API's: ``snapshot()`` gives what is committed
    now on a new cursor, ``memo`` keeps results across requests (keyed by data version)."""

    memo: Any

    def snapshot(self) -> Snapshot: ...


@dataclass
class Wiring:
    """What the pages need from the app that mounts them, handed over once by overriding
    :func:`get_wiring`: the settings, the app's shared reader (None: a connection per page),
    and the rendered pages kept between requests."""

    settings: Settings
    reader: Reader | None = None
    pages: PageCache = field(default_factory=PageCache)


def get_wiring() -> Wiring:
    """Override with the app's :class:`Wiring`:
    ``app.dependency_overrides[get_wiring] = lambda: wiring``."""
    raise ConfigError("dashboards: the app gave no wiring; override whatchanged.dashboards.pages.get_wiring")


WiringDep = Annotated[Wiring, Depends(get_wiring)]


def get_settings(wiring: WiringDep) -> Settings:
    return wiring.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class Source:
    """What a page is built from: a connection over the committed warehouse, and the cache
    of results that outlive one page (keyed by data version)."""

    con: Snapshot
    cache: views.Cache


@contextmanager
def source(wiring: Wiring) -> Iterator[Source]:
    """A :class:`Source` for one build, closed afterwards.  With the app's shared reader a
    cursor of it and its memo keyed by data version; otherwise a connection of its own and no
    cache."""
    settings, reader = wiring.settings, wiring.reader
    if reader is not None:
        db = reader.snapshot()
        src = Source(db, views.Cache(reader.memo, db))
    else:
        warehouse = Warehouse(settings.home)
        warehouse.require()
        src = Source(warehouse.snapshot(), views.Cache())
    try:
        yield src
    finally:
        src.con.close()
