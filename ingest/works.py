"""OVH-style works page ("travaux") as text: one block per task.

::

    FS#4321 | Network:: P19 switches maintenance
    Status: Scheduled
    Start: 2010-11-17 19:00
    End: 2010-11-17 21:00
    Updated: 2010-11-17 09:12
    Datacenter: P19
    Description:
    We will reload the switches of room Paris 19 (p19-sw-01 to p19-sw-08). Short interruptions expected.
    ---
    FS#4318 | Network:: Router reboot rbx-g2 (RBX)
    Status: Closed
    ...

Blocks are separated by a line ``---``.  The first line is
``FS#<n> | <category>:: <summary>`` (the title keeps the category); then
``Key: value`` lines: ``Status`` (Scheduled, In progress, Closed, Cancelled →
scheduled, in_progress, completed, cancelled), ``Start``, ``End``,
``Updated`` (all ``YYYY-MM-DD HH:MM[:SS]`` local wall times without offset,
read in ``--tz`` — e.g. Europe/Paris; a time in the autumn fold is the first
occurrence, a time in the spring gap is read with the offset before the gap;
see :mod:`whatchanged.ingest.changes_common`), optional ``Datacenter``, and
``Description:`` followed by free text up to the end of the block.

Required: the ``FS#`` line, ``Status``, ``Start`` and ``Updated``; ``End``
may be missing (open window).  change_id ``ovh:FS#<n>``, kind
``maintenance``, ``stamp`` = ``Updated``: a later block or file with the same
task and a later ``Updated`` supersedes the earlier one (inside one file only
the latest block per task is kept).  Scope: ``Datacenter`` plus the
datacenter codes and names found in the title and description.

Files end in ``.works.txt`` or start with a line ``FS#…``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import (
    Where,
    change_row,
    changes_table,
    datacenters_in,
    end_after,
    local_to_utc,
    scope,
    to_raw,
)
from whatchanged.ingest.text import lines

HEAD_RE = re.compile(r"^FS#(\d+)\s*\|\s*(.+?)\s*$")
KEY_RE = re.compile(r"^(Status|Start|End|Updated|Datacenter|Description)\s*:\s*(.*?)\s*$", re.IGNORECASE)
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?$")
STATUS = {
    "scheduled": "scheduled",
    "in progress": "in_progress",
    "closed": "completed",
    "cancelled": "cancelled",
}
SOURCE = "works"


def _time(value: str, *, tz: str, where: Where) -> datetime:
    if not TIME_RE.match(value):
        raise where.error("bad time", "a local time YYYY-MM-DD HH:MM (no offset)", value)
    try:
        naive = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        raise where.error("bad time", "a valid date and time", value) from None
    utc: datetime = local_to_utc(naive, tz)
    return utc


def parse_block(lines: list[tuple[int, str]], *, where: Where, tz: str) -> dict[str, Any]:
    """One block (list of (line number, text)) → changes row."""
    first_no, first = lines[0]
    head = HEAD_RE.match(first.strip())
    if not head:
        raise where.at(line=first_no).error(
            "not a task header", "'FS#<n> | <category>:: <summary>'", first.strip()
        )
    fields: dict[str, tuple[int, str]] = {}
    description: list[str] = []
    in_desc = False
    for no, text in lines[1:]:
        if in_desc:
            description.append(text.rstrip())
            continue
        if not text.strip():
            continue
        m = KEY_RE.match(text.strip())
        if not m:
            raise where.at(line=no).error(
                "unexpected line",
                "'Key: value' with Status, Start, End, Updated, Datacenter or Description",
                text.strip(),
            )
        key = m.group(1).lower()
        if key in fields:
            raise where.at(line=no, field=m.group(1)).error(
                "repeated field", "each field once per block", text.strip()
            )
        fields[key] = (no, m.group(2))
        if key == "description":
            in_desc = True
            if m.group(2):
                description.append(m.group(2))
    for key in ("status", "start", "updated"):
        if key not in fields or not fields[key][1]:
            no = fields[key][0] if key in fields else first_no
            raise where.at(line=no, field=key.title()).error(
                "missing value", f"a {key.title()}: line in the block of FS#{head.group(1)}", ""
            )
    no, status_text = fields["status"]
    status = STATUS.get(status_text.strip().lower())
    if status is None:
        raise where.at(line=no, field="Status").error(
            "unknown status", "Scheduled, In progress, Closed or Cancelled", status_text
        )
    start = _time(fields["start"][1], tz=tz, where=where.at(line=fields["start"][0], field="Start"))
    end = None
    if fields.get("end", (0, ""))[1]:
        end = _time(fields["end"][1], tz=tz, where=where.at(line=fields["end"][0], field="End"))
        end = end_after(start, end, where=where.at(line=fields["end"][0], field="End"))
    stamp = _time(fields["updated"][1], tz=tz, where=where.at(line=fields["updated"][0], field="Updated"))
    title = head.group(2)
    desc = "\n".join(description).strip() or None
    declared = fields.get("datacenter", (0, ""))[1]
    row: dict[str, Any] = change_row(
        change_id=f"ovh:FS#{head.group(1)}",
        kind="maintenance",
        start=start,
        end=end,
        title=title,
        description=desc,
        status=status,
        stamp=stamp,
        scope_value=scope(
            datacenters=[d.strip().upper() for d in declared.split(",")] + datacenters_in(title, desc)
        ),
        author="OVH",
        source=SOURCE,
        raw=to_raw({"block": "\n".join(t for _, t in lines), "tz": tz}),
    )
    return row


def parse_text(text: str, *, source: str, tz: str) -> list[dict[str, Any]]:
    """A works page → changes rows, one per block (the reader keeps the latest per task)."""
    where = Where(source)
    blocks: list[list[tuple[int, str]]] = [[]]
    for no, line in enumerate(text.splitlines(), start=1):
        if line.strip() == "---":
            blocks.append([])
        elif blocks[-1] or line.strip():
            blocks[-1].append((no, line))
    rows = []
    for block in blocks:
        while block and not block[-1][1].strip():
            block.pop()
        if block:
            rows.append(parse_block(block, where=where, tz=tz))
    if not rows:
        raise where.error("no task in works page", "at least one 'FS#<n> | …' block", "none")
    return rows


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """Works-page text → ``changes`` table."""
    if not isinstance(obj, str):
        raise InputError("not works-page text", file=source, expected="text", found=type(obj).__name__)
    return changes_table(parse_text(obj, source=source, tz=tz), source=source)


def sniff(path: Path, head: bytes) -> bool:
    if path.name.lower().endswith(".works.txt"):
        return True
    for line in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines():
        if line.strip():
            return line.strip().startswith("FS#")
    return False


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    text = "".join(line for _, line in lines(path, ctx))
    rows = parse_text(text, source=str(path), tz=ctx.tz)
    ctx.tz_assumed = True
    return {"changes": changes_table(rows, source=str(path))}


READER = Reader(
    name="works",
    description="works page text (.works.txt): blocks 'FS#<n> | …' with Status/Start/End/Updated",
    sniff=sniff,
    read=read,
)
