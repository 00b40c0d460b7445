"""Status-page RSS 2.0 / Atom feeds (Statuspage ``/history.rss``, OVH travaux ``rss.php``…).

::

    <rss version="2.0"><channel><title>Example Hosting status</title>
    <item>
      <title>FS#51234 — Router upgrade RBX-A</title>
      <link>https://network.status.example/incidents/m7k2x9q1</link>
      <guid>https://network.status.example/incidents/m7k2x9q1</guid>
      <pubDate>Mon, 10 Mar 2025 09:00:00 +0100</pubDate>
      <description>&lt;p&gt;&lt;small&gt;Mar 14, 22:00 - 02:00 UTC&lt;/small&gt;&lt;br&gt;
        &lt;strong&gt;Scheduled&lt;/strong&gt; - Router rbx-a-r1 will be upgraded.&lt;/p&gt;</description>
    </item></channel></rss>

Parsed with ``feedparser``; one change per item/entry.

* change_id: ``ovh:FS#<n>`` when the title names an OVH task, else
  ``feed:<guid>`` (Atom ``id``; else the link);
* time: a feed gives the *notification* time (``pubDate``, RFC 822, or
  Atom ``published``/``updated``, RFC 3339) — converted to UTC.  When the
  body carries a Statuspage window (``Mar 14, 22:00 - 02:00 UTC`` or
  ``Mar 14, 22:00 - Mar 15, 02:00 UTC``; the year is the notification's, an
  end before the start is the next day) that window is used; otherwise the
  change is a point at the notification time.  ``stamp`` = updated, else
  published;
* window as updated (``changes_common.window_as_updated``): the body's dated
  updates (``Nov 17, 02:41 UTC`` then ``Completed - …``; newest first, as
  Statuspage writes them) end a completed maintenance at its completion
  (else at the item's ``updated``), and keep one still in progress open at
  least until its newest update;
* status: the first ``<strong>Word</strong>`` of the body (Scheduled,
  In progress, Verifying, Completed, Investigating, Identified, Monitoring,
  Resolved, Postmortem) as in the Statuspage reader;
* kind: ``maintenance`` when that word is a maintenance status or the title
  or body says maintenance/scheduled/planned/travaux/works, else
  ``provider_incident``;
* scope: datacenter codes and names in the title and body.

A feed that is not well-formed XML, or an item without a parseable date, is
an error naming the item.
"""

from __future__ import annotations

import calendar
import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import (
    DONE_STATUSES,
    STATUSPAGE_STATUS,
    Where,
    change_row,
    changes_table,
    datacenters_in,
    fs_id,
    scope,
    short_hash,
    to_raw,
    window_as_updated,
)

SOURCE = "feed"
#: the status words of a Statuspage feed ("In progress - …") → the normalised status
WORDS = {name.replace("_", " "): status for name, status in STATUSPAGE_STATUS.items()}
MAINT_WORDS = {"scheduled", "in progress", "verifying", "completed"}
MAINT_RE = re.compile(r"\b(maintenance|scheduled|planned|travaux|works)\b", re.IGNORECASE)
MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
WINDOW_RE = re.compile(
    r"\b([A-Z][a-z]{2}) (\d{1,2}), (\d{1,2}):(\d{2}) - (?:([A-Z][a-z]{2}) (\d{1,2}), )?(\d{1,2}):(\d{2}) (UTC|GMT)\b"
)

#: one dated update of a Statuspage body: ``Nov 17, 02:41 UTC`` then ``Completed - …``
UPDATE_RE = re.compile(
    r"\b([A-Z][a-z]{2}) (\d{1,2}), (\d{1,2}):(\d{2}) (?:UTC|GMT)\s*\n\s*([A-Za-z][A-Za-z ]*?)\s+-\s",
)


def _plain(fragment: str) -> str:
    text = re.sub(r"<br\s*/?>|</p>", "\n", fragment, flags=re.IGNORECASE)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _window(text: str, notified: datetime) -> tuple[datetime, datetime] | None:
    m = WINDOW_RE.search(text)
    if not m or m.group(1).lower() not in MONTHS or (m.group(5) and m.group(5).lower() not in MONTHS):
        return None
    year = notified.year
    try:
        start = datetime(
            year, MONTHS[m.group(1).lower()], int(m.group(2)), int(m.group(3)), int(m.group(4)), tzinfo=UTC
        )
        if start < notified - timedelta(days=183):
            start = start.replace(year=year + 1)
        if m.group(5):
            end = datetime(
                start.year,
                MONTHS[m.group(5).lower()],
                int(m.group(6)),
                int(m.group(7)),
                int(m.group(8)),
                tzinfo=UTC,
            )
            if end < start:
                end = end.replace(year=end.year + 1)
        else:
            end = start.replace(hour=int(m.group(7)), minute=int(m.group(8)))
            if end < start:
                end += timedelta(days=1)
    except ValueError:
        return None
    return start, end


