"""What every reader shares: the context it reads in and what it returns.

A reader is a module in ``whatchanged.ingest`` exposing a :class:`Reader`
instance named ``READER``.  ``sniff`` looks at a file's name and first bytes
and says whether the reader understands it; ``read`` turns the whole file
into normalised Arrow tables (schemas in ``whatchanged.engine.schema``).

Readers never touch the warehouse.  In strict mode (the default) the first
bad row raises :class:`~whatchanged.engine.errors.InputError` naming file,
line, field, expected and found; with ``skip_bad`` the reader keeps the good
rows and reports each bad one through :meth:`ReadContext.reject`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from whatchanged.engine.errors import InputError


@dataclass
class ReadContext:
    """Options of one ingest run, passed to every reader."""

    tz: str = "UTC"
    skip_bad: bool = False
    service_label: str | None = None  # Prometheus: label naming the service
    rejected: list[InputError] = field(default_factory=list)
    tz_assumed: bool = False  # set by a reader that read naive times in ``tz``

    def reject(self, error: InputError) -> None:
        """Raise ``error`` in strict mode, record it with ``skip_bad``."""
        if not self.skip_bad:
            raise error
        self.rejected.append(error)


@dataclass(frozen=True)
class Reader:
    """One input format."""

    name: str  # value of ``--format``
    description: str
    sniff: Callable[[Path, bytes], bool]
    read: Callable[[Path, ReadContext], dict[str, pa.Table]]
    #: Files this reader consumes itself when it reads ``path`` (e.g. the
    #: Pingdom ``summary.outage.<id>.json`` files beside ``checks.json``).
    companions: Callable[[Path], list[Path]] = lambda path: []
