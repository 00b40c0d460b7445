"""Metrics as a wide CSV with a three-row header (service, metric, statistic).

The layout of CloudWatch exports flattened with pandas (``header=[0, 1, 2]``),
as in the PetShop root-cause dataset::

    microservice,PetSite,PetSite,payforadoption_client
    metric,latency,requests,latency
    statistic,p99,Sum,Average
    unix_timestamp,,,
    1681398600.0,0.251,1620.0,0.034
    1681398900.0,0.262,1593.0,

Each data row is one time (epoch seconds, UTC); each column is one series.
The stored metric is ``<metric>_<statistic>`` in lower case
(``latency_p99``, ``requests_sum``, ``latency_average``).  An empty cell is no
sample; ``NaN``/``inf`` are kept.  The optional fourth row naming the index
(``unix_timestamp,,,…``) is skipped.

Rejected: a header without the ``metric`` and ``statistic`` rows, a
time that is not epoch seconds, a value that is not a number, a row with the
wrong number of fields.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import METRICS
from whatchanged.engine.timerange import OutOfRange
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.text import csv_rows, wrong_width

_ROLES = ("metric", "statistic")


#: header rows of a few hundred series are longer than the sniffed head
_HEADER_MAX = 1 << 20


def sniff(path: Path, head: bytes) -> bool:
    if path.suffix.lower() != ".csv" or b"," not in head:
        return False
    if head.count(b"\n") < 3:
        try:
            with open(path, "rb") as fh:
                head = fh.read(_HEADER_MAX)
        except OSError:
            return False
    lines = head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()[:3]
    firsts = [ln.split(",", 1)[0].strip().lower() for ln in lines]
    return len(firsts) == 3 and firsts[1:] == list(_ROLES)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    rows = csv_rows(path, ctx)
    try:
        services, metrics, stats = next(rows)[1], next(rows)[1], next(rows)[1]
    except StopIteration:
        raise InputError(
            "header too short",
            file=str(path),
            expected="three header rows: service, metric, statistic",
            found="fewer lines",
        ) from None
    for line, row, role in ((2, metrics, "metric"), (3, stats, "statistic")):
        if not row or row[0].strip().lower() != role or len(row) != len(services):
            raise InputError(
                "not a three-row header",
                file=str(path),
                line=line,
                expected=f"'{role},…' with {len(services)} fields",
                found=",".join(row)[:60],
            )
    names = [
        (s.strip(), f"{m.strip()}_{st.strip()}".lower())
        for s, m, st in zip(services[1:], metrics[1:], stats[1:], strict=True)
    ]
    for col, (service, metric) in enumerate(names, start=2):
        if not service or metric.startswith("_") or metric.endswith("_"):
            raise InputError(
                "empty service, metric or statistic in the header",
                file=str(path),
                line=1,
                field=f"column {col}",
                expected="a name in each of the three header rows",
                found=(service, metric),
            )
    out: dict[str, list[object]] = {"ts": [], "service": [], "metric": [], "value": []}
    for line, row in rows:
        if not row or (row[0] and _number(row[0]) is None and all(not c for c in row[1:])):
            continue  # the index-name row (``unix_timestamp,,,``) or a blank line
        if len(row) != len(services):
            ctx.reject(wrong_width(str(path), line, services, len(row)))
            continue
        try:
            us = ctx.times.epoch_us(row[0].strip())
        except OutOfRange as exc:
            ctx.reject(
                InputError(
                    "bad time",
                    file=str(path),
                    line=line,
                    field=services[0] or "time",
                    expected=f"epoch seconds, {exc.expected}",
                    found=row[0],
                )
            )
            continue
        parsed: list[tuple[str, str, float]] = []
        bad = None
        for (service, metric), cell in zip(names, row[1:], strict=True):
            text = cell.strip()
            if not text:
                continue
            value = _number(text)
            if value is None:
                bad = InputError(
                    "bad value",
                    file=str(path),
                    line=line,
                    field=f"{service}/{metric}",
                    expected="a number",
                    found=text,
                )
                break
            parsed.append((service, metric, value))
        if bad is not None:
            ctx.reject(bad)
            continue
        for service, metric, value in parsed:
            out["ts"].append(us)
            out["service"].append(service)
            out["metric"].append(metric)
            out["value"].append(value)
    table = pa.table(
        {
            "ts": pa.array(out["ts"], pa.int64()).cast(METRICS.field("ts").type),
            "service": pa.array(out["service"], pa.string()),
            "metric": pa.array(out["metric"], pa.string()),
            "value": pa.array(out["value"], pa.float64()),
        }
    )
    return {"metrics": table}


READER = Reader(
    name="metrics_stacked",
    description="wide metrics CSV with three header rows: service, 'metric,…', 'statistic,…'",
    sniff=sniff,
    read=read,
)
