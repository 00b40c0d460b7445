"""What the change-event readers share (deploys and provider notices).

Not a reader itself.  It builds rows of the ``changes`` table
(:data:`whatchanged.engine.schema.CHANGES`), parses the time encodings the
sources use, extracts datacenter codes and names from free text, and keeps
one version per ``change_id`` inside one input (the latest by ``sequence``
then ``stamp``; the warehouse applies the same rule across inputs).

Time rules, shared by every change reader:

* a time with an offset or ``Z`` is converted to UTC;
* a time without an offset is a wall time in ``ctx.tz`` (the reader sets
  ``ctx.tz_assumed``).  A wall time that occurs twice (the autumn fold) is
  read as the *first* occurrence (summer offset); a wall time that does not
  exist (the spring gap) is read with the offset in force *before* the gap,
  so ``02:30`` on the spring-forward night in Europe/Paris is 01:30 UTC
  (03:30 CEST).  Both are what ``zoneinfo`` does with ``fold=0``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import CHANGES, SCOPE_KEYS, conform
from whatchanged.engine.timeparse import zone
from whatchanged.engine.timerange import RANGE_TEXT, OutOfRange, TimeRange
from whatchanged.ingest.base import ReadContext

#: The 1970–2200 range alone (how far ahead of the clock is checked per table, by the pipeline).
ANY_TIME = TimeRange(allow_future=True)

#: Datacenter codes in free text (OVH ``dedicated.DatacenterEnum`` families).
#: Unlike the plain ``\b…\b`` form, a code glued to a host name by a hyphen
#: (``p19-sw-01``, ``rbx-g2``) is not taken as a whole-datacenter mention.
DC_CODE_RE = re.compile(
    r"(?<![\w-])(RBX|SBG|GRA|BHS|P19|ERI|LIM|WAW|VIN|HIL|SGP|SYD|YNM|YYZ)(?:-?(\d+))?(?![\w-])",
    re.IGNORECASE,
)
#: Datacenter names in free text, stored as written (``Paris 19``); the
#: aliases file maps them to inventory codes at query time.
DC_NAME_RE = re.compile(
    r"\b(Paris|Roubaix|Strasbourg|Gravelines|Beauharnois|Erith|Limburg|Warsaw|Vint Hill|Hillsboro"
    r"|Singapore|Sydney|Mumbai|Toronto)(?:[ -]?(\d{1,2}))?\b",
    re.IGNORECASE,
)
FS_RE = re.compile(r"\bFS#\s?(\d+)\b")


#: the one zone lookup (``engine.timeparse.zone``), under the name the readers know
zone_of = zone


def scope(
    *,
    services: Iterable[str | None] = (),
    apps: Iterable[str | None] = (),
    datacenters: Iterable[str | None] = (),
    racks: Iterable[str | None] = (),
    switches: Iterable[str | None] = (),
    hosts: Iterable[str | None] = (),
) -> dict[str, list[str]]:
    """A scope struct value: each key a list of distinct non-empty names, in order."""
    given = {
        "services": services,
        "apps": apps,
        "datacenters": datacenters,
        "racks": racks,
        "switches": switches,
        "hosts": hosts,
    }
    out: dict[str, list[str]] = {}
    for key in SCOPE_KEYS:
        seen: dict[str, None] = {}
        for name in given[key]:
            text = " ".join(str(name).split()) if name is not None else ""
            if text:
                seen.setdefault(text, None)
        out[key] = list(seen)
    return out


def datacenters_in(*texts: str | None) -> list[str]:
    """Datacenter codes (upper case, ``RBX-4`` → ``RBX4``) and names found in ``texts``."""
    found: dict[str, None] = {}
    for text in texts:
        if not text:
            continue
        for m in DC_CODE_RE.finditer(text):
            found.setdefault(m.group(1).upper() + (m.group(2) or ""), None)
        for m in DC_NAME_RE.finditer(text):
            name = " ".join(m.group(1).split()).title()
            found.setdefault(f"{name} {m.group(2)}" if m.group(2) else name, None)
    return list(found)


def fs_id(text: str | None) -> str | None:
    """``ovh:FS#4321`` when ``text`` names an OVH travaux task, else None."""
    m = FS_RE.search(text or "")
    return f"ovh:FS#{m.group(1)}" if m else None


