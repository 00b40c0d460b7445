"""The one table from the exception tree (:mod:`whatchanged.engine.errors`) to HTTP statuses.

The API's problem+json (``api/problems.py``) and the dashboards' error pages
(``dashboards/pages.py``) both answer an error with :func:`status_of`; a subclass defined
elsewhere (``ingest.collect.SourceError``) takes its nearest ancestor's row.

::

    InputError       422  invalid-body            a file or payload that does not hold what it should
    ConfigError      422  invalid-parameter       a setting, option or parameter with a bad value
    NotFoundError    404  not-found               an id, service or range that does not exist
    WarehouseError   503  warehouse-unavailable   the warehouse folder is missing or unusable
    StorageError     503  warehouse-unavailable   (a WarehouseError) the storage refused a write
    WhatchangedError 400  malformed-request       any other error we raise on purpose
"""

from __future__ import annotations

from typing import NamedTuple

from whatchanged.engine.errors import (
    ConfigError,
    InputError,
    NotFoundError,
    StorageError,
    WarehouseError,
    WhatchangedError,
)


class Status(NamedTuple):
    """An HTTP status and the problem type slug (``urn:whatchanged:problem:<slug>``)."""

    code: int
    slug: str


#: error class → its status; most specific classes first is not needed (see :func:`status_of`)
STATUS: dict[type[WhatchangedError], Status] = {
    InputError: Status(422, "invalid-body"),
    ConfigError: Status(422, "invalid-parameter"),
    NotFoundError: Status(404, "not-found"),
    WarehouseError: Status(503, "warehouse-unavailable"),
    StorageError: Status(503, "warehouse-unavailable"),
    WhatchangedError: Status(400, "malformed-request"),
}


def status_of(exc: WhatchangedError | type[WhatchangedError]) -> Status:
    """The row of the nearest class of ``exc`` (or of the class itself) in :data:`STATUS`."""
    cls = exc if isinstance(exc, type) else type(exc)
    for klass in cls.__mro__:
        if klass in STATUS:
            return STATUS[klass]
    raise TypeError(f"{cls.__name__} is not a WhatchangedError")
