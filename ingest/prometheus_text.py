"""Prometheus text exposition (0.0.4) and OpenMetrics 1.0, with timestamps.

::

    # TYPE bandwidth_out_mbps gauge
    bandwidth_out_mbps{service="www-0001",env="prod"} 201.37 1290018120000
    bandwidth_out_mbps{service="www-0001",env="prod"} 48.9 1290018180000

Prometheus text timestamps are milliseconds; a file ending with ``# EOF`` is
OpenMetrics, whose timestamps are seconds (decimals allowed) and which is
validated by the strict OpenMetrics parser as a whole.  Parsing uses
``prometheus_client``'s parsers.  Every sample must carry a timestamp: one
without is an error naming its line, since it cannot be placed in time.
Each sample's own name (``x_total``, ``x_bucket`` …) is the metric; the
service and env labels follow the Prometheus JSON reader (``--service-label``,
else ``service``, ``job``, ``instance``); other labels go to ``labels``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import METRICS, TS
from whatchanged.engine.timerange import RANGE_TEXT, OutOfRange
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.prometheus_json import split_labels
from whatchanged.ingest.text import lines as text_lines
from whatchanged.ingest.text import too_long

if TYPE_CHECKING:  # imported on use: ingest only loads the parser of the format it reads
    from prometheus_client.samples import Sample

_SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+\S+(\s+\S+)?")


def sniff(path: Path, head: bytes) -> bool:
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith(("# HELP ", "# TYPE ", "# UNIT ")):
            return True
        if line.startswith("#"):
            continue
        return bool(_SAMPLE.match(line)) and path.suffix.lower() in (".prom", ".txt", ".metrics", "")
    return False


def _timestamp_us(sample: Sample) -> int | None:
    from prometheus_client.samples import Timestamp

    stamp = sample.timestamp
    if stamp is None:
        return None
    if isinstance(stamp, Timestamp):
        return int(stamp.sec) * 1_000_000 + int(stamp.nsec) // 1000
    # 0.0.4: the parser turned integer milliseconds into float seconds
    return round(float(stamp) * 1000) * 1000


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )
    from prometheus_client.parser import text_string_to_metric_families as prometheus_families

    file = str(path)
    for _ in text_lines(
        path, ctx
    ):  # a line over max_line_bytes (or not UTF-8) fails before the file is loaded
        pass
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", file=file, expected="UTF-8", found=str(exc)) from None
    lines = text.splitlines()
    openmetrics = any(line.strip() == "# EOF" for line in lines[-3:])
    if openmetrics:
        try:
            for _ in openmetrics_families(text):  # type: ignore[no-untyped-call]
                pass
        except ValueError as exc:
            raise _locate(file, lines, exc) from None
    cols: dict[str, list[object]] = {n: [] for n in METRICS.names}
    for number, line in enumerate(lines, start=1):
        if len(line) > ctx.max_line_bytes:
            raise too_long(file, number, ctx.max_line_bytes)
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            doc = f"{line}\n# EOF\n" if openmetrics else f"{line}\n"
            parse = openmetrics_families if openmetrics else prometheus_families
            samples = [s for fam in parse(doc) for s in fam.samples]
        except ValueError as exc:
            ctx.reject(
                InputError(
                    "bad sample line",
                    file=file,
                    line=number,
                    expected="name{labels} value timestamp",
                    found=f"{line.strip()} ({exc})",
                )
            )
            continue
        for sample in samples:
            try:
                us = _timestamp_us(sample)
                if us is not None:
                    us = ctx.times.check_us(us)
            except (OverflowError, ValueError) as exc:
                ctx.reject(
                    InputError(
                        "time out of range",
                        file=file,
                        line=number,
                        field="timestamp",
                        expected=exc.expected if isinstance(exc, OutOfRange) else RANGE_TEXT,
                        found=line.strip()[:200],
                    )
                )
                continue
            if us is None:
                ctx.reject(
                    InputError(
                        "sample without a timestamp cannot be placed in time",
                        file=file,
                        line=number,
                        field="timestamp",
                        expected="a timestamp after the value ("
                        + ("seconds" if openmetrics else "milliseconds")
                        + ")",
                        found=line.strip(),
                    )
                )
                continue
            svc, used, env, rest = split_labels(dict(sample.labels), ctx)
            if svc is None:
                ctx.reject(
                    InputError(
                        "no label naming the service",
                        file=file,
                        line=number,
                        field="labels",
                        expected=f"a label {used} (or --service-label)",
                        found=line.strip(),
                    )
                )
                continue
            cols["ts"].append(us)
            cols["service"].append(svc)
            cols["metric"].append(sample.name)
            cols["value"].append(float(sample.value))
            cols["env"].append(env)
            cols["labels"].append(rest or None)
    arrays = [pa.array(cols["ts"], pa.int64()).cast(TS)] + [
        pa.array(cols[f.name], f.type) for f in METRICS if f.name != "ts"
    ]
    return {"metrics": pa.Table.from_arrays(arrays, schema=METRICS)}


def _locate(file: str, lines: list[str], exc: ValueError) -> InputError:
    """The OpenMetrics parser says what, not where: find the line its message quotes."""
    message = str(exc)
    line_no = None
    for number, line in enumerate(lines, start=1):
        if line.strip() and line.strip() in message:
            line_no = number
            break
    return InputError(
        "invalid OpenMetrics (a file ending with '# EOF')",
        file=file,
        line=line_no,
        expected="valid OpenMetrics 1.0",
        found=message,
    )


READER = Reader(
    name="prometheus_text",
    description="Prometheus text 0.0.4 / OpenMetrics exposition with timestamps ('# TYPE …', 'name{…} v ts')",
    sniff=sniff,
    read=read,
)
