"""Maintenance notices become Alertmanager silences ahead of time (``whatchanged silences``).

For every stored maintenance whose window is upcoming or in progress, one silence per scope
dimension (datacenters, switches, hosts, services … each a label named in ``[silences]
labels`` of ``sources.toml``) with a matcher ``label=~"a|b"``, a comment naming the notice and
its link, ``createdBy: whatchanged``.  The plan compares with the silences Alertmanager holds
(found by their comment's ``whatchanged:<change_id>:<dimension>`` tag):

* **create** what is missing;
* **update** (same id, new times or matchers) what was rescheduled or re-scoped;
* **expire** the silences of a notice that was cancelled (or no longer has that dimension).

Without ``apply`` nothing is sent: the plan is what ``whatchanged silences`` prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from whatchanged.engine.snapshot import Snapshot

DEFAULT_LABELS = {"datacenters": "datacenter", "switches": "switch", "hosts": "host"}
TAG_RE = re.compile(r"^whatchanged:(?P<change>.+):(?P<dim>[a-z]+)\b")


@dataclass(frozen=True)
class Action:
    """One step of the plan."""

    action: str  # create | update | expire
    change_id: str
    dimension: str
    matchers: tuple[tuple[str, str], ...]  # (label, regex)
    starts_at: str
    ends_at: str
    comment: str
    silence_id: str | None = None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def wanted(con: Snapshot, now: datetime, labels: dict[str, str]) -> dict[tuple[str, str], Action]:
    """(change_id, dimension) → the silence a maintenance calls for, upcoming or in progress."""
    rows = con.sql(
        'SELECT change_id, start, "end", title, url, status, scope FROM changes '
        'WHERE kind = \'maintenance\' AND "end" IS NOT NULL AND "end" > ? '
        "AND coalesce(status, '') <> 'cancelled' ORDER BY change_id",
        params=[now],
    ).fetchall()
    out: dict[tuple[str, str], Action] = {}
    for change_id, start, end, title, url, _status, scope in rows:
        for dim, label in sorted(labels.items()):
            values = sorted(set((scope or {}).get(dim) or []))
            if not values:
                continue
            regex = "|".join(re.escape(v) for v in values)
            comment = f"whatchanged:{change_id}:{dim} {title or ''}" + (f" {url}" if url else "")
            out[(change_id, dim)] = Action(
                "create",
                change_id,
                dim,
                ((label, regex),),
                _iso(max(start, now)),
                _iso(end),
                comment.strip(),
            )
    return out


def existing(client: httpx.Client, base: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Active or pending silences whatchanged created, by (change_id, dimension)."""
    resp = client.get(f"{base}/api/v2/silences")
    resp.raise_for_status()
    out = {}
    for s in resp.json():
        if s.get("createdBy") != "whatchanged" or s.get("status", {}).get("state") == "expired":
            continue
        m = TAG_RE.match(s.get("comment", ""))
        if m:
            out[(m["change"], m["dim"])] = s
    return out


def _same(a: Action, s: dict[str, Any]) -> bool:
    matchers = tuple((m["name"], m["value"]) for m in s.get("matchers", []))
    ends = datetime.fromisoformat(s["endsAt"].replace("Z", "+00:00"))
    return (
        matchers == a.matchers
        and abs(ends - datetime.fromisoformat(a.ends_at.replace("Z", "+00:00"))).total_seconds() < 1
    )


def plan(want: dict[tuple[str, str], Action], have: dict[tuple[str, str], dict[str, Any]]) -> list[Action]:
    actions = []
    for key, a in sorted(want.items()):
        s = have.get(key)
        if s is None:
            actions.append(a)
        elif not _same(a, s):
            actions.append(
                Action(
                    "update", a.change_id, a.dimension, a.matchers, a.starts_at, a.ends_at, a.comment, s["id"]
                )
            )
    for key, s in sorted(have.items()):
        if key not in want:
            matchers = tuple((m["name"], m["value"]) for m in s.get("matchers", []))
            actions.append(
                Action(
                    "expire",
                    key[0],
                    key[1],
                    matchers,
                    s["startsAt"],
                    s["endsAt"],
                    s.get("comment", ""),
                    s["id"],
                )
            )
    return actions


def apply(client: httpx.Client, base: str, actions: list[Action]) -> list[str]:
    """Send the plan; return the silence ids created or updated."""
    ids = []
    for a in actions:
        if a.action == "expire":
            client.delete(f"{base}/api/v2/silence/{a.silence_id}").raise_for_status()
            continue
        body: dict[str, Any] = {
            "matchers": [{"name": n, "value": v, "isRegex": True, "isEqual": True} for n, v in a.matchers],
            "startsAt": a.starts_at,
            "endsAt": a.ends_at,
            "createdBy": "whatchanged",
            "comment": a.comment,
        }
        if a.silence_id:
            body["id"] = a.silence_id
        resp = client.post(f"{base}/api/v2/silences", json=body)
        resp.raise_for_status()
        ids.append(resp.json()["silenceID"])
    return ids
