"""Deploy log as CSV: one release per row.

::

    id,timestamp,service,version,author,description,end,environment,app
    rel-0917-01,2010-11-17 09:30,www,v2010.11.17-1,alice,Fix cart rounding,2010-11-17 09:34,prod,sites
    rel-0917-02,2010-11-17T11:05:00+01:00,backoffice,v412,bob,New invoice export,,prod,

Required columns: ``id, timestamp, service, version, author, description``
(``version``, ``author`` and ``description`` may be empty); optional:
``end``, ``environment``, ``app`` and ``kind`` (``deploy`` by default;
``config``, ``restart`` or ``infra_alert`` for an operations log, e.g. the
restarts operators made during an incident, which are listed as reactions).  Times are ISO 8601; without an offset
they are wall times in ``--tz`` (DST rules in
:mod:`whatchanged.ingest.changes_common`).  ``id`` is the change_id.
``service`` may name an inventory service *or* app: it is stored in
``scope.services`` and matched against both at query time; ``app`` goes to
``scope.apps``.  The JSON Lines reader (``deploy_jsonl``) shares
:func:`record_row`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import (
    Where,
    change_row,
    changes_table,
    end_after,
    parse_iso,
    scope,
    to_raw,
)
from whatchanged.ingest.text import csv_rows, wrong_width

REQUIRED = ("id", "timestamp", "service", "version", "author", "description")
OPTIONAL = ("end", "environment", "app", "kind")
#: values of the optional ``kind`` column (default ``deploy``)
KINDS = ("deploy", "config", "restart", "infra_alert")
SOURCE = "deploy-log"


def add_record(rows: list[dict[str, Any]], rec: Mapping[str, Any], *, where: Where, ctx: ReadContext) -> None:
    """Append the changes row of one deploy record to ``rows``; a bad record is rejected
    (``ctx.reject``: an error, or skipped with ``--skip-bad``)."""
    try:
        row, assumed = record_row(rec, where=where, tz=ctx.tz, source=SOURCE)
    except InputError as exc:
        ctx.reject(exc)
        return
    ctx.tz_assumed = ctx.tz_assumed or assumed
    rows.append(row)


def record_row(rec: Mapping[str, Any], *, where: Where, tz: str, source: str) -> tuple[dict[str, Any], bool]:
    """One deploy record (CSV row or JSON object) → (changes row, a time had no offset)."""
    for key in ("id", "timestamp", "service"):
        value = rec.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise where.at(field=key).error("missing value", f"a non-empty {key}", value if value else "")
    for key in (*REQUIRED, *OPTIONAL):
        value = rec.get(key)
        if value is not None and not isinstance(value, str | int | float):
            raise where.at(field=key).error("wrong type", "a string", value)

    def text(key: str) -> str | None:
        value = rec.get(key)
        return None if value is None else (str(value).strip() or None)

    start, assumed = parse_iso(rec["timestamp"], tz=tz, where=where.at(field="timestamp"))
    end = None
    if text("end"):
        end, assumed_end = parse_iso(rec["end"], tz=tz, where=where.at(field="end"))
        assumed = assumed or assumed_end
        end = end_after(start, end, where=where.at(field="end"))
    kind = (text("kind") or "deploy").lower()
    if kind not in KINDS:
        raise where.at(field="kind").error("unknown change kind", f"one of {', '.join(KINDS)}", text("kind"))
    service = text("service")
    version = text("version")
    env = text("environment")
    verb = {"deploy": "Deploy", "config": "Config change", "restart": "Restart", "infra_alert": "Alert"}[kind]
    title = " ".join(p for p in (verb, service, version) if p)
    if env:
        title += f" to {env}"
    row = change_row(
        change_id=str(text("id")),
        kind=kind,
        start=start,
        end=end,
        title=title,
        description=text("description"),
        scope_value=scope(services=[service], apps=[text("app")]),
        author=text("author"),
        version=version,
        source=source,
        raw=to_raw(dict(rec)),
    )
    return row, assumed


def sniff(_path: Path, head: bytes) -> bool:
    first = head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()[:1]
    if not first:
        return False
    cols = [c.strip().lower() for c in first[0].split(",")]
    return all(c in cols for c in REQUIRED)


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    rows: list[dict[str, Any]] = []
    where = Where(str(path))
    records = csv_rows(path, ctx)
    first = next(records, None)
    header = [h.strip().lower() for h in first[1]] if first else []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise where.at(line=1, field=missing[0]).error(
            "not a deploy log", f"a header with {', '.join(REQUIRED)}", ",".join(header)
        )
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise where.at(line=1).error("duplicate column names", "unique names", dup)
    for line, fields in records:
        if not fields or not any(f.strip() for f in fields):
            continue  # a blank line
        if len(fields) != len(header):
            ctx.reject(wrong_width(str(path), line, header, len(fields)))
            continue
        rec = {k: v.strip() for k, v in zip(header, fields, strict=True)}
        add_record(rows, rec, where=where.at(line=line), ctx=ctx)
    return {"changes": changes_table(rows, source=str(path))}


READER = Reader(
    name="deploy_csv",
    description="deploy log CSV with a header 'id,timestamp,service,version,author,description'",
    sniff=sniff,
    read=read,
)