def _updates(text: str, notified: datetime) -> list[tuple[str, datetime]]:
    """The dated updates of a body: (normalised status, UTC time), as written."""
    out = []
    for m in UPDATE_RE.finditer(text):
        status = WORDS.get(m.group(5).lower())
        month = MONTHS.get(m.group(1).lower())
        if status is None or month is None:
            continue
        try:
            at = datetime(notified.year, month, int(m.group(2)), int(m.group(3)), int(m.group(4)), tzinfo=UTC)
        except ValueError:
            continue
        if at > notified + timedelta(days=183):
            at = at.replace(year=at.year - 1)
        elif at < notified - timedelta(days=183):
            at = at.replace(year=at.year + 1)
        out.append((status, at))
    return out


def _when(entry: Any, key: str) -> datetime | None:
    parsed = dict.get(entry, key)  # plain dict access: no feedparser fallback (and warning)
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)


def entry_row(entry: Any, *, where: Where, feed_title: str | None) -> dict[str, Any]:
    title = " ".join(str(entry.get("title") or "").split())
    published, updated = _when(entry, "published_parsed"), _when(entry, "updated_parsed")
    notified = published or updated
    if notified is None:
        raw_date = dict.get(entry, "published") or dict.get(entry, "updated")
        raise where.error(
            "item without a readable date", "an RFC 822 pubDate or RFC 3339 published/updated", raw_date
        )
    body_html = entry.get("summary") or ""
    if not body_html and entry.get("content"):
        body_html = entry["content"][0].get("value", "")
    body = _plain(str(body_html))
    word_m = re.search(r"<strong>\s*([A-Za-z ]+?)\s*</strong>", html.unescape(str(body_html)))
    word = word_m.group(1).lower() if word_m else None
    window = _window(body, notified)
    start, end = window if window else (notified, None)
    status = WORDS.get(word or "")
    if window:
        updates = _updates(body, notified)
        stamp = updated or published
        done = [at for st, at in updates if st in DONE_STATUSES]
        going = [at for st, at in updates if st == "in_progress"]
        if status == "in_progress" and stamp is not None:
            going.append(stamp)
        end = window_as_updated(
            start,
            end,
            status=status,
            in_progress_at=max(going) if going else None,
            done_at=max(done) if done else stamp,
        )
    guid = entry.get("id") or entry.get("link")
    maintenance = word in MAINT_WORDS or bool(MAINT_RE.search(title)) or bool(MAINT_RE.search(body))
    row: dict[str, Any] = change_row(
        change_id=fs_id(title) or (f"feed:{guid}" if guid else f"feed:{short_hash(dict(entry))}"),
        kind="maintenance" if maintenance else "provider_incident",
        start=start,
        end=end,
        title=title or None,
        description=body or None,
        status=status,
        stamp=updated or published,
        scope_value=scope(datacenters=datacenters_in(title, body)),
        author=feed_title,
        url=entry.get("link"),
        source=f"{SOURCE}:{feed_title}" if feed_title else SOURCE,
        raw=to_raw(
            {k: dict.get(entry, k) for k in ("id", "title", "link", "published", "updated", "summary")}
        ),
    )
    return row


def parse_bytes(data: bytes, *, source: str) -> list[dict[str, Any]]:
    import xml.sax

    import feedparser  # imported on use: ingest only loads the parser of the format it reads

    where = Where(source)
    parsed = feedparser.parse(data)
    exc = parsed.get("bozo_exception")
    if parsed.get("bozo") and isinstance(exc, xml.sax.SAXParseException):
        raise where.at(line=exc.getLineNumber()).error(f"feed is not well-formed XML ({exc.getMessage()})")
    if parsed.get("version", "") == "" and not parsed.entries:
        raise where.error("not an RSS or Atom feed", "<rss> or <feed>", data[:40].decode("utf-8", "replace"))
    feed_title = " ".join(str(parsed.feed.get("title") or "").split()) or None
    tag = "entry" if str(parsed.get("version", "")).startswith("atom") else "item"
    return [
        entry_row(entry, where=where.at(field=f"{tag}[{n}]"), feed_title=feed_title)
        for n, entry in enumerate(parsed.entries)
    ]


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:  # noqa: ARG001 (the payload signature)
    """RSS/Atom text or bytes → ``changes`` table (feeds carry offsets; ``tz`` is unused)."""
    data = obj.encode() if isinstance(obj, str) else obj
    if not isinstance(data, bytes):
        raise InputError("not a feed", file=source, expected="RSS or Atom text", found=type(obj).__name__)
    return changes_table(parse_bytes(data, source=source), source=source)


def sniff(_path: Path, head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \r\n\t")[:2048].lower()
    return text.startswith(b"<") and (b"<rss" in text or (b"<feed" in text and b"atom" in text))


def read(path: Path, _ctx: ReadContext) -> dict[str, pa.Table]:
    rows = parse_bytes(path.read_bytes(), source=str(path))
    return {"changes": changes_table(rows, source=str(path))}


READER = Reader(
    name="feed",
    description="RSS 2.0 / Atom status feed (<rss> or Atom <feed>)",
    sniff=sniff,
    read=read,
)
