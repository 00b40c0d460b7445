"""Datadog Events API v2 change events: the intake body and the list response.

Intake (``POST /api/v2/events``)::

    {"data": {"type": "event", "attributes": {
      "category": "change", "title": "checkout: payment_retry flag 10% → 50%",
      "message": "rolled out by flag service", "timestamp": "2025-03-14T21:59:30.000Z",
      "aggregation_key": "ff-payment_retry", "tags": ["env:prod", "team:payments"],
      "attributes": {
        "changed_resource": {"name": "payment_retry", "type": "feature_flag"},
        "impacted_resources": [{"name": "checkout", "type": "service"}],
        "author": {"name": "flagbot", "type": "automation"},
        "prev_value": {"percentage": "10%"}, "new_value": {"percentage": "50%"}}}}}

List (``GET /api/v2/events``): ``{"data": [{"id": "AAAA…", "type": "event",
"attributes": {"timestamp": "…", "tags": [...], "attributes": {…}}}]}``.

Mapping: change_id ``datadog:<id>`` (intake bodies have none:
``datadog:<aggregation_key>@<timestamp>``, else a hash); start = the ISO
``timestamp`` (the inner millisecond ``timestamp`` when the outer one is
missing); kind ``config`` for changed resources of type ``feature_flag`` or
``configuration`` (and any other non-deployment type), ``deploy`` for
``deployment`` or a ``deploy`` tag; services = ``impacted_resources`` of type
service plus ``service:`` tags; version from ``version:``; author =
``author.name``.  Events of another category (``alert``) are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.ingest.base import Reader
from whatchanged.ingest.changes_common import (
    Where,
    as_dict,
    as_list,
    change_row,
    each_item,
    from_epoch,
    json_head,
    json_parse_payload,
    json_reader,
    object_rows,
    parse_iso,
    scope,
    short_hash,
    tags_map,
    to_raw,
)

SOURCE = "datadog"


def _one(item: dict[str, Any], *, where: Where, tz: str) -> tuple[dict[str, Any] | None, bool]:
    pre = where.field + "." if where.field else ""
    outer = item.get("attributes")
    if not isinstance(outer, dict):
        raise where.at(field=pre + "attributes").error("missing value", "the event attributes object", outer)
    inner = as_dict(outer.get("attributes"))
    category = outer.get("category") or inner.get("category")
    if category is not None and category != "change":
        return None, False
    title = outer.get("title") or inner.get("title")
    if not isinstance(title, str) or not title.strip():
        raise where.at(field=pre + "attributes.title").error("missing value", "a non-empty title", title)
    assumed = False
    if outer.get("timestamp") is not None:
        start, assumed = parse_iso(
            outer["timestamp"], tz=tz, where=where.at(field=pre + "attributes.timestamp")
        )
    elif inner.get("timestamp") is not None:
        start = from_epoch(
            inner["timestamp"], unit=1000, where=where.at(field=pre + "attributes.attributes.timestamp")
        )
    else:
        raise where.at(field=pre + "attributes.timestamp").error(
            "missing value", "an ISO 8601 timestamp", None
        )
    tags = as_list(outer.get("tags"))
    keyed, bare = tags_map(tags)
    changed = as_dict(inner.get("changed_resource"))
    ctype = str(changed.get("type") or "").lower()
    kind = (
        "deploy"
        if ctype in ("deployment", "deploy") or (not ctype and "deploy" in [b.lower() for b in bare])
        else "config"
    )
    impacted = as_list(inner.get("impacted_resources"))
    services = [
        r.get("name")
        for r in impacted
        if isinstance(r, dict) and r.get("type") == "service" and isinstance(r.get("name"), str)
    ]
    services += keyed.get("service", [])
    if isinstance(inner.get("service"), str):
        services.append(inner["service"])
    author_obj = as_dict(inner.get("author"))
    ident = item.get("id")
    agg = outer.get("aggregation_key") or inner.get("aggregation_key")
    if isinstance(ident, str) and ident:
        change_id = f"datadog:{ident}"
    elif isinstance(agg, str) and agg:
        change_id = f"datadog:{agg}@{start.isoformat()}"
    else:
        change_id = f"datadog:{short_hash(item)}"
    message = outer.get("message") or inner.get("message")
    what = changed.get("name")
    desc_parts = [message if isinstance(message, str) else None]
    if isinstance(what, str) and what:
        change = ""
        if inner.get("prev_value") is not None or inner.get("new_value") is not None:
            change = f": {to_raw(inner.get('prev_value'))} → {to_raw(inner.get('new_value'))}"
        desc_parts.append(f"{ctype or 'resource'} {what}{change}")
    return (
        change_row(
            change_id=change_id,
            kind=kind,
            start=start,
            title=title,
            description="\n".join(p for p in desc_parts if p) or None,
            scope_value=scope(
                services=services, hosts=[outer.get("host") if isinstance(outer.get("host"), str) else None]
            ),
            author=author_obj.get("name") if isinstance(author_obj.get("name"), str) else None,
            version=next(iter(keyed.get("version") or []), None),
            source=SOURCE,
            raw=to_raw(item),
        ),
        assumed,
    )


def rows_of(obj: Any, *, where: Where, tz: str) -> tuple[list[dict[str, Any]], bool]:
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, dict | list):
        raise where.at(field="data").error(
            "not a Datadog v2 event", "{'data': {...}} or {'data': [...]}", data
        )
    return object_rows(
        each_item(data, where, field="data"),
        lambda item, w: _one(item, where=w, tz=tz),
        message="not an event",
    )


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """A Datadog v2 event body or list response → ``changes`` table (change events only)."""
    return json_parse_payload(rows_of, obj, source=source, tz=tz)


def sniff(_path: Path, head: bytes) -> bool:
    text = json_head(head)
    return text.startswith('{"data":') and '"type":"event"' in text


read = json_reader(rows_of)


READER = Reader(
    name="datadog",
    description="Datadog Events API v2 change event JSON ({'data': {'type': 'event', …}})",
    sniff=sniff,
    read=read,
)
