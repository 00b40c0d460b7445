"""Deploy log as JSON Lines: one release per line, the CSV deploy log's fields.

::

    {"id": "rel-0917-01", "timestamp": "2010-11-17T09:30:00+01:00", "service": "www",
     "version": "v2010.11.17-1", "author": "alice", "description": "Fix cart rounding"}
    {"id": "rel-0917-02", "timestamp": "2010-11-17 11:05", "service": "backoffice",
     "version": "v412", "author": "bob", "description": "", "environment": "prod"}

(one object per line; shown wrapped).  Fields and rules are those of
:mod:`whatchanged.ingest.deploy_csv`.  Files end in ``.jsonl`` or
``.ndjson``; blank lines are skipped.  :func:`parse_payload` reads one object
or a list of them (the HTTP API's entry point).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import Where, changes_table, parse_json
from whatchanged.ingest.deploy_csv import SOURCE, add_record, record_row
from whatchanged.ingest.text import lines

SUFFIXES = (".jsonl", ".ndjson")


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """A deploy record or a list of them → ``changes`` table (errors name ``source``)."""
    items = obj if isinstance(obj, list) else [obj]
    rows = []
    for n, item in enumerate(items):
        where = Where(source, field=f"[{n}]" if isinstance(obj, list) else None)
        if not isinstance(item, dict):
            raise where.error("not a deploy record", "a JSON object", type(item).__name__)
        rows.append(record_row(item, where=where, tz=tz, source=SOURCE)[0])
    return changes_table(rows, source=source)


def sniff(path: Path, head: bytes) -> bool:
    if path.suffix.lower() not in SUFFIXES:
        return False
    for line in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines():
        if line.strip():
            try:
                first = json.loads(line)
            except json.JSONDecodeError:
                return False
            return isinstance(first, dict) and {"id", "timestamp", "service"} <= first.keys()
    return False


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    rows: list[dict[str, Any]] = []
    where = Where(str(path))
    for line_no, line in lines(path, ctx):
        if not line.strip():
            continue
        try:
            rec = parse_json(line, file=str(path), line=line_no)
        except InputError as exc:
            ctx.reject(exc)
            continue
        if not isinstance(rec, dict):
            ctx.reject(where.at(line=line_no).error("not a deploy record", "a JSON object", rec))
            continue
        add_record(rows, rec, where=where.at(line=line_no), ctx=ctx)
    return {"changes": changes_table(rows, source=str(path))}


READER = Reader(
    name="deploy_jsonl",
    description="deploy log JSON Lines (.jsonl) with id, timestamp, service, version, author, description",
    sniff=sniff,
    read=read,
)
