"""The one range of times whatchanged accepts, wherever a time comes in.

Every reader, the HTTP API, the dashboards and the command line hold times
to the same rule:

* finite (no NaN, no infinity);
* from 1970-01-01T00:00Z (inclusive) to 2200-01-01T00:00Z (exclusive);
* for what was *observed* — metric samples, check states, change events that
  already happened — not more than a day ahead of this machine's clock,
  unless ``allow_future`` (``whatchanged ingest --allow-future``, setting
  ``WHATCHANGED_ALLOW_FUTURE`` for the HTTP API).  A maintenance window is
  announced ahead, so its start and end, and the end of any window, are held
  to the 1970–2200 range only; so are the times people ask about (``--at``,
  ``at=``, ``week=``): a question about a time without data finds nothing.

A time outside the range raises :class:`OutOfRange` (a ``ValueError`` with
``expected`` and ``found``); callers turn it into their own error
(``InputError`` naming file, line and field; ``ConfigError`` naming the
option).  Checking before converting matters: an 11-digit epoch is the year
5138, and ``1e20`` seconds or a year-1 time with an offset overflow Python's
``datetime`` or Arrow's int64 microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive
EARLIEST_S = 0
LATEST_S = int((LATEST - EARLIEST).total_seconds())  # 7258118400
#: How far ahead of the clock an observed time may be (clocks drift, zones get mixed up).
FUTURE_SLACK = timedelta(days=1)
RANGE_TEXT = "a time from 1970-01-01 to 2200-01-01 UTC"


class OutOfRange(ValueError):
    """A time outside the range: ``expected`` says the range, ``found`` the value."""

    def __init__(self, expected: str, found: object) -> None:
        self.expected = expected
        self.found = found
        super().__init__(f"time out of range: expected {expected}, found {found!r}")


@dataclass(frozen=True)
class TimeRange:
    """The range for one run: ``allow_future`` lifts the one-day limit; ``now`` pins the clock (tests)."""

    allow_future: bool = False
    now: datetime | None = None

    def latest(self, *, observed: bool = True) -> datetime:
        """The first instant refused (exclusive upper bound)."""
        if self.allow_future or not observed:
            return LATEST
        now = self.now if self.now is not None else datetime.now(UTC)
        return min(LATEST, now.astimezone(UTC) + FUTURE_SLACK)

    def expected(self, *, observed: bool = True) -> str:
        if self.allow_future or not observed:
            return RANGE_TEXT
        upper = self.latest().strftime("%Y-%m-%d %H:%M")
        return (
            f"a time from 1970-01-01 UTC to {upper} UTC (at most a day ahead of this machine's clock; "
            "--allow-future or WHATCHANGED_ALLOW_FUTURE=1 lifts that)"
        )

    def check(self, when: datetime, *, observed: bool = True) -> datetime:
        """``when`` (aware) if it is in range, else :class:`OutOfRange`."""
        if not EARLIEST <= when < self.latest(observed=observed):
            raise OutOfRange(self.expected(observed=observed), _iso(when))
        return when

    def check_us(self, us: int, *, observed: bool = True) -> int:
        """Microseconds since the epoch, checked."""
        low = 0
        high = _us(self.latest(observed=observed))
        if not low <= us < high:
            raise OutOfRange(self.expected(observed=observed), _iso_us(us))
        return us

    def epoch(self, value: Any, *, unit: float = 1, observed: bool = True) -> datetime:
        """Epoch seconds (``unit=1``) or milliseconds (``unit=1000``) as aware UTC, checked first."""
        return EARLIEST + timedelta(microseconds=self.epoch_us(value, unit=unit, observed=observed))

    def epoch_us(self, value: Any, *, unit: float = 1, observed: bool = True) -> int:
        """Epoch seconds or milliseconds as integer microseconds, checked before converting."""
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise OutOfRange(self.expected(observed=observed), value) from None
        if not math.isfinite(number):
            raise OutOfRange(self.expected(observed=observed), value)
        seconds = number / unit
        if not EARLIEST_S <= seconds < LATEST_S + 1:
            raise OutOfRange(self.expected(observed=observed), value)
        if isinstance(value, int) and not isinstance(value, bool):
            us = value * 1_000_000 // int(unit) if unit in (1, 1000) else round(seconds * 1e6)
        else:
            us = round(seconds * 1_000_000)
        if not 0 <= us < _us(self.latest(observed=observed)):
            raise OutOfRange(self.expected(observed=observed), value)
        return us

    def first_outside(self, us: Any, *, observed: bool = True) -> int | None:
        """Index of the first value of an int64 microsecond (or timestamp) Arrow array out of range."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(us, pa.ChunkedArray):
            us = us.combine_chunks()
        if pa.types.is_timestamp(us.type):
            us = us.cast(pa.int64())
        if len(us) == 0 or us.null_count == len(us):
            return None
        bounds = pc.min_max(us)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        top = _us(self.latest(observed=observed))
        if low >= 0 and high < top:
            return None
        bad = pc.or_(pc.less(us, 0), pc.greater_equal(us, top))
        index = pc.index(bad, True).as_py()
        return None if index < 0 else int(index)


def _us(when: datetime) -> int:
    return (when - EARLIEST) // timedelta(microseconds=1)


def _iso(when: datetime) -> str:
    try:
        return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError):
        return when.isoformat()


def _iso_us(us: int) -> str:
    try:
        return _iso(EARLIEST + timedelta(microseconds=us))
    except OverflowError:
        return f"{us} µs since 1970"
