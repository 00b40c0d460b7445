"""Provider maintenance notices in iCalendar (BCOP ``X-MAINTNOTE-*`` and variants).

::

    BEGIN:VCALENDAR
    VERSION:2.0
    BEGIN:VEVENT
    SUMMARY:Router upgrade p19-core-2
    DTSTART:20101117T180000Z
    DTEND:20101117T200000Z
    DTSTAMP:20101110T091500Z
    UID:mx-2010-0042@hosting.example
    SEQUENCE:0
    X-MAINTNOTE-PROVIDER:hosting.example
    X-MAINTNOTE-MAINTENANCE-ID:MX-2010-0042
    X-MAINTNOTE-IMPACT:DEGRADED
    X-MAINTNOTE-OBJECT-ID;X-MAINTNOTE-OBJECT-IMPACT=OUTAGE:p19-sw-01
    X-MAINTNOTE-STATUS:CONFIRMED
    ORGANIZER;CN=NOC:mailto:noc@hosting.example
    END:VEVENT
    END:VCALENDAR

One change (kind ``maintenance``) per VEVENT, read with ``icalendar``.

* identity: change_id ``<provider>:<maintenance id>``, where provider is
  ``X-MAINTNOTE-PROVIDER``, else the domain of ``ORGANIZER``, else ``ical``,
  and the maintenance id is ``X-MAINTNOTE-MAINTENANCE-ID`` (the one marked
  ``X-MAINTNOTE-PRECEDENCE=PRIMARY`` when several), else ``UID``.  Keying on
  the maintenance id lets a provider re-send a notice under a new UID (PCCW
  does) and still update the same change;
* versions: ``sequence`` = ``SEQUENCE`` (RFC 5545 default 0), ``stamp`` =
  ``DTSTAMP`` (else ``LAST-MODIFIED``); the highest sequence, then the latest
  stamp, wins — inside a file and in the warehouse;
* window: ``DTSTART`` → ``DTEND`` (or ``DTSTART + DURATION``).  UTC (``Z``)
  and ``TZID=`` values are exact; floating values (no zone) are wall times in
  ``--tz`` (``ctx.tz_assumed`` is set); all-day ``VALUE=DATE`` values start
  at local midnight in ``--tz`` and ``DTEND`` is exclusive (RFC 5545);
* window as updated (``changes_common.window_as_updated``): a notice still
  ``IN-PROCESS`` whose ``DTSTAMP`` is after its ``DTEND`` (the update said
  "still going" after the scheduled end) lasts at least until that stamp; a
  ``COMPLETED`` notice ends at its ``DTSTAMP`` (earlier than scheduled, or up
  to 6 h later).  The update with the higher ``SEQUENCE`` wins, so an overrun
  announced by a later notice extends the window;
* status: ``X-MAINTNOTE-STATUS`` (else the RFC ``STATUS``): TENTATIVE,
  CONFIRMED, RE-SCHEDULED → scheduled; IN-PROCESS → in_progress; COMPLETED →
  completed; CANCELLED → cancelled (kept, not dropped); absent → scheduled;
* impact: the worst of ``X-MAINTNOTE-IMPACT`` and per-object
  ``X-MAINTNOTE-OBJECT-IMPACT`` (no_impact < reduced_redundancy < degraded <
  outage; BCOP's default OUTAGE applies to notices that carry any
  ``X-MAINTNOTE-*`` property, others get null);
* scope: ``X-MAINTNOTE-OBJECT-ID`` values → ``services`` (circuit ids, host
  names, service names: matched against every inventory name at query time);
  datacenter codes/names in ``SUMMARY``, ``DESCRIPTION``, ``LOCATION`` →
  ``datacenters``.

Required: ``DTSTART`` (a notice with no start cannot be placed in time) and
an identity (``X-MAINTNOTE-MAINTENANCE-ID`` or ``UID``).  Everything else may
be missing: no ``DTEND``/``DURATION`` → a point event (RFC 5545: a date-time
event without end ends when it starts; an all-day one lasts the day); no
``DTSTAMP`` → null stamp; no provider, organizer, account or object id →
accepted with what is there.  An end before the start is an error.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.timerange import RANGE_TEXT
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import (
    ONE_DAY,
    Where,
    change_row,
    changes_table,
    datacenters_in,
    end_after,
    in_range,
    local_to_utc,
    scope,
    to_raw,
    whole_day,
    window_as_updated,
)

if TYPE_CHECKING:  # imported on use: ingest only loads the parser of the format it reads
    import icalendar

STATUS = {
    "TENTATIVE": "scheduled",
    "CONFIRMED": "scheduled",
    "RE-SCHEDULED": "scheduled",
    "IN-PROCESS": "in_progress",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
    "NO-CHANGE": None,
}
IMPACT_ORDER = ("no_impact", "reduced_redundancy", "degraded", "outage")
SOURCE = "ical"


def _impact(value: Any, *, where: Where) -> str:
    text = str(value).strip().upper()
    key = text.lower().replace("-", "_")
    if key not in IMPACT_ORDER:
        raise where.error("unknown impact", "NO-IMPACT, REDUCED-REDUNDANCY, DEGRADED or OUTAGE", text)
    return key


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _when(
    ev: icalendar.Event, key: str, *, tz: str, where: Where
) -> tuple[datetime | date | None, datetime | None, bool]:
    """(the decoded value, its UTC instant, it was read in ``tz``)."""
    if ev.get(key) is None:
        return None, None, False
    try:
        value = ev.decoded(key)
    except (ValueError, KeyError, TypeError) as exc:
        raise where.at(field=key).error(f"unreadable date-time ({exc})") from None
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value, in_range(local_to_utc(value, tz), where=where.at(field=key)), True
            return value, in_range(value.astimezone(UTC), where=where.at(field=key)), False
        if isinstance(value, date):
            return value, in_range(whole_day(value, tz), where=where.at(field=key)), True
    except OverflowError:  # year 1 or 9999 shifted past the ends of datetime
        raise where.at(field=key).error(
            "time out of range", RANGE_TEXT, ev.get(key).to_ical().decode("utf-8", "replace")
        ) from None
    raise where.at(field=key).error("not a date-time", "a DATE-TIME or DATE value", str(ev.get(key)))


def _text(ev: icalendar.Event, key: str) -> str | None:
    value = ev.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0]
    text = str(value).strip()
    return text or None


def event_row(ev: icalendar.Event, *, where: Where, tz: str) -> tuple[dict[str, Any], bool]:
    """One VEVENT → changes row (rules in the module doc)."""
    bcop = any(str(k).upper().startswith("X-MAINTNOTE-") for k in ev)
    start_value, start, assumed = _when(ev, "DTSTART", tz=tz, where=where)
    if start is None or start_value is None:
        raise where.at(field="DTSTART").error(
            "maintenance without start cannot be placed in time", "a DTSTART", "none"
        )
    _, end, assumed_end = _when(ev, "DTEND", tz=tz, where=where)
    assumed = assumed or assumed_end
    if end is None and ev.get("DURATION") is not None:
        duration = ev.decoded("DURATION")
        if not isinstance(duration, timedelta):
            raise where.at(field="DURATION").error(
                "not a duration", "an RFC 5545 duration", str(ev.get("DURATION"))
            )
        end = start + duration
    if end is None and not isinstance(start_value, datetime):
        end = start + ONE_DAY
    end = end_after(start, end, where=where.at(field="DTEND"))
    _, stamp, _ = _when(ev, "DTSTAMP", tz=tz, where=where)
    if stamp is None:
        _, stamp, _ = _when(ev, "LAST-MODIFIED", tz=tz, where=where)

    ids = _as_list(ev.get("X-MAINTNOTE-MAINTENANCE-ID"))
    primary = [
        i for i in ids if str(getattr(i, "params", {}).get("X-MAINTNOTE-PRECEDENCE", "")).upper() == "PRIMARY"
    ]
    maint_id = str((primary or ids or [""])[0]).strip() or _text(ev, "UID")
    if not maint_id:
        raise where.at(field="X-MAINTNOTE-MAINTENANCE-ID").error(
            "maintenance without identity", "X-MAINTNOTE-MAINTENANCE-ID or UID", "neither"
        )
    organizer = _text(ev, "ORGANIZER")
    org_mail = re.sub(r"^mailto:", "", organizer or "", flags=re.IGNORECASE) or None
    provider = _text(ev, "X-MAINTNOTE-PROVIDER") or (
        org_mail.split("@")[-1] if org_mail and "@" in org_mail else None
    )

    objects, impacts = [], []
    if ev.get("X-MAINTNOTE-IMPACT") is not None:
        impacts.append(_impact(_text(ev, "X-MAINTNOTE-IMPACT"), where=where.at(field="X-MAINTNOTE-IMPACT")))
    for obj in _as_list(ev.get("X-MAINTNOTE-OBJECT-ID")):
        name = str(obj).strip()
        if name:
            objects.append(name)
        own = getattr(obj, "params", {}).get("X-MAINTNOTE-OBJECT-IMPACT")
        if own:
            impacts.append(_impact(own, where=where.at(field="X-MAINTNOTE-OBJECT-IMPACT")))
    impact = max(impacts, key=IMPACT_ORDER.index) if impacts else ("outage" if bcop else None)
    impact = "none" if impact == "no_impact" else impact

    raw_status = _text(ev, "X-MAINTNOTE-STATUS") or _text(ev, "STATUS")
    status = "scheduled"
    if raw_status is not None:
        key = raw_status.upper()
        if key not in STATUS:
            raise where.at(field="X-MAINTNOTE-STATUS").error("unknown status", " | ".join(STATUS), raw_status)
        status = STATUS[key] or "scheduled"
    seq_value = ev.get("SEQUENCE")
    try:
        sequence = int(seq_value) if seq_value is not None else 0
    except (TypeError, ValueError):
        raise where.at(field="SEQUENCE").error("bad sequence", "an integer", str(seq_value)) from None

    end = window_as_updated(start, end, status=status, in_progress_at=stamp, done_at=stamp)
    summary, description, location = _text(ev, "SUMMARY"), _text(ev, "DESCRIPTION"), _text(ev, "LOCATION")
    row = change_row(
        change_id=f"{provider or 'ical'}:{maint_id}",
        kind="maintenance",
        start=start,
        end=end,
        title=summary,
        description=description,
        status=status,
        impact=impact,
        sequence=sequence,
        stamp=stamp,
        scope_value=scope(services=objects, datacenters=datacenters_in(summary, description, location)),
        author=org_mail,
        url=_text(ev, "URL"),
        source=f"{SOURCE}:{provider}" if provider else SOURCE,
        raw=to_raw({"vevent": ev.to_ical().decode("utf-8", "replace")}),
    )
    return row, assumed


def _line_of(text: str, n: int) -> int:
    """Line number of the n-th ``BEGIN:VEVENT`` (1-based lines, 0-based n)."""
    count = -1
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip().upper() == "BEGIN:VEVENT":
            count += 1
            if count == n:
                return i
    return 1


def parse_text(text: str, *, source: str, tz: str) -> tuple[list[dict[str, Any]], bool]:
    """An iCalendar document → (changes rows, a time was read in ``tz``)."""
    import icalendar

    where = Where(source)
    try:
        cal = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise where.at(line=1).error(
            f"not an iCalendar document ({str(exc).splitlines()[0][:120]})"
        ) from None
    events = list(cal.walk("VEVENT"))
    if not events:
        raise where.error("no maintenance in calendar", "at least one VEVENT", "none")
    rows, assumed = [], False
    for n, ev in enumerate(events):
        row, a = event_row(cast(icalendar.Event, ev), where=where.at(line=_line_of(text, n)), tz=tz)
        rows.append(row)
        assumed = assumed or a
    return rows, assumed


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """iCalendar text (``str`` or ``bytes``) → ``changes`` table."""
    text = obj.decode("utf-8", "replace") if isinstance(obj, bytes) else obj
    if not isinstance(text, str):
        raise InputError("not iCalendar text", file=source, expected="text", found=type(obj).__name__)
    rows, _ = parse_text(text, source=source, tz=tz)
    return changes_table(rows, source=source)


def sniff(_path: Path, head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \r\n\t").upper().startswith(b"BEGIN:VCALENDAR")


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    text = path.read_bytes().decode("utf-8", "replace")
    rows, assumed = parse_text(text, source=str(path), tz=ctx.tz)
    ctx.tz_assumed = ctx.tz_assumed or assumed
    return {"changes": changes_table(rows, source=str(path))}


READER = Reader(
    name="ical",
    description="iCalendar maintenance notice (BEGIN:VCALENDAR, BCOP X-MAINTNOTE-*)",
    sniff=sniff,
    read=read,
)
