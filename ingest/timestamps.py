"""Timestamps of the metric readers (CSV and Parquet): epoch seconds or milliseconds (told
apart by magnitude), ISO 8601 with an offset, or local times read in ``ctx.tz`` — vectorised
for a whole column (:func:`ts_column`), and one value at a time to say exactly what is wrong
with it (:func:`parse_one_ts`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from whatchanged.engine.schema import TS
from whatchanged.engine.timeparse import zone
from whatchanged.engine.timerange import OutOfRange
from whatchanged.ingest.base import ReadContext

#: Epoch values at or above this are milliseconds (1e11 s is the year 5138).
MS_FROM = 1e11
#: … and at or above this they are neither seconds nor milliseconds.
EPOCH_MAX = 1e14
EPOCH_TEXT = re.compile(r"^[+-]?\d+(\.\d*)?$")
OFFSET_TEXT = re.compile(r"(Z|z|[+-]\d\d(:?\d\d)?)$")


class SlowPath(Exception):
    """The fast path cannot read this file; take the precise path."""


def epoch_to_us(values: pa.Array) -> pa.Array:
    """Epoch seconds or milliseconds (per value, by magnitude) → ``int64`` µs.

    Raises ``SlowPath`` for values out of range, so the caller can say which.
    """
    if pa.types.is_integer(values.type):
        v = values.cast(pa.int64())
        mag = pc.abs(v)
        if pc.any(pc.greater_equal(mag, pa.scalar(int(EPOCH_MAX)))).as_py():
            raise SlowPath
        is_ms = pc.greater_equal(mag, pa.scalar(int(MS_FROM)))
        return pc.if_else(is_ms, pc.multiply(v, 1000), pc.multiply(v, 1_000_000))
    f = values.cast(pa.float64())
    mag = pc.abs(f)
    if not pc.all(pc.less(mag, EPOCH_MAX)).as_py():
        raise SlowPath
    scale = pc.if_else(pc.greater_equal(mag, MS_FROM), 1e3, 1e6)
    return pc.round(pc.multiply(f, scale)).cast(pa.int64())


def iso_to_ts(values: pa.Array, ctx: ReadContext) -> pa.Array:
    """ISO 8601 strings (all with an offset, or all without) → UTC timestamps."""
    has_offset = pc.match_substring_regex(values, OFFSET_TEXT.pattern)
    n_off = pc.sum(has_offset.cast(pa.int64())).as_py() or 0
    try:
        if n_off == len(values):
            return pc.cast(values, TS)
        if n_off:
            raise SlowPath
        naive = pc.cast(values, pa.timestamp("us"))
        ctx.tz_assumed = True
        local = pc.assume_timezone(naive, timezone=_zone_name(ctx.tz))
        return local.cast(TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise SlowPath from None


def _zone_name(tz: str) -> str:
    zone(tz)  # ConfigError for an unknown zone
    return tz


def parse_one_ts(text: str, ctx: ReadContext) -> tuple[int | None, str]:
    """One timestamp cell → (µs since epoch, '') or (None, what was expected)."""
    raw = text.strip()
    if not raw:
        return None, "a timestamp"
    if EPOCH_TEXT.match(raw):
        num = float(raw)
        if abs(num) >= EPOCH_MAX:
            return None, "epoch seconds or milliseconds (a value below 1e14)"
        if "." not in raw:
            n = int(raw)
            return _in_range(n * 1000 if abs(n) >= MS_FROM else n * 1_000_000, ctx)
        return _in_range(round(num * (1e3 if abs(num) >= MS_FROM else 1e6)), ctx)
    iso = raw[:-1] + "+00:00" if raw[-1] in "Zz" else raw
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None, "epoch seconds, epoch milliseconds or an ISO 8601 time"
    if parsed.tzinfo is None:
        ctx.tz_assumed = True
        tzinfo = zone(ctx.tz)
        early = parsed.replace(tzinfo=tzinfo, fold=0)
        late = parsed.replace(tzinfo=tzinfo, fold=1)
        if early.astimezone(UTC).astimezone(tzinfo).replace(tzinfo=None) != parsed:
            return None, f"a local time that exists in {ctx.tz} (this one falls in a DST gap; give an offset)"
        if early.utcoffset() != late.utcoffset():
            return (
                None,
                f"a local time that occurs once in {ctx.tz} (this one is ambiguous: DST change; give an offset)",
            )
        parsed = early
    try:
        delta = parsed.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    except OverflowError:  # year 1 or 9999 shifted past the ends of datetime
        return None, ctx.times.expected()
    return _in_range(delta // timedelta(microseconds=1), ctx)


def _in_range(us: int, ctx: ReadContext) -> tuple[int | None, str]:
    """``(us, '')`` when ``us`` is a plausible time (engine.timerange), else ``(None, expected)``."""
    try:
        return ctx.times.check_us(us), ""
    except OutOfRange as exc:
        return None, exc.expected


def ts_column(values: pa.Array | pa.ChunkedArray, ctx: ReadContext) -> pa.Array:
    """A timestamp column of any supported type → ``timestamp[us, UTC]`` (or ``SlowPath``)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count:
        raise SlowPath
    t = values.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            ctx.tz_assumed = True
            return pc.assume_timezone(values, timezone=_zone_name(ctx.tz)).cast(TS)
        return values.cast(TS)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return epoch_to_us(values).cast(TS)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = pc.utf8_trim_whitespace(values)
        if len(values) == 0:
            return pa.array([], TS)
        numeric = pc.match_substring_regex(values, EPOCH_TEXT.pattern)
        if pc.all(numeric).as_py():
            try:
                return epoch_to_us(pc.cast(values, pa.float64())).cast(TS)
            except pa.ArrowInvalid:
                raise SlowPath from None
        if pc.any(numeric).as_py():
            raise SlowPath
        return iso_to_ts(values, ctx)
    raise SlowPath
