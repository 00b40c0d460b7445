"""Times and durations typed by people (CLI options, query parameters).

``parse_when`` accepts:

* ISO 8601 with an offset or ``Z`` (``2010-11-17T19:23:00+01:00``) — the zone is
  taken from the string;
* ``YYYY-MM-DD HH:MM[:SS]`` or ``YYYY-MM-DDTHH:MM`` without offset — read in ``tz``;
* ``HH:MM`` alone — that wall time on ``default_day`` (the latest day that has
  data, decided by the caller), read in ``tz``;
* epoch seconds (``1290018180``).

``require_tz=True`` refuses times without an offset when no zone was given
(the HTTP API's rule).  Everything returned is an aware UTC ``datetime`` in
1970–2200 (:mod:`whatchanged.engine.timerange`); anything else is a
``ConfigError`` naming the option, never an ``OverflowError``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from whatchanged.engine.errors import ConfigError, NotFoundError
from whatchanged.engine.timerange import RANGE_TEXT, OutOfRange, TimeRange

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def zone(name: str, *, option: str = "time zone") -> ZoneInfo:
    """The ``ZoneInfo`` for ``name`` or a ConfigError naming ``option``: the one zone lookup."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{option}: expected an IANA name such as Europe/Paris or UTC, found {name!r}"
        ) from None


#: Times people ask about are held to 1970–2200 only: a question about a time without data finds nothing.
QUESTION_RANGE = TimeRange(allow_future=True)
_INCIDENT_ID = re.compile(r"^inc-(\d{8}T\d{4})Z-[0-9a-f]{6}$")


def parse_when(
    text: str,
    *,
    tz: str | None = None,
    default_day: date | None = None,
    option: str = "time",
    require_tz: bool = False,
) -> datetime:
    """Parse a time typed by a person into an aware UTC datetime in 1970–2200 (see module doc)."""
    try:
        when = _parse_when(text, tz, default_day, option, require_tz)
        return QUESTION_RANGE.check(when, observed=False)
    except OutOfRange as exc:
        raise ConfigError(f"{option}: expected {exc.expected}, found {text.strip()!r}") from None
    except (OverflowError, ValueError):  # year 1 or 9999 shifted past the ends of datetime
        raise ConfigError(f"{option}: expected {RANGE_TEXT}, found {text.strip()!r}") from None


def incident_onset(incident_id: str) -> datetime:
    """The onset written in an incident id (``inc-YYYYMMDDTHHMMZ-<6 hex>``), checked.

    A NotFoundError when the id is not of that shape or names a time that cannot be (month 13,
    the year 1 or 5138): no incident can have that id."""
    m = _INCIDENT_ID.match(incident_id.strip())
    if not m:
        raise NotFoundError(f"incident id: expected 'inc-YYYYMMDDTHHMMZ-<6 hex>', found {incident_id!r}")
    try:
        onset = datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
        return QUESTION_RANGE.check(onset, observed=False)
    except (ValueError, OverflowError):
        raise NotFoundError(
            f"incident id: {incident_id!r} names no possible onset (expected {RANGE_TEXT})"
        ) from None


def _parse_when(
    text: str, tz: str | None, default_day: date | None, option: str, require_tz: bool
) -> datetime:
    """:func:`parse_when` before the range check."""
    raw = text.strip()
    expected = "ISO 8601 with offset, 'YYYY-MM-DD HH:MM' or 'HH:MM' (with --tz), or epoch seconds"
    if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
        return datetime.fromtimestamp(float(raw), tz=UTC)
    m = _HHMM.match(raw)
    if m:
        if default_day is None:
            raise ConfigError(f"{option}: 'HH:MM' needs a day, and the warehouse has no data yet")
        if tz is None and require_tz:
            raise ConfigError(f"{option}: {raw!r} has no offset; give tz= or an ISO 8601 offset")
        hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if hh > 23 or mm > 59 or ss > 59:
            raise ConfigError(f"{option}: expected a wall time HH:MM, found {raw!r}")
        local = datetime(default_day.year, default_day.month, default_day.day, hh, mm, ss)
        return local.replace(tzinfo=zone(tz or "UTC")).astimezone(UTC)
    candidate = raw.replace(" ", "T", 1) if re.match(r"^\d{4}-\d{2}-\d{2} \d", raw) else raw
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ConfigError(f"{option}: expected {expected}, found {raw!r}") from None
    if parsed.tzinfo is None:
        if tz is None and require_tz:
            raise ConfigError(f"{option}: {raw!r} has no offset; give tz= or an ISO 8601 offset")
        parsed = parsed.replace(tzinfo=zone(tz or "UTC"))
    return parsed.astimezone(UTC)


def parse_duration(text: str, *, option: str = "duration") -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w`` or plain seconds, as a timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise ConfigError(f"{option}: expected a duration such as 30m, 2h or 1d, found {text!r}")
    unit = (m.group(2) or "s").lower()
    return timedelta(seconds=float(m.group(1)) * _UNITS[unit])


def fmt_local(ts: datetime, tz: str = "UTC", *, with_date: bool = False) -> str:
    """Format an aware datetime in ``tz`` for people: ``19:23`` or ``2010-11-17 19:23``."""
    local = ts.astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def fmt_iso(ts: datetime | None, tz: str = "UTC") -> str | None:
    """An aware datetime as ISO 8601 with the offset of ``tz`` (``None`` stays ``None``)."""
    return ts.astimezone(zone(tz)).isoformat() if ts is not None else None