def to_raw(obj: Any) -> str:
    """The original record as JSON text (keys sorted, so re-reads are identical)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


def local_to_utc(naive: datetime, tz: str) -> datetime:
    """A wall time in ``tz`` as aware UTC (fold and gap rules in the module doc)."""
    return naive.replace(tzinfo=zone_of(tz), fold=0).astimezone(UTC)


def parse_iso(value: Any, *, tz: str, where: Where) -> tuple[datetime, bool]:
    """ISO 8601 text (offset, ``Z``, ``+0000`` or none) → (UTC datetime, offset was assumed)."""
    if not isinstance(value, str) or not value.strip():
        raise where.error("bad time", "an ISO 8601 time", value)
    text = value.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2} \d", text):
        text = text.replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise where.error("bad time", "an ISO 8601 time such as 2010-11-17T19:00:00+01:00", value) from None
    try:
        if parsed.tzinfo is None:
            return in_range(local_to_utc(parsed, tz), where=where, found=value), True
        return in_range(parsed.astimezone(UTC), where=where, found=value), False
    except OverflowError:  # year 1 or 9999 shifted past the ends of datetime
        raise where.error("time out of range", RANGE_TEXT, value) from None


def in_range(when: datetime, *, where: Where, found: object = None) -> datetime:
    """``when`` if it lies in 1970–2200 (:mod:`~whatchanged.engine.timerange`), else an error
    naming ``where``.  Whether it lies too far ahead of the clock is decided for the whole
    table once the reader returns (``pipeline.check_times``), as maintenance may be announced."""
    try:
        return ANY_TIME.check(when, observed=False)
    except OutOfRange as exc:
        raise where.error(
            "time out of range", exc.expected, found if found is not None else exc.found
        ) from None


def from_epoch(value: Any, *, unit: float, where: Where) -> datetime:
    """Epoch number in seconds (``unit=1``) or milliseconds (``unit=1000``) as UTC, in 1970–2200."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error("bad time", f"epoch {'milliseconds' if unit == 1000 else 'seconds'}", value)
    try:
        return ANY_TIME.epoch(value, unit=unit, observed=False)
    except OutOfRange as exc:
        raise where.error("time out of range", exc.expected, value) from None


def whole_day(d: date, tz: str) -> datetime:
    return local_to_utc(datetime(d.year, d.month, d.day), tz)


class Where:
    """Where a value came from, to build an InputError that names it."""

    def __init__(self, file: str, *, line: int | None = None, field: str | None = None) -> None:
        self.file = file
        self.line = line
        self.field = field

    def at(self, *, line: int | None = None, field: str | None = None) -> Where:
        return Where(self.file, line=line if line is not None else self.line, field=field or self.field)

    def error(self, message: str, expected: str | None = None, found: object = None) -> InputError:
        return InputError(
            message, file=self.file, line=self.line, field=self.field, expected=expected, found=found
        )


def change_row(
    *,
    change_id: str,
    kind: str,
    start: datetime,
    end: datetime | None = None,
    title: str | None = None,
    description: str | None = None,
    status: str | None = None,
    impact: str | None = None,
    sequence: int | None = None,
    stamp: datetime | None = None,
    scope_value: Mapping[str, Sequence[str]] | None = None,
    author: str | None = None,
    version: str | None = None,
    url: str | None = None,
    source: str | None = None,
    raw: str | None = None,
) -> dict[str, Any]:
    """One ``changes`` row; empty strings become null."""

    def s(v: str | None) -> str | None:
        if v is None:
            return None
        v = str(v).strip()
        return v or None

    return {
        "change_id": change_id,
        "kind": kind,
        "start": start,
        "end": end,
        "title": s(title),
        "description": s(description),
        "status": status,
        "impact": impact,
        "sequence": sequence,
        "stamp": stamp,
        "scope": dict(scope_value) if scope_value is not None else scope(),
        "author": s(author),
        "version": s(version),
        "url": s(url),
        "source": s(source),
        "raw": raw,
    }


