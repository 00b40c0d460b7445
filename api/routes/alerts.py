"""``POST /alerts/alertmanager``: Alertmanager's webhook (version 4) → check states.

Point a receiver at it with the bearer token as Alertmanager's ``http_config`` sends it::

    receivers:
      - name: whatchanged
        webhook_configs:
          - url: http://127.0.0.1:8080/api/v1/alerts/alertmanager
            send_resolved: true
            http_config:
              authorization: {type: Bearer, credentials_file: /etc/alertmanager/whatchanged.token}

Which label names the service is ``[alertmanager] service_labels`` in ``<home>/sources.toml``
(default ``service``, then ``job``, then ``instance``).  When states were added and the sources
file has ``[[sinks]]``, the server checks for a newly opened incident in the background and
posts its explanation there.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from whatchanged.api.deps import WRITE_LOCK, JsonBodyDep, SettingsDep, WarehouseDep, WriterDep, validate_body
from whatchanged.api.payloads import AlertmanagerIn, AlertsOut
from whatchanged.api.problems import problem_responses
from whatchanged.engine.sinks import Notifier
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.alertmanager import parse_payload
from whatchanged.ingest.sources import load_sources
from whatchanged.present.notify import PRESENTER

router = APIRouter(tags=["changes"])


_notifiers: dict[str, Notifier] = {}
_notifiers_lock = threading.Lock()


def _notify(request: Request, warehouse: Warehouse, sinks: list[Any]) -> None:
    """Check for a newly opened incident in the background (one notifier per sinks list)."""
    settings = request.app.state.settings
    key = f"{warehouse.home}|{sinks!r}"
    with _notifiers_lock:
        notifier = _notifiers.get(key)
        if notifier is None:
            base = str(request.base_url).rstrip("/")
            notifier = _notifiers[key] = Notifier(
                warehouse, sinks, presenter=PRESENTER, settings=settings, public_url=base
            )
    request.app.state.last_notify = notifier.check_in_background()


@router.post(
    "/alerts/alertmanager",
    operation_id="create_alerts_alertmanager",
    summary="Alertmanager webhook receiver",
    response_model=AlertsOut,
    responses=problem_responses(400, 401, 403, 413, 415, 422, 503, 500),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AlertmanagerIn"}}},
        },
    },
)
def create_alerts_alertmanager(
    writer: WriterDep, body: JsonBodyDep, warehouse: WarehouseDep, settings: SettingsDep, request: Request
) -> JSONResponse:
    """Firing alerts become CRITICAL (or WARNING by their `severity` label) check states at
    `startsAt`, resolved ones OK at `endsAt`; `check` is the `alertname`.  Needs a bearer token.
    Answers 201 when states were stored, 200 when the group was already stored."""
    payload = validate_body(AlertmanagerIn, body)
    config = load_sources(settings.home)
    table = parse_payload(payload.model_dump(), service_labels=tuple(config.alertmanager.service_labels))
    with WRITE_LOCK:
        result = warehouse.commit({"states": table}, source=f"api:alertmanager:{writer}")
    added = result.rows_added.get("states", 0)
    if added and config.sinks:
        _notify(request, warehouse, config.sinks)
    out = AlertsOut(received=len(payload.alerts), added=added, txid=result.txid)
    return JSONResponse(out.model_dump(), status_code=201 if added else 200)
