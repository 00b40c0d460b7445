"""Grafana annotations: the ``GET /api/annotations`` list (or one ``POST`` body).

::

    [{"id": 90211, "alertId": 0, "dashboardUID": "svc-overview", "panelId": 0, "userId": 7,
      "userName": "ci-bot", "newState": "", "prevState": "",
      "time": 1290013800000, "timeEnd": 1290014040000,
      "text": "Deploy www v2010.11.17-1 (pipeline 4411)",
      "tags": ["deploy", "service:www", "env:prod"], "data": {}}]

Times are epoch **milliseconds** (UTC).  Mapping: change_id ``grafana:<id>``
(a ``POST`` body has no id: ``grafana:<hash>``); start = ``time``, end =
``timeEnd`` when it is later (a region); title = ``text``; author =
``login``/``email``/``userName``.  Kind: the first tag naming a change kind
(``deploy``, ``maintenance``, ``config``, ``restart``, ``infra_alert``,
``provider_incident``; also ``deployment``/``release`` → deploy), else
``deploy`` — annotations are mostly pushed by CI.  Scope from tags
``service:``, ``app:``, ``host:``, ``datacenter:``/``dc:``, ``switch:``,
``rack:``; version from ``version:``.  Alert annotations (``alertId`` ≠ 0,
or ``type: alert``) are symptoms, not changes, and are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.schema import CHANGE_KINDS
from whatchanged.ingest.base import Reader
from whatchanged.ingest.changes_common import (
    Where,
    as_list,
    change_row,
    each_item,
    from_epoch,
    json_head,
    json_parse_payload,
    json_reader,
    object_rows,
    scope,
    short_hash,
    tags_map,
    to_raw,
)

SOURCE = "grafana"
KIND_TAGS = {**{k: k for k in CHANGE_KINDS}, "deployment": "deploy", "release": "deploy"}


def _one(item: dict[str, Any], *, where: Where) -> dict[str, Any] | None:
    if item.get("alertId") not in (None, 0) or item.get("type") == "alert":
        return None
    pre = where.field + "." if where.field else ""
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise where.at(field=pre + "text").error("missing value", "the annotation text", text)
    if item.get("time") is None:
        raise where.at(field=pre + "time").error("missing value", "epoch milliseconds", None)
    start = from_epoch(item.get("time"), unit=1000, where=where.at(field=pre + "time"))
    end = None
    if item.get("timeEnd") not in (None, 0):
        end = from_epoch(item["timeEnd"], unit=1000, where=where.at(field=pre + "timeEnd"))
        end = end if end > start else None
    tags = as_list(item.get("tags"))
    keyed, bare = tags_map(tags)
    kind = next((KIND_TAGS[t.lower()] for t in bare if t.lower() in KIND_TAGS), "deploy")
    ident = item.get("id")
    author = next(
        (item[k] for k in ("login", "email", "userName") if isinstance(item.get(k), str) and item[k]), None
    )
    row: dict[str, Any] = change_row(
        change_id=f"grafana:{ident}"
        if isinstance(ident, int | str) and str(ident)
        else f"grafana:{short_hash(item)}",
        kind=kind,
        start=start,
        end=end,
        title=text,
        scope_value=scope(
            services=keyed.get("service", []),
            apps=keyed.get("app", []),
            datacenters=keyed.get("datacenter", []) + keyed.get("dc", []),
            racks=keyed.get("rack", []),
            switches=keyed.get("switch", []),
            hosts=keyed.get("host", []),
        ),
        author=author,
        version=next(iter(keyed.get("version") or []), None),
        source=SOURCE,
        raw=to_raw(item),
    )
    return row


def rows_of(obj: Any, *, where: Where, tz: str) -> tuple[list[dict[str, Any]], bool]:  # noqa: ARG001 (RowsFn)
    if not isinstance(obj, list | dict):
        raise where.error("not Grafana annotations", "a list of annotations", type(obj).__name__)
    return object_rows(
        each_item(obj, where), lambda item, w: (_one(item, where=w), False), message="not an annotation"
    )


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """Grafana annotations (a list, or one annotation object) → ``changes`` table."""
    return json_parse_payload(rows_of, obj, source=source, tz=tz)


def sniff(_path: Path, head: bytes) -> bool:
    text = json_head(head)
    return (
        text[:1] in "[{"
        and '"text":' in text
        and '"time":' in text
        and ('"alertId":' in text or '"tags":' in text)
    )


read = json_reader(rows_of)  # Grafana times are epochs: never read in ctx.tz


READER = Reader(
    name="grafana",
    description="Grafana annotations JSON (GET /api/annotations list, ms epochs)",
    sniff=sniff,
    read=read,
)
