"""Writes over a live server: change webhooks (four payload kinds) and feedback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa
import pytest

from tests.api.conftest import TZ, LiveServer, needs_explain, needs_incidents
from whatchanged.engine.schema import CHANGES
from whatchanged.engine.warehouse import Warehouse

AT = "2010-11-17T19:23:00+01:00"

GITHUB = {
    "action": "created",
    "deployment_status": {
        "id": 5550001,
        "state": "success",
        "environment": "prod",
        "log_url": "https://github.com/acme/www/actions/runs/901",
        "description": "rollout complete",
        "created_at": "2010-11-17T18:12:05Z",
    },
    "deployment": {
        "id": 4440001,
        "sha": "9f1c2ab7e0d4c1f2a3b4c5d6e7f8091a2b3c4d5e",
        "ref": "v2010.11.17-9",
        "task": "deploy",
        "environment": "prod",
        "payload": {"service": "www-main"},
        "creator": {"login": "alice"},
        "created_at": "2010-11-17T18:10:10Z",
    },
    "repository": {"full_name": "acme/www"},
}
PAGERDUTY = {
    "routing_key": "R0UTINGKEYEXAMPLE0000000000000AB",
    "payload": {
        "summary": "Deploy api v77 to prod",
        "timestamp": "2010-11-17T18:05:00.000+0000",
        "source": "gitlab-runner-17",
        "custom_details": {"service": "api-01", "environment": "prod", "version": "v77", "actor": "bob"},
    },
    "links": [{"href": "https://ci.example.net/pipelines/4411", "text": "Pipeline 4411"}],
}
GRAFANA = {
    "time": 1290016800000,  # 2010-11-17T18:00:00Z
    "timeEnd": 1290016920000,
    "text": "Deploy webmail v3 (pipeline 88)",
    "tags": ["deploy", "service:webmail", "env:prod"],
}


def deploy(change_id: str, timestamp: str = "2010-11-17T19:15:00+01:00", **extra: Any) -> dict[str, Any]:
    return {
        "id": change_id,
        "timestamp": timestamp,
        "service": "www-main",
        "version": "v9",
        "author": "carol",
        "description": "hot fix",
        **extra,
    }


def around(client: httpx.Client, at: str = AT, before: str = "6h") -> dict[str, dict[str, Any]]:
    r = client.get("/changes", params={"at": at, "before": before, "after": "2h"})
    assert r.status_code == 200, r.text
    return {c["change_id"]: c for c in r.json()["changes"]}


def test_deploy_record_is_stored_once_and_visible_to_the_next_read(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    body = deploy("api-test-rel-1", ticket="OPS-12")
    first = client.post("/changes", json=body, headers=auth)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "format": "deploy",
        "received": 1,
        "added": 1,
        "change_ids": ["api-test-rel-1"],
        "txid": first.json()["txid"],
    }
    assert first.json()["txid"]
    again = client.post("/changes", json=body, headers=auth)
    assert again.status_code == 200, again.text
    assert again.json()["added"] == 0
    assert again.json()["txid"] is None
    stored = around(client)["api-test-rel-1"]
    assert stored["kind"] == "deploy"
    assert stored["author"] == "carol"
    assert stored["start"] == "2010-11-17T18:15:00Z"


def test_list_of_deploy_records(client: httpx.Client, auth: dict[str, str]) -> None:
    r = client.post("/changes", json=[deploy("api-test-list-1"), deploy("api-test-list-2")], headers=auth)
    assert r.status_code == 201, r.text
    assert sorted(r.json()["change_ids"]) == ["api-test-list-1", "api-test-list-2"]
    assert {"api-test-list-1", "api-test-list-2"} <= around(client).keys()


@pytest.mark.parametrize(
    ("payload", "fmt"), [(GITHUB, "github"), (PAGERDUTY, "pagerduty"), (GRAFANA, "grafana")]
)
def test_webhook_payloads_then_get_changes(
    client: httpx.Client, auth: dict[str, str], payload: dict[str, Any], fmt: str
) -> None:
    before = around(client)
    r = client.post("/changes", json=payload, headers=auth)
    assert r.status_code in (200, 201), r.text
    body = r.json()
    assert body["format"] == fmt
    assert body["received"] == 1
    (change_id,) = body["change_ids"]
    assert change_id.startswith(f"{fmt}:")
    after = around(client)
    assert (change_id in after and change_id not in before) or r.status_code == 200
    assert after[change_id]["kind"] == "deploy"
    # forcing the format gives the same answer, and re-posting adds nothing
    again = client.post("/changes", params={"format": fmt}, json=payload, headers=auth)
    assert again.status_code == 200
    assert again.json()["added"] == 0


def test_time_without_offset_needs_tz(client: httpx.Client, auth: dict[str, str]) -> None:
    body = deploy("api-test-naive", timestamp="2010-11-17 19:16")
    r = client.post("/changes", json=body, headers=auth)
    assert r.status_code == 422
    problem = r.json()
    assert problem["errors"][0]["field"] == "body.timestamp"
    assert "offset" in problem["detail"]
    ok = client.post("/changes", params={"tz": TZ}, json=body, headers=auth)
    assert ok.status_code == 201, ok.text
    assert around(client)["api-test-naive"]["start"] == "2010-11-17T18:16:00Z"


def test_unrecognised_payload_names_every_kind(client: httpx.Client, auth: dict[str, str]) -> None:
    r = client.post("/changes", json={"hello": "world"}, headers=auth)
    assert r.status_code == 422
    expected = " ".join(e["expected"] for e in r.json()["errors"])
    for word in ("GitHub", "PagerDuty", "Grafana", "deploy record"):
        assert word in expected


def test_bad_fields_are_listed(client: httpx.Client, auth: dict[str, str]) -> None:
    r = client.post("/changes", json=deploy("x", timestamp="yesterday-ish"), headers=auth)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].endswith("timestamp")
    r = client.post("/changes", json={"id": "", "timestamp": 3, "service": None}, headers=auth)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"body.id", "body.timestamp", "body.service"} <= fields


def test_change_id_of_another_kind_conflicts(
    server: LiveServer, client: httpx.Client, auth: dict[str, str]
) -> None:
    row = {
        "change_id": "api-test-maint-1",
        "kind": "maintenance",
        "start": datetime(2010, 11, 17, 18, 0, tzinfo=UTC),
        "end": datetime(2010, 11, 17, 20, 0, tzinfo=UTC),
        "title": "switch reload",
        "source": "test",
    }
    Warehouse(server.home).commit({"changes": pa.Table.from_pylist([row], schema=CHANGES)}, source="test")
    r = client.post("/changes", json=deploy("api-test-maint-1"), headers=auth)
    assert r.status_code == 409, r.text
    assert "maintenance" in r.json()["detail"]
    assert around(client)["api-test-maint-1"]["kind"] == "maintenance"


def _feedback_rows(home: Any) -> list[tuple[Any, ...]]:
    con = Warehouse(home).snapshot()
    try:
        return con.sql(
            "SELECT incident_id, cause_change_id, category, comment, author FROM feedback"
        ).fetchall()
    finally:
        con.close()


@needs_incidents
def test_feedback_is_appended(server: LiveServer, client: httpx.Client, auth: dict[str, str]) -> None:
    incidents = client.get(
        "/incidents", params={"from": "2010-11-17T00:00:00+01:00", "to": "2010-11-18T00:00:00+01:00"}
    )
    assert incidents.status_code == 200, incidents.text
    incident_id = incidents.json()["items"][0]["id"]
    before = _feedback_rows(server.home)
    verdict = {"category": "hosting", "comment": "bo-primary died", "author": "dave"}
    r = client.post(f"/incidents/{incident_id}/feedback", json=verdict, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["incident_id"] == incident_id
    assert r.json()["category"] == "hosting"
    after = _feedback_rows(server.home)
    assert len(after) == len(before) + 1
    assert (incident_id, None, "hosting", "bo-primary died", "dave") in after
    # a cause change that is not stored, an unknown incident, nothing confirmed, unknown keys
    assert (
        client.post(
            f"/incidents/{incident_id}/feedback", json={"cause_change_id": "nope"}, headers=auth
        ).status_code
        == 422
    )
    assert client.post("/incidents/no-such-incident/feedback", json=verdict, headers=auth).status_code == 404
    assert (
        client.post(f"/incidents/{incident_id}/feedback", json={"comment": "?"}, headers=auth).status_code
        == 422
    )
    assert (
        client.post(
            f"/incidents/{incident_id}/feedback", json={**verdict, "extra": 1}, headers=auth
        ).status_code
        == 422
    )
    assert len(_feedback_rows(server.home)) == len(after)


@needs_explain
def test_posted_deploy_is_ranked_by_explain(client: httpx.Client, auth: dict[str, str]) -> None:
    """A deploy on the services that fail, minutes before the onset, shows up among the causes."""
    body = {
        "id": "api-test-suspect",
        "timestamp": "2010-11-17T19:20:00+01:00",
        "service": "www-main",
        "version": "v999",
        "author": "eve",
        "description": "risky change",
    }
    r = client.post("/changes", json=body, headers=auth)
    assert r.status_code in (200, 201), r.text
    expl = client.get("/explain", params={"at": "2010-11-17 19:23", "tz": TZ})
    assert expl.status_code == 200, expl.text
    causes = expl.json()["causes"]
    ranked = [c for c in causes if c["change_id"] == "api-test-suspect"]
    assert ranked, [c["change_id"] for c in causes]
    assert ranked[0]["category"] == "application_release"
    assert ranked[0]["start"] == "2010-11-17T19:20:00+01:00"
