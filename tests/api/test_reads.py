"""Read endpoints against a live server over the reference night."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import TZ, LiveServer, needs_changes, needs_explain, needs_incidents

OPERATION_IDS = {
    ("get", "/api/v1/explain"): "explain_at",
    ("get", "/api/v1/changes"): "list_changes",
    ("post", "/api/v1/changes"): "create_changes",
    ("get", "/api/v1/incidents"): "list_incidents",
    ("get", "/api/v1/incidents/{incident_id}"): "get_incident",
    ("get", "/api/v1/incidents/{incident_id}/postmortem"): "get_postmortem",
    ("post", "/api/v1/incidents/{incident_id}/feedback"): "create_feedback",
    ("get", "/api/v1/availability"): "get_availability",
    ("get", "/api/v1/services"): "list_services",
    ("get", "/api/v1/fate"): "get_fate",
    ("get", "/api/v1/status"): "get_status",
    ("get", "/api/v1/healthz"): "healthz",
    ("get", "/api/v1/readyz"): "readyz",
    ("post", "/api/v1/alerts/alertmanager"): "create_alerts_alertmanager",
    ("get", "/metrics"): "get_metrics",
}


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["warehouse"] is True
    assert body["commits"] > 0


def test_status_counts_the_warehouse(client: httpx.Client) -> None:
    r = client.get("/status")
    assert r.status_code == 200
    body = r.json()
    assert body["services"] == 1002
    assert body["rows"]["metrics"] > 100_000


def test_services_filter_and_paginate(client: httpx.Client) -> None:
    everything = client.get("/services", params={"limit": 1000}).json()
    assert everything["total"] == 1002
    assert len(everything["items"]) == 1000
    page = client.get("/services", params={"limit": 10, "offset": 1000}).json()
    assert [s["service"] for s in page["items"]] == sorted(s["service"] for s in page["items"])
    assert len(page["items"]) == 2
    some = everything["items"][0]
    filtered = client.get("/services", params={"datacenter": some["datacenter"], "kind": some["kind"]}).json()
    assert filtered["total"] >= 1
    assert all(s["datacenter"] == some["datacenter"] and s["kind"] == some["kind"] for s in filtered["items"])
    assert client.get("/services", params={"switch": "no-such-switch"}).json()["total"] == 0


def test_openapi_has_every_operation_with_stable_ids(server: LiveServer) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    found = {(m, p): op["operationId"] for p, item in doc["paths"].items() for m, op in item.items()}
    assert found == OPERATION_IDS
    for method, path in OPERATION_IDS:
        op = doc["paths"][path][method]
        for param in op.get("parameters", []):
            assert param.get("description"), f"{method} {path} parameter {param['name']} has no description"
        problems = [
            s for s, r in op["responses"].items() if "application/problem+json" in r.get("content", {})
        ]
        assert "500" in problems, (method, path)
        if op.get("parameters"):
            assert "422" in problems, (method, path)
        for status in problems:
            content = op["responses"][status]["content"]["application/problem+json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert content["example"]["status"] == int(status)
        if method == "post":
            assert op["requestBody"]["content"]["application/json"]["schema"]
            assert op["security"] == [{"HTTPBearer": []}]


@needs_changes
def test_changes_around_a_time(client: httpx.Client) -> None:
    r = client.get("/changes", params={"at": "2010-11-17T19:23:00+01:00", "before": "12h", "after": "2h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["changes"]) > 0
    assert body["from"] == "2010-11-17T06:23:00Z"
    assert body["to"] == "2010-11-17T20:23:00Z"
    kinds = {c["kind"] for c in body["changes"]}
    assert "deploy" in kinds
    only = client.get(
        "/changes", params={"at": "2010-11-17 19:23", "tz": TZ, "before": "12h", "kind": "deploy"}
    ).json()
    assert only["changes"]
    assert {c["kind"] for c in only["changes"]} == {"deploy"}
    assert only["changes"][0]["start_local"].endswith("+01:00")


@needs_incidents
def test_incidents_paginated_and_detail(client: httpx.Client) -> None:
    r = client.get(
        "/incidents", params={"from": "2010-11-17T00:00:00+01:00", "to": "2010-11-18T00:00:00+01:00"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] >= 2
    assert body["limit"] == 50
    assert body["offset"] == 0
    first = client.get(
        "/incidents",
        params={
            "from": "2010-11-17T00:00:00+01:00",
            "to": "2010-11-18T00:00:00+01:00",
            "limit": 1,
            "offset": 1,
        },
    ).json()
    assert first["total"] == body["total"]
    assert first["items"] == body["items"][1:2]
    if not pytest.importorskip("whatchanged.engine.explain"):
        return
    general = max(body["items"], key=lambda i: i["critical_services"])
    detail = client.get(f"/incidents/{general['id']}", params={"tz": TZ})
    assert detail.status_code == 200, detail.text
    d = detail.json()
    assert d["incident"]["id"] == general["id"]
    assert d["causes"]
    assert d["causes"][0]["rank"] == 1


@needs_explain
def test_explain_reference_night(client: httpx.Client) -> None:
    r = client.get("/explain", params={"at": "2010-11-17 19:23", "tz": TZ})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["at"].startswith("2010-11-17T19:23:00+01:00")
    assert body["incident"] is not None
    assert [c["rank"] for c in body["causes"]] == list(range(1, len(body["causes"]) + 1))
