"""Third-party payloads the API accepts: change events by webhook (``POST /changes``: our deploy
record, PagerDuty, GitHub, Grafana) and Alertmanager's (``POST /alerts/alertmanager``).

They are checked for the fields we use and keep everything else (it goes to the change's
``raw``); they are documented in ``components/schemas`` (:data:`REQUEST_BODY_MODELS`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from whatchanged.api.models import FeedbackIn


class DeployRecordIn(BaseModel):
    """Our own deploy record: one line of a JSON Lines deploy log (``ingest.deploy_jsonl``).

    Unknown keys are accepted and kept, with the whole record, in the change's ``raw``.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "id": "rel-1117-07",
                    "timestamp": "2010-11-17T19:10:00+01:00",
                    "service": "backoffice",
                    "version": "v412",
                    "author": "bob",
                    "description": "New invoice export",
                    "environment": "prod",
                }
            ]
        },
    )

    id: str = Field(min_length=1, max_length=200, description="Stable id: becomes the change_id.")
    timestamp: str = Field(
        min_length=1, max_length=64, description="Deploy start, ISO 8601 with an offset (or send ?tz=)."
    )
    service: str = Field(min_length=1, max_length=200, description="Inventory service or app deployed.")
    version: str | int | float | None = Field(default=None, description="Version deployed.")
    author: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10000)
    end: str | None = Field(default=None, max_length=64, description="Deploy end, ISO 8601.")
    environment: str | None = Field(default=None, max_length=200)
    app: str | None = Field(default=None, max_length=200, description="Application (scope.apps).")


class PagerDutyPayload(BaseModel):
    model_config = ConfigDict(extra="allow")
    summary: str = Field(min_length=1, max_length=1024)
    timestamp: str | None = None
    source: str | None = None
    custom_details: dict[str, Any] | None = None


class PagerDutyChangeEvent(BaseModel):
    """A PagerDuty Events API v2 change event (as sent to ``/v2/change/enqueue``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "routing_key": "R0UTINGKEYEXAMPLE0000000000000AB",
                    "payload": {
                        "summary": "Deploy checkout v2025.03.14-2 to prod",
                        "timestamp": "2025-03-14T21:58:10.000+0000",
                        "source": "gitlab-runner-17",
                        "custom_details": {"environment": "prod", "version": "v2025.03.14-2"},
                    },
                    "links": [{"href": "https://ci.example.net/pipelines/4411", "text": "Pipeline 4411"}],
                }
            ]
        },
    )
    routing_key: str
    payload: PagerDutyPayload
    links: list[dict[str, Any]] | None = None


class GitHubDeploymentStatus(BaseModel):
    """A GitHub ``deployment_status`` webhook delivery."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "action": "created",
                    "deployment_status": {
                        "id": 5550001,
                        "state": "success",
                        "environment": "prod",
                        "created_at": "2025-03-14T22:00:05Z",
                    },
                    "deployment": {
                        "id": 4440001,
                        "sha": "9f1c2ab7e0d4c1f2a3b4c5d6e7f8091a2b3c4d5e",
                        "ref": "v2025.03.14-2",
                        "environment": "prod",
                        "created_at": "2025-03-14T21:58:10Z",
                    },
                    "repository": {"full_name": "acme/checkout"},
                }
            ]
        },
    )
    action: str | None = None
    deployment_status: dict[str, Any]
    deployment: dict[str, Any]
    repository: dict[str, Any] | None = None


class GrafanaAnnotation(BaseModel):
    """A Grafana annotation (``POST /api/annotations`` body or an item of ``GET``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "time": 1741989490000,
                    "timeEnd": 1741989610000,
                    "text": "Deploy checkout v2025.03.14-2",
                    "tags": ["deploy", "service:checkout", "env:prod"],
                }
            ]
        },
    )
    text: str
    time: int = Field(description="Epoch milliseconds.")
    timeEnd: int | None = Field(default=None, description="Epoch milliseconds; makes a region.")
    tags: list[str] = Field(default_factory=list)


class AlertIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description="firing or resolved")
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str
    endsAt: str = "0001-01-01T00:00:00Z"
    fingerprint: str | None = None


class AlertmanagerIn(BaseModel):
    """Alertmanager's webhook payload; fields Alertmanager may add later are accepted."""

    model_config = ConfigDict(extra="allow")

    version: str = Field(description="'4' (Alertmanager 0.x)")
    status: str
    receiver: str = ""
    groupKey: str = ""
    alerts: list[AlertIn] = Field(max_length=10_000)


class AlertsOut(BaseModel):
    received: int = Field(description="Alerts in the payload.")
    added: int = Field(description="Check-state rows stored (0 when Alertmanager re-sent a group).")
    txid: str | None = None


#: Bodies documented in components/schemas without being FastAPI body parameters.
REQUEST_BODY_MODELS: tuple[type[BaseModel], ...] = (
    DeployRecordIn,
    FeedbackIn,
    PagerDutyChangeEvent,
    PagerDutyPayload,
    GitHubDeploymentStatus,
    GrafanaAnnotation,
    AlertmanagerIn,
)
