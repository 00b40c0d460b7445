"""GitHub ``deployment_status`` webhook payloads (one, or a list of them).

::

    {"action": "created",
     "deployment_status": {"id": 5550001, "state": "success", "environment": "prod",
       "log_url": "https://github.com/acme/checkout/actions/runs/901",
       "description": "rollout complete", "created_at": "2025-03-14T22:00:05Z"},
     "deployment": {"id": 4440001, "sha": "9f1c2ab7e0d4c1f2a3b4c5d6e7f8091a2b3c4d5e",
       "ref": "v2025.03.14-2", "task": "deploy", "environment": "prod",
       "payload": {"service": "checkout"}, "creator": {"login": "alice"},
       "created_at": "2025-03-14T21:58:10Z"},
     "repository": {"full_name": "acme/checkout"}}

Mapping: kind ``deploy``; change_id ``github:<repo>#<deployment.id>`` — every
status of one deployment updates the same change, the latest
``deployment_status.created_at`` (the ``stamp``) wins; window =
``deployment.created_at`` → the status time once the state is terminal
(success, failure, error, inactive), open before.  Status: queued/pending →
scheduled, in_progress → in_progress, success/inactive/failure/error →
completed (a failed rollout still changed something; the state is kept in
the description).  Services: ``deployment.payload.service`` (or
``services``) for monorepos, else the repository name; version: ``ref``
(or the short SHA); author: the deployment creator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.ingest.base import Reader
from whatchanged.ingest.changes_common import (
    Where,
    as_dict,
    change_row,
    each_item,
    end_after,
    get_str,
    json_head,
    json_parse_payload,
    json_reader,
    object_rows,
    parse_iso,
    scope,
    to_raw,
)

SOURCE = "github"
STATUS = {
    "queued": "scheduled",
    "pending": "scheduled",
    "in_progress": "in_progress",
    "success": "completed",
    "inactive": "completed",
    "failure": "completed",
    "error": "completed",
}
TERMINAL = {"success", "failure", "error", "inactive"}


def _one(body: dict[str, Any], *, where: Where, tz: str) -> tuple[dict[str, Any], bool]:
    pre = where.field + "." if where.field else ""
    dep, st = body.get("deployment"), body.get("deployment_status")
    if not isinstance(dep, dict):
        raise where.at(field=pre + "deployment").error("missing value", "the deployment object", dep)
    if not isinstance(st, dict):
        raise where.at(field=pre + "deployment_status").error(
            "missing value", "the deployment_status object", st
        )
    repo_obj = as_dict(body.get("repository"))
    repo = get_str(repo_obj, "full_name", where=where.at(field=pre + "repository"), required=True)
    dep_id = get_str(dep, "id", where=where.at(field=pre + "deployment"), required=True)
    state = get_str(st, "state", where=where.at(field=pre + "deployment_status"), required=True)
    if state not in STATUS:
        raise where.at(field=pre + "deployment_status.state").error(
            "unknown deployment state", " | ".join(STATUS), state
        )
    start, a1 = parse_iso(dep.get("created_at"), tz=tz, where=where.at(field=pre + "deployment.created_at"))
    stamp, a2 = parse_iso(
        st.get("created_at"), tz=tz, where=where.at(field=pre + "deployment_status.created_at")
    )
    end = (
        end_after(start, stamp, where=where.at(field=pre + "deployment_status.created_at"))
        if state in TERMINAL
        else None
    )
    payload = as_dict(dep.get("payload"))
    services: list[Any] = []
    if isinstance(payload.get("service"), str):
        services.append(payload["service"])
    if isinstance(payload.get("services"), list):
        services += [s for s in payload["services"] if isinstance(s, str)]
    if not services:
        services = [str(repo).split("/")[-1]]
    env = st.get("environment") or dep.get("environment")
    sha = dep.get("sha") if isinstance(dep.get("sha"), str) else None
    version = (
        dep.get("ref") if isinstance(dep.get("ref"), str) and dep.get("ref") else (sha[:12] if sha else None)
    )
    creator = as_dict(dep.get("creator"))
    desc = f"deployment state {state}" + (
        f": {st['description']}" if isinstance(st.get("description"), str) else ""
    )
    row = change_row(
        change_id=f"github:{repo}#{dep_id}",
        kind="deploy",
        start=start,
        end=end,
        title=f"Deploy {repo} {version or ''}".strip()
        + (f" to {env}" if isinstance(env, str) and env else ""),
        description=desc,
        status=STATUS[state],
        stamp=stamp,
        scope_value=scope(services=services),
        author=creator.get("login") if isinstance(creator.get("login"), str) else None,
        version=version,
        url=next(
            (
                st[k]
                for k in ("log_url", "target_url", "environment_url")
                if isinstance(st.get(k), str) and st[k]
            ),
            None,
        ),
        source=SOURCE,
        raw=to_raw(body),
    )
    return row, a1 or a2


def rows_of(obj: Any, *, where: Where, tz: str) -> tuple[list[dict[str, Any]], bool]:
    return object_rows(
        each_item(obj, where),
        lambda body, w: _one(body, where=w, tz=tz),
        message="not a deployment_status payload",
    )


def parse_payload(obj: Any, *, source: str, tz: str) -> pa.Table:
    """A ``deployment_status`` webhook body (or a list of them) → ``changes`` table."""
    return json_parse_payload(rows_of, obj, source=source, tz=tz)


def sniff(_path: Path, head: bytes) -> bool:
    text = json_head(head)
    return text[:1] in "[{" and '"deployment_status":' in text


read = json_reader(rows_of)


READER = Reader(
    name="github_deploy",
    description="GitHub deployment_status webhook payload JSON",
    sniff=sniff,
    read=read,
)
