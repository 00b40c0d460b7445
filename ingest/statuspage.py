"""Atlassian Statuspage v2 JSON: maintenances and incidents of a provider.

Reads ``scheduled-maintenances.json`` (and ``…/upcoming.json``,
``…/active.json``), ``incidents.json``, ``summary.json`` and the
single-incident ``incidents/<id>.json`` response::

    {"page": {"id": "p0exmpl", "name": "Example Hosting Network", "time_zone": "Europe/Paris"},
     "scheduled_maintenances": [{
       "id": "m7k2x9q1", "name": "FS#51234 — Router upgrade RBX-A", "status": "scheduled",
       "impact": "maintenance", "created_at": "2025-03-10T09:00:00.000+01:00",
       "updated_at": "2025-03-10T09:00:00.000+01:00", "resolved_at": null,
       "scheduled_for": "2025-03-14T23:00:00.000+01:00", "scheduled_until": "2025-03-15T03:00:00.000+01:00",
       "shortlink": "https://stspg.io/xxxxx",
       "incident_updates": [{"status": "scheduled", "body": "Router rbx-a-r1 will be upgraded.",
                             "created_at": "2025-03-10T09:00:00.000+01:00", "affected_components": [...]}],
       "components": [{"id": "c1rbx", "name": "Roubaix (RBX)"}]}]}

Mapping:

* kind ``maintenance`` for scheduled maintenances (an object with
  ``scheduled_for``, or listed under ``scheduled_maintenances``),
  ``provider_incident`` for incidents;
* change_id ``ovh:FS#<n>`` when the name carries an OVH task number (so the
  works page, the feed and the status page agree), else ``statuspage:<id>``;
* window: ``scheduled_for`` → ``scheduled_until`` *as updated*: a completed
  maintenance ends at ``resolved_at`` (else its newest ``completed`` update,
  else ``updated_at``), earlier or later than scheduled (up to 6 h later); one
  still ``in_progress``/``verifying`` after ``scheduled_until`` lasts at least
  until its newest update (``changes_common.window_as_updated``); for incidents the earlier
  of ``created_at`` and ``started_at`` (authors back-date ``started_at``; a
  few reports are filed after the fact) → ``resolved_at`` (open while
  unresolved).  Offsets in the strings are honoured (pages may use their
  local offset);
* status: scheduled → scheduled; in_progress, verifying, investigating,
  identified, monitoring → in_progress; completed → completed; resolved,
  postmortem → resolved.  ``stamp`` = ``updated_at``, so a later download of
  the same page supersedes;
* scope: component names and affected component names → ``services``;
  datacenter codes and names found in the name, component names and update
  bodies → ``datacenters``; description = the latest update's body;
* impact: none → none, minor → degraded, major/critical → outage
  (``maintenance`` → null).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.ingest.base import Reader
from whatchanged.ingest.changes_common import (
    DONE_STATUSES,
    STATUSPAGE_STATUS,
    Where,
    as_dict,
    change_row,
    datacenters_in,
    each_item,
    end_after,
    fs_id,
    get_str,
    json_head,
    json_parse_payload,
    json_reader,
    object_rows,
    parse_iso,
    scope,
    to_raw,
    window_as_updated,
)

#: Statuspage impact → the normalised impact of the changes table.
IMPACT = {"none": "none", "minor": "degraded", "major": "outage", "critical": "outage"}


def _time(obj: dict[str, Any], key: str, *, where: Where, tz: str) -> tuple[Any, bool]:
    if obj.get(key) in (None, ""):
        return None, False
    pre = where.field + "." if where.field else ""
    parsed: tuple[Any, bool] = parse_iso(obj[key], tz=tz, where=where.at(field=pre + key))
    return parsed


def _one(
    inc: dict[str, Any], *, maintenance: bool, page: dict[str, Any], where: Where, tz: str
) -> tuple[dict[str, Any], bool]:
    pre = where.field + "." if where.field else ""
    ident = get_str(inc, "id", where=where, required=True)
    name = get_str(inc, "name", where=where, required=True)
    status = get_str(inc, "status", where=where)
    if status is not None and status not in STATUSPAGE_STATUS:
        raise where.at(field=pre + "status").error("unknown status", " | ".join(STATUSPAGE_STATUS), status)
    maintenance = maintenance or inc.get("scheduled_for") not in (None, "")
    assumed = False
    times = {}
    for key in ("scheduled_for", "scheduled_until", "created_at", "started_at", "resolved_at", "updated_at"):
        times[key], a = _time(inc, key, where=where, tz=tz)
        assumed = assumed or a
    if maintenance and times["scheduled_for"] is not None:
        start, end = times["scheduled_for"], times["scheduled_until"]
        end_field = "scheduled_until"
    else:
        candidates = [t for t in (times["created_at"], times["started_at"]) if t is not None]
        if not candidates:
            raise where.at(field=pre + "created_at").error("missing value", "created_at or started_at", None)
        start, end = min(candidates), times["resolved_at"]
        end_field = "resolved_at"
    end = end_after(start, end, where=where.at(field=pre + end_field))
    updates = [u for u in inc.get("incident_updates") or [] if isinstance(u, dict)]
    updates.sort(key=lambda u: str(u.get("display_at") or u.get("created_at") or ""), reverse=True)
    if maintenance and times["scheduled_for"] is not None:
        end = _updated_end(
            start, end, STATUSPAGE_STATUS.get(status or ""), times, updates, where=where, tz=tz
        )
    components = [c.get("name") for c in inc.get("components") or [] if isinstance(c, dict)]
    affected = [
        c.get("name") for u in updates for c in (u.get("affected_components") or []) if isinstance(c, dict)
    ]
    names = [n for n in components + affected if isinstance(n, str)]
    bodies = [u.get("body") for u in updates if isinstance(u.get("body"), str)]
    page_name = page.get("name") if isinstance(page.get("name"), str) else None
    row = change_row(
        change_id=fs_id(name) or f"statuspage:{ident}",
        kind="maintenance" if maintenance else "provider_incident",
        start=start,
        end=end,
        title=name,
        description=bodies[0] if bodies else None,
        status=STATUSPAGE_STATUS.get(status or ""),
        impact=IMPACT.get(str(inc.get("impact"))),
        stamp=times["updated_at"],
        scope_value=scope(services=names, datacenters=datacenters_in(name, *names, *bodies)),
        author=page_name,
        url=inc.get("shortlink") if isinstance(inc.get("shortlink"), str) else None,
        source=f"statuspage:{page_name}" if page_name else "statuspage",
        raw=to_raw(inc),
    )
    return row, assumed


def _updated_end(
    start: Any,
    end: Any,
    status: str | None,
    times: dict[str, Any],
    updates: list[dict[str, Any]],
    *,
    where: Where,
    tz: str,
) -> Any:
    """A maintenance's end as its updates say (:func:`window_as_updated`): ``resolved_at``,
    else the newest completed update, else ``updated_at`` when completed; the newest
    in-progress/verifying update (or ``updated_at``) when still in progress."""
    pre = where.field + "." if where.field else ""
    stamped: list[tuple[str | None, Any]] = []
    for n, u in enumerate(updates):
        key = "display_at" if u.get("display_at") not in (None, "") else "created_at"
        if u.get(key) in (None, ""):
            continue
        at, _ = parse_iso(u[key], tz=tz, where=where.at(field=f"{pre}incident_updates[{n}].{key}"))
        stamped.append((STATUSPAGE_STATUS.get(str(u.get("status"))), at))
    done = [at for s, at in stamped if s in DONE_STATUSES]
    going = [at for s, at in stamped if s == "in_progress"]
    if times["updated_at"] is not None and status == "in_progress":
        going.append(times["updated_at"])
    done_at = times["resolved_at"] or (max(done) if done else times["updated_at"])
    return window_as_updated(
        start, end, status=status, in_progress_at=max(going) if going else None, done_at=done_at
    )


def rows_of(obj: Any, *, where: Where, tz: str) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(obj, dict) or not any(
        k in obj for k in ("incident", "incidents", "scheduled_maintenances")
    ):
        raise where.error(
            "not a Statuspage v2 response",
            "an object with 'incident', 'incidents' or 'scheduled_maintenances'",
            sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__,
        )
    page = as_dict(obj.get("page"))
    work: dict[bool, list[tuple[Any, Where]]] = {False: [], True: []}  # maintenance → items
    if "incident" in obj:
        work[False].append((obj["incident"], where.at(field="incident")))
    for key, maint in (("incidents", False), ("scheduled_maintenances", True)):
        items = obj.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise where.at(field=key).error("wrong type", "a list", type(items).__name__)
        work[maint].extend(each_item(items, where, field=key))
    rows, assumed = [], False
    for maint, placed in work.items():

        def one(item: dict[str, Any], w: Where, maint: bool = maint) -> tuple[dict[str, Any], bool]:
            return _one(item, maintenance=maint, page=page, where=w, tz=tz)

        more, a = object_rows(placed, one, message="wrong type", expected="an incident object")
        rows += more
        assumed = assumed or a
    return rows, assumed


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """A Statuspage v2 response (or webhook-shaped ``{page, incident}``) → ``changes`` table."""
    return json_parse_payload(rows_of, obj, source=source, tz=tz)


def sniff(_path: Path, head: bytes) -> bool:
    text = json_head(head)
    return text.startswith("{") and (
        '"scheduled_maintenances":' in text
        or '"incidents":' in text
        or ('"incident":' in text and '"page":' in text)
    )


read = json_reader(rows_of)


READER = Reader(
    name="statuspage",
    description="Atlassian Statuspage v2 JSON (incidents, scheduled maintenances, one incident)",
    sniff=sniff,
    read=read,
)
