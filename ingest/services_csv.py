"""Services inventory CSV.

::

    service,kind,datacenter,rack,switch,host,app,critical,tags
    www-0001,site,P19,P19-R01,p19-sw-01,p19-web-01,sites,false,team=web;tier=front
    bo-primary,backoffice,P19,P19-R07,p19-sw-04,p19-bo-01,backoffice,true,

``critical`` is ``true``/``false`` (also yes/no, 1/0, empty = false);
``tags`` is ``k=v;k=v``.  An optional ``depends_on`` column lists the
services this one calls, separated by ``;`` (``payforadoption;adoptions-db``):
those edges go to the ``dependencies`` table, as with
:mod:`whatchanged.ingest.dependencies_csv`.  An optional ``redundancy_group``
column names the services that stand in for each other (``backoffice`` on a
primary and its standby): ``whatchanged fate`` checks where each group's
members sit together.  Other columns beyond these are kept as tags.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import SERVICES
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.dependencies_csv import edge_table
from whatchanged.ingest.text import csv_rows, wrong_width

COLUMNS = ("service", "kind", "datacenter", "rack", "switch", "host", "app", "critical", "tags")
#: optional column: the services this one calls, separated by ";" (the call graph)
DEPENDS = "depends_on"
#: optional column: the group of services that stand in for each other (primary and standby)
GROUP = "redundancy_group"
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}


def sniff(_path: Path, head: bytes) -> bool:
    first = head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()[:1]
    if not first:
        return False
    cols = [c.strip().lower() for c in first[0].split(",")]
    return cols[:1] == ["service"] and "datacenter" in cols and "timestamp" not in cols


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    file = str(path)
    rows: dict[str, list[object]] = {c: [] for c in SERVICES.names}
    records = csv_rows(path, ctx)
    first = next(records, None)
    header = [h.strip() for h in first[1]] if first else []
    if "service" not in header:
        raise InputError(
            "not a services inventory",
            file=file,
            line=1,
            field="service",
            expected="a header starting with 'service'",
            found=",".join(header),
        )
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError("duplicate column names", file=file, line=1, expected="unique names", found=dup)
    if "" in header:
        raise InputError(
            "empty column name",
            file=file,
            line=1,
            field=f"column {header.index('') + 1}",
            expected="a name for every column",
            found=",".join(header),
        )
    extra = [h for h in header if h not in COLUMNS and h not in (DEPENDS, GROUP)]
    edges: list[tuple[str, str]] = []
    for line, fields in records:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        if len(fields) != len(header):
            ctx.reject(wrong_width(file, line, header, len(fields)))
            continue
        rec = {k: v.strip() for k, v in zip(header, fields, strict=True)}
        if not rec.get("service"):
            ctx.reject(
                InputError(
                    "empty service name",
                    file=file,
                    line=line,
                    field="service",
                    expected="a service name",
                    found="",
                )
            )
            continue
        crit = rec.get("critical", "").lower()
        if crit not in _TRUE | _FALSE:
            ctx.reject(
                InputError(
                    "bad flag",
                    file=file,
                    line=line,
                    field="critical",
                    expected="true or false",
                    found=rec.get("critical", ""),
                )
            )
            continue
        tags: list[tuple[str, str]] = []
        bad_tag = None
        for item in filter(None, (t.strip() for t in rec.get("tags", "").split(";"))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                bad_tag = item
                break
            tags.append((key.strip(), value.strip()))
        if bad_tag is not None:
            ctx.reject(
                InputError(
                    "bad tag",
                    file=file,
                    line=line,
                    field="tags",
                    expected="k=v pairs separated by ';'",
                    found=bad_tag,
                )
            )
            continue
        callees = [c.strip() for c in rec.get(DEPENDS, "").split(";") if c.strip()]
        if rec["service"] in callees:
            ctx.reject(
                InputError(
                    "a service cannot depend on itself",
                    file=file,
                    line=line,
                    field=DEPENDS,
                    expected=f"services other than {rec['service']!r}",
                    found=rec.get(DEPENDS, ""),
                )
            )
            continue
        edges.extend((rec["service"], c) for c in callees)
        tags.extend((k, rec[k]) for k in extra if rec.get(k))
        for col in ("service", "kind", "datacenter", "rack", "switch", "host", "app", GROUP):
            rows[col].append(rec.get(col) or None)
        rows["critical"].append(crit in _TRUE)
        rows["tags"].append(sorted(tags))
    out = {"services": pa.Table.from_pydict(rows, schema=SERVICES)}
    if DEPENDS in header:
        out["dependencies"] = edge_table(edges)
    return out


READER = Reader(
    name="services",
    description="services inventory CSV with a header 'service,kind,datacenter,…'",
    sniff=sniff,
    read=read,
)
