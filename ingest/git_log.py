"""Deploy log from ``git log`` of a release branch: one deploy per commit.

Produce the file with exactly this command (tab-separated, one line per
first-parent commit of the release branch or tag history)::

    git log --first-parent \\
      --format='%H%x09%cI%x09%an%x09%D%x09%(trailers:key=Deploy-Service,valueonly,separator=%x2C)%x09%s' \\
      release/prod > checkout.gitlog

which prints lines such as (tabs shown as ``→``)::

    9f1c2ab7e0d4c1f2a3b4c5d6e7f8091a2b3c4d5e→2010-11-17T18:05:12+01:00→alice→tag: deploy/prod/www/20101117T1705Z→www,static→Merge !812 retry budget
    3b4c5d6e7f8091a2b3c4d5e9f1c2ab7e0d4c1f2a→2010-11-17T11:02:40+01:00→bob→→→Release 412

Fields: full SHA, committer date (``%cI``, with offset), author, ref names,
``Deploy-Service:`` trailer values, subject.

* deploy time: the stamp of a tag ``deploy/<env>/<service>/<YYYYmmddTHHMM[SS]Z>``
  when the commit has one (the CI's own clock), else the committer date —
  the time the commit reached the release branch (author dates are hours or
  days earlier and are not used);
* services: the ``Deploy-Service`` trailer (several, comma-separated), else
  the tag's ``<service>``, else the file name before its first dot
  (``checkout.gitlog`` → ``checkout``, one repository per service);
* change_id ``git:<sha>``; version: the first tag name, else the short SHA;
  title: the subject.

Files end in ``.gitlog`` (or start with such a line).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import Where, change_row, changes_table, parse_iso, scope, to_raw
from whatchanged.ingest.text import lines

LINE_RE = re.compile(r"^[0-9a-f]{40}\t\d{4}-\d{2}-\d{2}T")
TAG_RE = re.compile(r"^deploy/(?P<env>[^/]+)/(?P<service>[^/]+)/(?P<stamp>\d{8}T\d{4}(?:\d{2})?Z)$")
SOURCE = "git"
FORMAT = "%H%x09%cI%x09%an%x09%D%x09%(trailers:key=Deploy-Service,valueonly,separator=%x2C)%x09%s"


def sniff(path: Path, head: bytes) -> bool:
    if path.name.lower().endswith(".gitlog"):
        return True
    for line in head.decode("utf-8", "replace").splitlines():
        if line.strip():
            return bool(LINE_RE.match(line))
    return False


def _tag_time(stamp: str) -> datetime:
    fmt = "%Y%m%dT%H%M%SZ" if len(stamp) == 16 else "%Y%m%dT%H%MZ"
    return datetime.strptime(stamp, fmt).replace(tzinfo=UTC)


def parse_line(line: str, *, where: Where, tz: str, default_service: str, source: str) -> dict[str, Any]:
    """One ``git log`` line in the documented format → changes row."""
    parts = line.rstrip("\r\n").split("\t", 5)
    if len(parts) != 6:
        raise where.error(
            "not a line of the documented git log format",
            f"6 tab-separated fields ({FORMAT})",
            f"{len(parts)} field(s)",
        )
    sha, committed, author, refs, trailer, subject = parts
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise where.at(field="sha").error("bad commit id", "40 hex digits", sha)
    start, _ = parse_iso(committed, tz=tz, where=where.at(field="committer date"))
    if not re.search(r"([+-]\d{2}:?\d{2}|Z)$", committed.strip()):
        raise where.at(field="committer date").error(
            "time without offset", "git's %cI (with offset)", committed
        )
    tags = [r.strip()[5:].strip() for r in refs.split(",") if r.strip().startswith("tag: ")]
    services = [s.strip() for s in trailer.split(",") if s.strip()]
    env = None
    for tag in tags:
        m = TAG_RE.match(tag)
        if m:
            start = _tag_time(m.group("stamp"))
            env = m.group("env")
            if not services:
                services = [m.group("service")]
            break
    if not services:
        services = [default_service]
    version = tags[0] if tags else sha[:12]
    row: dict[str, Any] = change_row(
        change_id=f"git:{sha}",
        kind="deploy",
        start=start,
        title=subject,
        description=f"Deploy {', '.join(services)} {version}" + (f" to {env}" if env else ""),
        scope_value=scope(services=services),
        author=author,
        version=version,
        source=source,
        raw=to_raw({"line": line.rstrip("\r\n")}),
    )
    return row


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    where = Where(str(path))
    default_service = path.name.split(".")[0]
    rows = []
    for line_no, line in lines(path, ctx, errors="replace"):
        if not line.strip():
            continue
        try:
            rows.append(
                parse_line(
                    line,
                    where=where.at(line=line_no),
                    tz=ctx.tz,
                    default_service=default_service,
                    source=SOURCE,
                )
            )
        except InputError as exc:
            ctx.reject(exc)
    return {"changes": changes_table(rows, source=str(path))}


READER = Reader(
    name="git_log",
    description="git log --first-parent in the documented tab-separated format (.gitlog)",
    sniff=sniff,
    read=read,
)