def _version_key(row: Mapping[str, Any]) -> tuple[int, int, float]:
    seq = row["sequence"]
    stamp = row["stamp"]
    return (
        0 if seq is None else 1,
        seq if seq is not None else 0,
        stamp.timestamp() if stamp is not None else float("-inf"),
    )


def latest_versions(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per change_id: the highest (sequence, stamp); on a tie the later row."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        cur = best.get(row["change_id"])
        if cur is None or _version_key(row) >= _version_key(cur):
            best[row["change_id"]] = row
    return list(best.values())


def changes_table(rows: Iterable[dict[str, Any]], *, source: str) -> pa.Table:
    """The ``changes`` table of ``rows`` (latest version per id, sorted by start then id)."""
    kept = sorted(latest_versions(rows), key=lambda r: (r["start"], r["change_id"]))
    table = pa.Table.from_pylist(kept, schema=CHANGES)
    return conform("changes", table, source=source)


def load_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error names the line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            "not UTF-8 text", file=str(path), expected="UTF-8", found=f"byte {exc.start}"
        ) from None
    return parse_json(text, file=str(path))


def parse_json(text: str | bytes, *, file: str, line: int | None = None) -> Any:
    """``json.loads`` with its failures as one InputError (syntax, nesting too deep)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON at column {exc.colno} ({exc.msg})",
            file=file,
            line=exc.lineno if line is None else line,
        ) from None
    except RecursionError:
        raise InputError(
            "JSON nested too deeply",
            file=file,
            line=line,
            expected="JSON nested less than a few hundred levels",
            found="deeper nesting",
        ) from None


def json_head(head: bytes) -> str:
    """The first bytes of a file as text without whitespace, for sniffing JSON keys."""
    return re.sub(r"\s+", "", head.decode("utf-8", "replace").lstrip("\ufeff"))


def get_str(obj: Mapping[str, Any], key: str, *, where: Where, required: bool = False) -> str | None:
    """``obj[key]`` as a string (numbers accepted), or None; wrong types are an error."""
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise where.at(field=(where.field and f"{where.field}.{key}") or key).error(
                "missing value", "a non-empty string", value
            )
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise where.at(field=(where.field and f"{where.field}.{key}") or key).error(
            "wrong type", "a string", value
        )
    return str(value)


def tags_map(tags: Iterable[Any]) -> tuple[dict[str, list[str]], list[str]]:
    """``key:value`` tags as {key: [values]} and bare tags as a list."""
    keyed: dict[str, list[str]] = {}
    bare: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            continue
        key, sep, value = tag.partition(":")
        if sep and key.strip() and value.strip():
            keyed.setdefault(key.strip().lower(), []).append(value.strip())
        elif tag.strip():
            bare.append(tag.strip())
    return keyed, bare


def end_after(start: datetime, end: datetime | None, *, where: Where) -> datetime | None:
    """``end`` unless it is before ``start`` (an error naming the field)."""
    if end is not None and end < start:
        raise where.error(
            "window ends before it starts", f"an end at or after {start.isoformat()}", end.isoformat()
        )
    return end


ONE_DAY = timedelta(days=1)

#: a Statuspage status, as its API names it (its RSS/Atom feed writes "in progress") → the
#: normalised status of the changes table
STATUSPAGE_STATUS = {
    "scheduled": "scheduled",
    "in_progress": "in_progress",
    "verifying": "in_progress",
    "completed": "completed",
    "investigating": "in_progress",
    "identified": "in_progress",
    "monitoring": "in_progress",
    "resolved": "resolved",
    "postmortem": "resolved",
}

#: statuses saying the work is over (its end is known)
DONE_STATUSES = ("completed", "resolved")
#: a completion reported later than this after the scheduled end is bookkeeping, not an overrun
MAX_OVERRUN = timedelta(hours=6)


def window_as_updated(
    start: datetime,
    end: datetime | None,
    *,
    status: str | None,
    in_progress_at: datetime | None = None,
    done_at: datetime | None = None,
) -> datetime | None:
    """The end of a notice's window as its latest update says, not as first announced.

    * the work is over (``status`` completed/resolved) and ``done_at`` says when:
      the window ends then — later than scheduled (an overrun, up to
      :data:`MAX_OVERRUN` past the scheduled end) or earlier (finished early);
    * the work is still going (``status`` in_progress) and an update at
      ``in_progress_at`` said so after the scheduled end: the window lasts at
      least until that update (the engine treats an onset shortly after the end
      of an in-progress window as inside it);
    * otherwise the scheduled end.

    A point notice (``end`` None) stays a point; a time before ``start`` is ignored.
    """
    if end is None:
        return None
    if status in DONE_STATUSES:
        if done_at is not None and start <= done_at <= end + MAX_OVERRUN:
            return done_at
        return end
    if status == "in_progress" and in_progress_at is not None and in_progress_at > end:
        return min(in_progress_at, end + MAX_OVERRUN)
    return end


def short_hash(obj: Any) -> str:
    """A stable id for a record that carries none (its canonical JSON, hashed)."""
    return hashlib.sha1(to_raw(obj).encode()).hexdigest()[:16]


#: A JSON reader's core: ``(payload, *, where, tz) → (rows, a time had no offset)``.
RowsFn = Callable[..., tuple[list[dict[str, Any]], bool]]


#: One JSON object → ``(row or None when it is no change, a time had no offset)``.
OneFn = Callable[[dict[str, Any], Where], tuple[dict[str, Any] | None, bool]]


def each_item(value: Any, where: Where, *, field: str = "") -> list[tuple[Any, Where]]:
    """The items of a JSON array with where each stands (``field[n]``), or ``value`` alone
    (at ``field``) when it is not an array: payloads that are one record or a list of them."""
    if isinstance(value, list):
        return [(item, where.at(field=f"{field}[{n}]")) for n, item in enumerate(value)]
    return [(value, where.at(field=field) if field else where)]


def object_rows(
    items: Iterable[tuple[Any, Where]],
    one: OneFn,
    *,
    message: str,
    expected: str = "a JSON object",
) -> tuple[list[dict[str, Any]], bool]:
    """The rows ``one(obj, where)`` reads from each JSON object of ``items`` (None: skipped),
    and whether any read a time in ``tz`` (no offset).  An item that is not an object is an
    error (``message``, ``expected``) at its place."""
    rows: list[dict[str, Any]] = []
    assumed = False
    for item, where in items:
        if not isinstance(item, dict):
            raise where.error(message, expected, type(item).__name__)
        row, a = one(item, where)
        if row is not None:
            rows.append(row)
            assumed = assumed or a
    return rows, assumed


def json_parse_payload(rows_fn: RowsFn, obj: Any, *, source: str, tz: str) -> pa.Table:
    rows, _ = rows_fn(obj, where=Where(source), tz=tz)
    return changes_table(rows, source=source)


def json_read(rows_fn: RowsFn, path: Path, tz: str) -> tuple[pa.Table, bool]:
    rows, assumed = rows_fn(load_json(path), where=Where(str(path)), tz=tz)
    return changes_table(rows, source=str(path)), assumed


def json_reader(rows_fn: RowsFn) -> Callable[[Path, ReadContext], dict[str, pa.Table]]:
    """The ``read`` of a JSON change reader: ``rows_fn`` over the file's JSON, and whether a
    time was read in ``ctx.tz`` (no offset) noted in ``ctx``."""

    def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
        table, assumed = json_read(rows_fn, path, ctx.tz)
        ctx.tz_assumed = ctx.tz_assumed or assumed
        return {"changes": table}

    return read


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []
