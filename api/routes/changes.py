"""``GET /changes`` (changes around a time) and ``POST /changes`` (change events by webhook)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Query, Response

from whatchanged.api.deps import (
    WRITE_LOCK,
    AtQuery,
    DbDep,
    JsonBodyDep,
    SettingsDep,
    TzQuery,
    WarehouseDep,
    WriterDep,
    check_tz,
    parse_span,
    parse_time,
    validate_body,
)
from whatchanged.api.models import ChangeKind, ChangeList, ChangesCreated
from whatchanged.api.payloads import (
    DeployRecordIn,
    GitHubDeploymentStatus,
    GrafanaAnnotation,
    PagerDutyChangeEvent,
)
from whatchanged.api.problems import FieldError, ProblemError, found_repr, problem_responses
from whatchanged.engine.catalog import stored_kinds
from whatchanged.engine.changes import aliases_path, list_changes, load_aliases
from whatchanged.ingest import deploy_jsonl, github_deploy, grafana, pagerduty
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import check_times
from whatchanged.present.shapes import change_list

router = APIRouter(tags=["changes"])

_Span = Annotated[str, Query(min_length=1, max_length=32)]


@router.get(
    "/changes",
    operation_id="list_changes",
    summary="Changes around a time",
    response_model=ChangeList,
    responses=problem_responses(422, 503, 500),
)
def get_changes(
    con: DbDep,
    settings: SettingsDep,
    at: AtQuery,
    before: Annotated[
        _Span, Query(description="How far before `at` to look (`90s`, `30m`, `2h`, `1d`).")
    ] = "2h",
    after: Annotated[_Span, Query(description="How far after `at` to look.")] = "30m",
    kind: Annotated[ChangeKind | None, Query(description="Only changes of this kind.")] = None,
    tz: TzQuery = None,
) -> dict[str, Any]:
    """Changes whose time or window meets `[at - before, at + after]`, oldest first, with the
    inventory services their scope resolves to — what `whatchanged changes --json` prints."""
    check_tz(tz)
    when = parse_time(at, name="at", tz=tz, con=con)
    start = when - parse_span(before, name="before")
    end = when + parse_span(after, name="after")
    shown_tz = tz or settings.tz
    found = list_changes(
        con,
        start=start,
        end=end,
        kind=kind.value if kind else None,
        aliases=cached_aliases(aliases_path(settings)),
    )
    return change_list(found, at=when, start=start, end=end, kind=kind.value if kind else None, tz=shown_tz)


def cached_aliases(path: Path | None) -> Any:
    """The aliases file, parsed once per version of the file."""
    if path is None:
        return load_aliases(None)
    return _aliases_cached(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _aliases_cached(path: Path, _mtime_ns: int) -> Any:  # the file version: a cache key
    return load_aliases(path)


# -- POST /changes -----------------------------------------------------------------------------------


class PayloadFormat(StrEnum):
    """Payload kinds ``POST /changes`` reads."""

    deploy = "deploy"
    github = "github"
    pagerduty = "pagerduty"
    grafana = "grafana"


@dataclass(frozen=True)
class _Format:
    model: Any  # pydantic model or TypeAdapter target validating it first
    keys: frozenset[str]  # keys that identify it
    many: bool  # a JSON list of them is accepted
    what: str


FORMATS: dict[PayloadFormat, _Format] = {
    PayloadFormat.github: _Format(
        GitHubDeploymentStatus,
        frozenset({"deployment_status", "deployment"}),
        False,
        "GitHub deployment_status webhook (keys deployment_status, deployment)",
    ),
    PayloadFormat.pagerduty: _Format(
        PagerDutyChangeEvent,
        frozenset({"routing_key", "payload"}),
        False,
        "PagerDuty change event (keys routing_key, payload)",
    ),
    PayloadFormat.grafana: _Format(
        GrafanaAnnotation,
        frozenset({"text", "time"}),
        True,
        "Grafana annotation or a list of them (keys text, time)",
    ),
    PayloadFormat.deploy: _Format(
        DeployRecordIn,
        frozenset({"id", "timestamp", "service"}),
        True,
        "whatchanged deploy record or a list of them (keys id, timestamp, service)",
    ),
}
MAX_ITEMS = 1000
PARSERS: dict[PayloadFormat, Any] = {
    PayloadFormat.deploy: deploy_jsonl.parse_payload,
    PayloadFormat.github: github_deploy.parse_payload,
    PayloadFormat.pagerduty: pagerduty.parse_payload,
    PayloadFormat.grafana: grafana.parse_payload,
}


def detect_format(body: Any) -> PayloadFormat:
    """Which payload kind ``body`` is, from the keys it has; 422 naming every kind tried."""
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        for fmt, spec in FORMATS.items():
            if spec.keys <= first.keys() and (spec.many or not isinstance(body, list)):
                return fmt
    found = (
        f"an object with keys {sorted(first)[:12]}"
        if isinstance(first, dict)
        else f"a JSON {type(body).__name__}" + (" (empty)" if body == [] else "")
    )
    raise ProblemError(
        422,
        "payload not recognised; send one of the documented kinds or force one with ?format=",
        slug="invalid-body",
        errors=[FieldError(field="body", expected=spec.what, found=found) for spec in FORMATS.values()],
    )


def _parser(fmt: PayloadFormat) -> Any:
    """The ingest reader's ``parse_payload`` for ``fmt`` (no parser is duplicated here)."""
    return PARSERS[fmt]


def _validated(fmt: PayloadFormat, body: Any) -> None:
    spec = FORMATS[fmt]
    if isinstance(body, list):
        if not spec.many:
            raise ProblemError(
                422, f"a {fmt.value} payload is one JSON object, not a list", slug="invalid-body"
            )
        if not body or len(body) > MAX_ITEMS:
            raise ProblemError(
                422,
                f"expected a list of 1 to {MAX_ITEMS} {fmt.value} records, found {len(body)}",
                slug="invalid-body",
                errors=[FieldError(field="body", expected=f"1 to {MAX_ITEMS} items", found=str(len(body)))],
            )
        for n, item in enumerate(body):
            validate_body(spec.model, item, prefix=f"body.{n}")
    else:
        validate_body(spec.model, body)


def _offsets_given(fmt: PayloadFormat, body: Any, tz: str | None) -> None:
    """Times without an offset are refused unless ``?tz=`` says how to read them (the API rule)."""
    if tz is not None:
        return
    fields: list[tuple[str, Any]] = []
    items = body if isinstance(body, list) else [body]
    for n, item in enumerate(items):
        at = f"body.{n}." if isinstance(body, list) else "body."
        if fmt is PayloadFormat.deploy:
            fields += [(at + "timestamp", item.get("timestamp")), (at + "end", item.get("end"))]
        elif fmt is PayloadFormat.pagerduty:
            fields.append((at + "payload.timestamp", (item.get("payload") or {}).get("timestamp")))
    for field, value in fields:
        if isinstance(value, str) and value.strip() and not _has_offset(value):
            raise ProblemError(
                422,
                f"{field}: {value!r} has no offset; add one (…+01:00, …Z) or send ?tz=",
                slug="invalid-body",
                errors=[
                    FieldError(
                        field=field, expected="ISO 8601 with an offset, or ?tz=", found=found_repr(value)
                    )
                ],
            )


def _has_offset(text: str) -> bool:
    candidate = text.strip().replace(" ", "T", 1)
    if candidate.endswith(("Z", "z")):
        return True
    try:
        return datetime.fromisoformat(candidate).tzinfo is not None
    except ValueError:
        return True  # not a time at all: the reader says so, naming the field


def _conflicts(con: Any, table: pa.Table) -> None:
    """409 when a posted change_id is already stored as another kind of change."""
    ids = table.column("change_id").to_pylist()
    kinds = dict(zip(ids, table.column("kind").to_pylist(), strict=True))
    for change_id, stored_kind in stored_kinds(con, ids).items():
        if kinds.get(change_id) != stored_kind:
            raise ProblemError(
                409,
                f"change {change_id!r} is already stored as a {stored_kind}, not a {kinds.get(change_id)}",
                slug="conflict",
                errors=[
                    FieldError(
                        field="body",
                        expected=f"a change_id not used by another kind (or kind {stored_kind})",
                        found=found_repr(change_id),
                    )
                ],
            )


_BODY_SCHEMA = {
    "anyOf": [
        {"$ref": "#/components/schemas/DeployRecordIn"},
        {
            "type": "array",
            "items": {"$ref": "#/components/schemas/DeployRecordIn"},
            "minItems": 1,
            "maxItems": MAX_ITEMS,
        },
        {"$ref": "#/components/schemas/GitHubDeploymentStatus"},
        {"$ref": "#/components/schemas/PagerDutyChangeEvent"},
        {"$ref": "#/components/schemas/GrafanaAnnotation"},
        {
            "type": "array",
            "items": {"$ref": "#/components/schemas/GrafanaAnnotation"},
            "minItems": 1,
            "maxItems": MAX_ITEMS,
        },
    ]
}


@router.post(
    "/changes",
    operation_id="create_changes",
    summary="Send change events (webhook)",
    response_model=ChangesCreated,
    status_code=201,
    responses={
        200: {
            "description": "Every change was already stored as is: nothing added.",
            "model": ChangesCreated,
        },
        **problem_responses(400, 401, 403, 409, 413, 415, 422, 503, 500),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A deploy record (or a list), a GitHub deployment_status delivery, a PagerDuty "
            "change event, or a Grafana annotation (or a list).",
            "content": {"application/json": {"schema": _BODY_SCHEMA}},
        }
    },
)
def create_changes(
    writer: WriterDep,
    body: JsonBodyDep,
    con: DbDep,
    warehouse: WarehouseDep,
    settings: SettingsDep,
    response: Response,
    fmt: Annotated[
        PayloadFormat | None,
        Query(alias="format", description="Read the body as this kind instead of detecting it."),
    ] = None,
    tz: TzQuery = None,
) -> ChangesCreated:
    """Store change events sent by CI, PagerDuty, GitHub or Grafana webhooks, atomically.
    201 when something was stored; re-posting the same payload stores nothing and answers 200
    with `added: 0`.  Needs a bearer token."""
    check_tz(tz)
    fmt = fmt or detect_format(body)
    _validated(fmt, body)
    _offsets_given(fmt, body, tz)
    table: pa.Table = _parser(fmt)(body, source=f"api:{fmt.value}", tz=tz or settings.tz)
    # the ingest pipeline's rule: 1970–2200, not more than a day ahead unless allow_future
    table = check_times({"changes": table}, file="body", ctx=ReadContext.from_settings(settings))["changes"]
    if table.num_rows == 0:
        raise ProblemError(422, f"the {fmt.value} payload holds no change", slug="invalid-body")
    _conflicts(con, table)
    with WRITE_LOCK:
        result = warehouse.commit({"changes": table}, source=f"api:{fmt.value}:{writer}")
    added = result.rows_added.get("changes", 0)
    response.status_code = 201 if added else 200
    return ChangesCreated(
        format=fmt.value,
        received=table.num_rows,
        added=added,
        change_ids=table.column("change_id").to_pylist(),
        txid=result.txid,
    )
