"""Call graph (service dependencies) as CSV: one edge per row.

::

    service,depends_on
    PetSite,payforadoption
    payforadoption,adoptions-db

``service`` calls (depends on) ``depends_on``: when ``depends_on`` is slow or
failing, ``service`` inherits it.  Both names are services as the metrics
and the inventory name them (a name the inventory does not know is kept: a
call graph often names databases and queues nobody inventoried).  Extra
columns (``protocol``, ``weight``…) are ignored.  A row repeating an edge adds
nothing; a service depending on itself is rejected.

The services inventory may carry the same edges in an optional
``depends_on`` column (names separated by ``;``), see
:mod:`whatchanged.ingest.services_csv`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import DEPENDENCIES
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.text import csv_rows, wrong_width


def sniff(_path: Path, head: bytes) -> bool:
    first = head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()[:1]
    if not first:
        return False
    cols = [c.strip().lower() for c in first[0].split(",")]
    return cols[:2] == ["service", "depends_on"]


def edge_table(edges: list[tuple[str, str]]) -> pa.Table:
    return pa.Table.from_pydict(
        {"service": [a for a, _ in edges], "depends_on": [b for _, b in edges]}, schema=DEPENDENCIES
    )


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    edges: list[tuple[str, str]] = []
    records = csv_rows(path, ctx)
    first = next(records, None)
    header = [h.strip().lower() for h in first[1]] if first else []
    if header[:2] != ["service", "depends_on"]:
        raise InputError(
            "not a dependency list",
            file=str(path),
            line=1,
            expected="a header starting with 'service,depends_on'",
            found=",".join(header),
        )
    for line, row in records:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            ctx.reject(wrong_width(str(path), line, header, len(row)))
            continue
        service, callee = row[0].strip(), row[1].strip()
        if not service or not callee:
            ctx.reject(
                InputError(
                    "empty name",
                    file=str(path),
                    line=line,
                    field="service" if not service else "depends_on",
                    expected="a service name",
                    found="",
                )
            )
            continue
        if service == callee:
            ctx.reject(
                InputError(
                    "a service cannot depend on itself",
                    file=str(path),
                    line=line,
                    field="depends_on",
                    expected=f"a service other than {service!r}",
                    found=callee,
                )
            )
            continue
        edges.append((service, callee))
    return {"dependencies": edge_table(edges)}


READER = Reader(
    name="dependencies",
    description="call graph CSV with a header 'service,depends_on'",
    sniff=sniff,
    read=read,
)
