"""What every reader shares: the context it reads in and what it returns.

A reader is a module in ``whatchanged.ingest`` exposing a :class:`Reader`
instance named ``READER``.  ``sniff`` looks at a file's name and first bytes
and says whether the reader understands it; ``read`` turns the whole file
into normalised Arrow tables (schemas in ``whatchanged.engine.schema``);
``stream``, where a reader has it, gives the same tables in parts of about
``ctx.batch_rows`` rows, so that a file larger than memory can be ingested.

Readers never touch the warehouse.  In strict mode (the default) the first
bad row raises :class:`~whatchanged.engine.errors.InputError` naming file,
line, field, expected and found; with ``skip_bad`` the reader keeps the good
rows and reports each bad one through :meth:`ReadContext.reject`.

A reader reads text through :mod:`whatchanged.ingest.text` (``lines``,
``csv_rows``: bounded lines and fields, strict UTF-8, errors naming the
line) and checks the times it parses with ``ctx.times``
(:mod:`whatchanged.engine.timerange`) so that the error names the line; the
pipeline checks every table it returns once more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.timerange import TimeRange

if TYPE_CHECKING:
    from whatchanged.engine.settings import Settings

#: Default of the ``max_line_bytes`` setting: the longest line a line-based reader accepts.
MAX_LINE_BYTES = 1 << 20
#: Default of the ``max_field_chars`` setting: the longest CSV field (Python's csv default).
MAX_FIELD_CHARS = 128 * 1024
#: Default of the ``ingest_batch_rows`` setting: rows per batch of a streaming reader.
BATCH_ROWS = 1_000_000


@dataclass
class ReadContext:
    """Options of one ingest run, passed to every reader."""

    tz: str = "UTC"
    skip_bad: bool = False
    service_label: str | None = None  # Prometheus: label naming the service
    rejected: list[InputError] = field(default_factory=list)
    tz_assumed: bool = False  # set by a reader that read naive times in ``tz``
    times: TimeRange = field(default_factory=TimeRange)  # the plausible range (engine.timerange)
    max_line_bytes: int = MAX_LINE_BYTES  # a longer line is an error, read no further
    max_field_chars: int = MAX_FIELD_CHARS  # a longer CSV field is an error
    batch_rows: int = BATCH_ROWS  # rows per part of a streaming reader (``Reader.stream``)

    @classmethod
    def from_settings(cls, settings: Settings, *, allow_future: bool = False, **options: Any) -> ReadContext:
        """The context for ``settings`` (zone, limits, time range) and the run's ``options``."""
        return cls(
            tz=settings.tz,
            times=TimeRange(allow_future=allow_future or settings.allow_future),
            max_line_bytes=settings.max_line_bytes,
            max_field_chars=settings.max_field_chars,
            batch_rows=settings.ingest_batch_rows,
            **options,
        )

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
    companions: Callable[[Path], list[Path]] = lambda _path: []
    #: The file in parts of about ``ctx.batch_rows`` rows, for inputs larger than memory
    #: (metrics CSV and Parquet); the parts together are what ``read`` returns.  None: the
    #: pipeline calls ``read``.
    stream: Callable[[Path, ReadContext], Iterator[dict[str, pa.Table]]] | None = None
