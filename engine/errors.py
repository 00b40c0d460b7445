"""The exception tree of whatchanged.

::

    WhatchangedError                 root: every error we raise on purpose
    ├── InputError                   bad input: names file, line, field, expected, found
    ├── ConfigError                  a setting or option with a bad value
    ├── NotFoundError                an id, service or range that does not exist
    └── WarehouseError               the warehouse folder is missing or unusable
        └── StorageError             disk full, permission denied, read-only: path and remedy

The CLI turns any of these into one line on stderr and a non-zero exit code;
the API turns them into problem+json.  Nothing else should reach a user.
"""

from __future__ import annotations


class WhatchangedError(Exception):
    """Root of every error whatchanged raises on purpose."""


class InputError(WhatchangedError):
    """A file or payload that does not hold what it should.

    The message always says where (file, line, field), what was expected and
    what was found, e.g. ``metrics.csv line 12, column 'value': expected a
    number, found 'abc'``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
        found: object = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.expected = expected
        self.found = found
        self.reason = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = self.reason
        if self.expected is not None:
            text = f"{text}: expected {self.expected}, found {self.found!r}"
        return f"{', '.join(where)}: {text}" if where else text


class ConfigError(WhatchangedError):
    """A setting or command-line option with a value we cannot use."""


class NotFoundError(WhatchangedError):
    """Something asked for by id or name does not exist."""


class WarehouseError(WhatchangedError):
    """The warehouse folder is missing, not initialised or unusable."""


class StorageError(WarehouseError):
    """The storage under the warehouse refused a read or write: disk full, permission
    denied, read-only file system.  Names the path and what to do; :attr:`public` says
    the same without the path (for anonymous HTTP clients)."""

    def __init__(self, path: str, reason: str, advice: str, *, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.advice = advice
        self.public = f"the warehouse storage refused a write: {reason}; nothing was stored, try again later"
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{path}: {reason}{extra}; {advice}")
