"""PagerDuty change events: the Events API v2 body and the REST list.

``POST /v2/change/enqueue`` body (a file may also hold a list of them)::

    {"routing_key": "R0UTINGKEYEXAMPLE0000000000000AB",
     "payload": {"summary": "Deploy checkout v2025.03.14-2 to prod",
                 "timestamp": "2025-03-14T21:58:10.000+0000", "source": "gitlab-runner-17",
                 "custom_details": {"service": "checkout", "environment": "prod",
                                    "version": "v2025.03.14-2", "actor": "alice"}},
     "links": [{"href": "https://ci.example.net/pipelines/4411", "text": "Pipeline 4411"}]}

``GET /change_events`` response (also ``{"change_event": {...}}``)::

    {"change_events": [{"id": "01DEN...", "summary": "...", "timestamp": "2025-03-14T21:58:10Z",
      "source": "gitlab-runner-17", "services": [{"id": "PXYZ", "summary": "checkout", "type": "service_reference"}],
      "custom_details": {...}, "links": [...]}]}

Mapping: kind ``deploy``; change_id ``pagerduty:<id>`` (an enqueue body has
no id: ``pagerduty:<hash of the body>``, stable across re-reads); start =
``timestamp`` (required: a change must be placed in time; without offset it
is read in ``--tz``); services = ``custom_details.service`` and the
``summary`` of each ``services[]`` reference; ``source`` (the host or
pipeline) goes to ``scope.hosts``; version, author (``actor``/``author``/
``user``) and environment from ``custom_details``; url = first link.
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
    json_head,
    json_parse_payload,
    json_reader,
    object_rows,
    parse_iso,
    scope,
    short_hash,
    to_raw,
)

SOURCE = "pagerduty"


def _event(ev: dict[str, Any], *, where: Where, tz: str, enqueue: bool) -> tuple[dict[str, Any], bool]:
    body = ev.get("payload") if enqueue else ev
    if not isinstance(body, dict):
        raise where.at(field=f"{where.field}.payload" if where.field else "payload").error(
            "missing payload", "an object with summary and timestamp", body
        )
    prefix = (where.field + "." if where.field else "") + ("payload." if enqueue else "")
    summary = body.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise where.at(field=prefix + "summary").error("missing value", "a non-empty summary", summary)
    start, assumed = parse_iso(body.get("timestamp"), tz=tz, where=where.at(field=prefix + "timestamp"))
    details = as_dict(body.get("custom_details"))

    def detail(*keys: str) -> str | None:
        for k in keys:
            v = details.get(k)
            if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v).strip():
                return str(v)
        return None

    services = [detail("service")]
    refs = as_list(ev.get("services"))
    services += [r.get("summary") for r in refs if isinstance(r, dict) and isinstance(r.get("summary"), str)]
    links = as_list(ev.get("links"))
    url = next(
        (lk.get("href") for lk in links if isinstance(lk, dict) and isinstance(lk.get("href"), str)), None
    )
    ident = ev.get("id") if not enqueue else None
    env = detail("environment", "env")
    return (
        change_row(
            change_id=f"pagerduty:{ident}"
            if isinstance(ident, str) and ident
            else f"pagerduty:{short_hash(ev)}",
            kind="deploy",
            start=start,
            title=summary,
            description=f"environment {env}" if env else None,
            scope_value=scope(
                services=services, hosts=[body.get("source") if isinstance(body.get("source"), str) else None]
            ),
            author=detail("actor", "author", "user"),
            version=detail("version", "commit"),
            url=url,
            source=SOURCE,
            raw=to_raw(ev),
        ),
        assumed,
    )


def rows_of(obj: Any, *, where: Where, tz: str) -> tuple[list[dict[str, Any]], bool]:
    if isinstance(obj, dict) and "change_events" in obj:
        events, enqueue = obj["change_events"], False
        if not isinstance(events, list):
            raise where.at(field="change_events").error("wrong type", "a list", type(events).__name__)
        placed = each_item(events, where, field="change_events")
    elif isinstance(obj, dict) and "change_event" in obj:
        placed, enqueue = [(obj["change_event"], where.at(field="change_event"))], False
    elif isinstance(obj, dict) and "payload" in obj:
        placed, enqueue = [(obj, where)], True
    elif isinstance(obj, list):
        placed, enqueue = each_item(obj, where), True
    else:
        raise where.error(
            "not a PagerDuty change event",
            "a change/enqueue body or {'change_events': [...]}",
            type(obj).__name__,
        )
    return object_rows(
        placed, lambda ev, w: _event(ev, where=w, tz=tz, enqueue=enqueue), message="not a change event"
    )


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """A PagerDuty change payload (enqueue body, list, or REST response) → ``changes`` table.

    ``source`` names the input in error messages; ``tz`` reads offset-less times.
    """
    return json_parse_payload(rows_of, obj, source=source, tz=tz)


def sniff(_path: Path, head: bytes) -> bool:
    text = json_head(head)
    return text[:1] in "[{" and (
        '"change_events":' in text
        or '"change_event":' in text
        or ('"routing_key":' in text and '"payload":' in text)
    )


read = json_reader(rows_of)


READER = Reader(
    name="pagerduty",
    description="PagerDuty change event JSON (change/enqueue body or GET /change_events)",
    sniff=sniff,
    read=read,
)
