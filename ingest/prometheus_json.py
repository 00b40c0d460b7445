"""Prometheus HTTP API ``/api/v1/query_range`` response (a matrix).

::

    {"status": "success", "data": {"resultType": "matrix", "result": [
      {"metric": {"__name__": "bandwidth_out_mbps", "service": "www-0001", "env": "prod"},
       "values": [[1290018120, "201.37"], [1290018180, "NaN"]]}]}}

Times are Unix seconds (UTC, decimals allowed); values are strings (``NaN``,
``+Inf`` and ``-Inf`` included).  The service is the label named by
``ctx.service_label`` (``--service-label``), else ``service``, else ``job``,
else ``instance``; the metric is ``__name__``, or the file stem when the
query aggregated it away.  ``env``/``environment`` becomes ``env``; every
other label is kept in ``labels``.  Vector, scalar, string and error
responses are refused with what was found.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import METRICS, TS
from whatchanged.engine.timerange import OutOfRange
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import parse_json

SERVICE_LABELS = ("service", "job", "instance")
ENV_LABELS = ("env", "environment")


def sniff(_path: Path, head: bytes) -> bool:
    text = head.decode("utf-8", "replace").lstrip("\ufeff").lstrip()
    if not text.startswith("{"):
        return False
    return '"resultType"' in text or ('"status"' in text and '"errorType"' in text)


def service_of(labels: dict[str, str], ctx: ReadContext) -> tuple[str | None, str]:
    """(service, label it came from) following ``ctx.service_label`` then the defaults."""
    names = (ctx.service_label,) if ctx.service_label else SERVICE_LABELS
    for name in names:
        if labels.get(name):
            return labels[name], name
    return None, " or ".join(f"'{n}'" for n in names)


def split_labels(
    labels: dict[str, str], ctx: ReadContext
) -> tuple[str | None, str, str | None, list[tuple[str, str]]]:
    """(service, service label or what was looked for, env, other labels sorted)."""
    service, used = service_of(labels, ctx)
    env = next((labels[e] for e in ENV_LABELS if labels.get(e)), None)
    env_used = next((e for e in ENV_LABELS if labels.get(e)), None)
    rest = sorted(
        (k, v)
        for k, v in labels.items()
        if k not in ("__name__", env_used) and (service is None or k != used)
    )
    return service, used, env, rest


def _fail(path: Path, where: str, reason: str, expected: str, found: object) -> InputError:
    return InputError(reason, file=str(path), field=where, expected=expected, found=found)


def _value(text: object) -> float:
    if not isinstance(text, str):
        raise ValueError(text)
    return float(text)


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    try:
        doc = parse_json(path.read_text(encoding="utf-8-sig"), file=str(path))
    except UnicodeDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(
            "not valid JSON", file=str(path), line=line, expected="a query_range response", found=str(exc)
        ) from None
    if not isinstance(doc, dict):
        raise _fail(path, "$", "not a Prometheus response", "a JSON object", type(doc).__name__)
    if doc.get("status") != "success":
        found = f"status {doc.get('status')!r}: {doc.get('errorType', '')} {doc.get('error', '')}".strip()
        raise _fail(path, "status", "Prometheus returned an error", "'success'", found)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise _fail(path, "data", "no data", "an object with resultType and result", data)
    kind = data.get("resultType")
    if kind != "matrix":
        raise _fail(
            path,
            "data.resultType",
            "only range queries (query_range) can be placed in time",
            "'matrix'",
            kind,
        )
    result = data.get("result")
    if not isinstance(result, list):
        raise _fail(path, "data.result", "no series list", "a list of series", type(result).__name__)
    ts: list[int] = []
    service: list[str] = []
    metric: list[str] = []
    value: list[float] = []
    env: list[str | None] = []
    labels: list[list[tuple[str, str]] | None] = []
    for s, series in enumerate(result):
        where = f"data.result[{s}]"
        if not isinstance(series, dict) or not isinstance(series.get("metric", {}), dict):
            ctx.reject(_fail(path, where, "bad series", "an object with 'metric' and 'values'", series))
            continue
        lab: dict[str, Any] = series.get("metric", {})
        svc, used, env_v, rest = split_labels({str(k): str(v) for k, v in lab.items()}, ctx)
        if svc is None:
            ctx.reject(_fail(path, f"{where}.metric", "no label naming the service", f"a label {used}", lab))
            continue
        name = str(lab.get("__name__") or path.name.split(".")[0])
        points = series.get("values")
        if not isinstance(points, list):
            got = "a single 'value' (vector)" if "value" in series else points
            ctx.reject(_fail(path, f"{where}.values", "no samples", 'a list of [time, "value"]', got))
            continue
        for p, point in enumerate(points):
            try:
                if not isinstance(point, list) or len(point) != 2:
                    raise ValueError
                t = float(point[0])
                v = _value(point[1])
                if not math.isfinite(t) or isinstance(point[0], bool):
                    raise ValueError
            except (TypeError, ValueError):
                ctx.reject(
                    _fail(path, f"{where}.values[{p}]", "bad sample", '[unix seconds, "number"]', point)
                )
                continue
            try:
                us = ctx.times.epoch_us(t)
            except OutOfRange as exc:
                ctx.reject(
                    _fail(path, f"{where}.values[{p}][0]", "time out of range", exc.expected, point[0])
                )
                continue
            ts.append(us)
            service.append(svc)
            metric.append(name)
            value.append(v)
            env.append(env_v)
            labels.append(rest or None)
    table = pa.Table.from_arrays(
        [
            pa.array(ts, pa.int64()).cast(TS),
            pa.array(service, pa.string()),
            pa.array(metric, pa.string()),
            pa.array(value, pa.float64()),
            pa.array(env, pa.string()),
            pa.array(labels, METRICS.field("labels").type),
        ],
        schema=METRICS,
    )
    return {"metrics": table}


READER = Reader(
    name="prometheus_json",
    description='Prometheus query_range JSON {"status":"success","data":{"resultType":"matrix",…}}',
    sniff=sniff,
    read=read,
)
