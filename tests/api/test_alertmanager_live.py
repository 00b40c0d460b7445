"""REAL Alertmanager (Debian's 0.25) → ``whatchanged serve`` → sinks.

Alertmanager runs on a loopback port with a webhook receiver pointing at a ``whatchanged serve``
process started by the test (bearer token through ``http_config``).  Alerts posted to
Alertmanager's ``/api/v2/alerts`` reach whatchanged, become check states and open an incident;
the Slack-compatible, generic JSON and Grafana sinks (loopback recorders) each get the
explanation exactly once, although Alertmanager sends the group again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.servers import Recorder, free_port, need, running
from whatchanged.api.cli import build
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.changes_common import change_row, changes_table, scope

pytestmark = pytest.mark.slow

TOKEN = "am-webhook-token"
GRAFANA_TOKEN = "glsa_test_token"


def _wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    am_bin = need("prometheus-alertmanager")
    tmp_path = tmp_path_factory.mktemp("alertmanager")
    home = tmp_path / "wh"
    Warehouse(home).init()
    with Recorder() as slack, Recorder() as hook, Recorder() as grafana:
        (home / "sources.toml").write_text(
            f"""
[alertmanager]
service_labels = ["service", "job"]

[[sinks]]
name = "chat"
kind = "slack"
url = "{slack.url}/hooks/abc"

[[sinks]]
name = "json"
kind = "webhook"
url = "{hook.url}/events"

[[sinks]]
name = "grafana"
kind = "grafana"
url = "{grafana.url}"
token_env = "GRAFANA_TOKEN"
"""
        )
        wc_port = free_port()
        env = {
            **os.environ,
            "WHATCHANGED_API_TOKENS": TOKEN,
            "WHATCHANGED_WARM": "0",
            "GRAFANA_TOKEN": GRAFANA_TOKEN,
        }
        serve = [sys.executable, "-m", "whatchanged.api.cli", "serve", "--home", str(home)]
        serve += ["--port", str(wc_port), "--log-level", "warning"]
        wc_url = f"http://127.0.0.1:{wc_port}"
        with running(serve, f"{wc_url}/api/v1/healthz", tmp_path / "serve.log", env=env):
            am_port = free_port()
            config = tmp_path / "alertmanager.yml"
            # group_wait: long enough for Alertmanager to gather the three alerts posted together
            # into the first notification on a loaded machine (at 1 s it once sent the first alone)
            config.write_text(
                f"""
route:
  receiver: whatchanged
  group_by: [alertname]
  group_wait: 4s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: whatchanged
    webhook_configs:
      - url: {wc_url}/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"""
            )
            am = [
                am_bin,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # no gossip: a single loopback instance
            ]
            am_url = f"http://127.0.0.1:{am_port}"
            with running(am, f"{am_url}/-/ready", tmp_path / "alertmanager.log"):
                yield {
                    "home": home,
                    "am": am_url,
                    "wc": wc_url,
                    "slack": slack,
                    "hook": hook,
                    "grafana": grafana,
                    "log": tmp_path / "serve.log",
                }


def _states(wc: str) -> int:
    body = httpx.get(f"{wc}/api/v1/status", timeout=30).json()
    n: int = body["rows"]["states"]
    return n


def test_alert_through_alertmanager_opens_an_incident_posted_once(stack: dict[str, Any]) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=3)).replace(microsecond=0)
    alerts = [
        {
            "labels": {"alertname": "SiteDown", "service": f"www-{i:04d}", "severity": "critical"},
            "annotations": {"summary": f"www-{i:04d} does not answer"},
            "startsAt": start.isoformat().replace("+00:00", "Z"),
        }
        for i in range(3)
    ]
    r = httpx.post(f"{stack['am']}/api/v2/alerts", json=alerts, timeout=10)
    assert r.status_code == 200, r.text
    _wait_for(lambda: _states(stack["wc"]) == 3, 30, "the alerts to reach whatchanged as check states")

    sinks = (stack["slack"], stack["hook"], stack["grafana"])
    _wait_for(lambda: all(s.requests for s in sinks), 60, "the explanation at every sink")
    # Alertmanager sends the group again (a new alert joins it): the sinks are not posted again
    more = [{**alerts[0], "labels": {**alerts[0]["labels"], "service": "www-0099"}}]
    assert httpx.post(f"{stack['am']}/api/v2/alerts", json=more, timeout=10).status_code == 200
    _wait_for(lambda: _states(stack["wc"]) == 4, 30, "the second delivery")
    time.sleep(3)
    assert [len(s.requests) for s in sinks] == [1, 1, 1], stack["log"].read_text()[-2000:]

    slack = stack["slack"].requests[0]
    assert slack["path"] == "/hooks/abc"
    text = slack["body"]["text"]
    assert "new incident" in text
    assert "inc-" in text
    assert "/dashboards/incidents/inc-" in text
    assert "#1 " in text
    assert "score" in text
    assert "ruled out" in text

    event = stack["hook"].requests[0]["body"]
    assert event["event"] == "opened"
    explanation = event["explanation"]
    assert explanation["incident"]["services_affected"] >= 3
    assert explanation["causes"]
    assert {"category", "score", "evidence_for"} <= explanation["causes"][0].keys()

    grafana = stack["grafana"].requests[0]
    assert grafana["path"] == "/api/annotations"
    assert grafana["headers"]["Authorization"] == f"Bearer {GRAFANA_TOKEN}"
    ann = grafana["body"]
    assert ann["tags"][0] == "whatchanged"
    assert ann["tags"][1] == explanation["causes"][0]["category"]
    assert ann["time"] == int(start.timestamp() * 1000)
    assert ann.get("timeEnd", ann["time"]) >= ann["time"]  # still open: a point annotation


def test_the_receiver_wants_the_bearer_token(stack: dict[str, Any]) -> None:
    payload = {"version": "4", "status": "firing", "alerts": []}
    url = f"{stack['wc']}/api/v1/alerts/alertmanager"
    assert httpx.post(url, json=payload, timeout=10).status_code == 401
    bad = httpx.post(url, json=payload, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 403
    ok = httpx.post(url, json=payload, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200
    assert ok.json() == {"received": 0, "added": 0, "txid": None}


def _notice(home: Path, *, status: str, sequence: int, hours: float = 2.0) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    row = change_row(
        change_id="ovh:FS#4321",
        kind="maintenance",
        start=start,
        end=start + timedelta(hours=hours),
        title="P19 switches maintenance",
        status=status,
        sequence=sequence,
        scope_value=scope(datacenters=["P19"], switches=["p19-sw-01", "p19-sw-02"]),
        url="https://travaux.example/?do=details&id=4321",
        source="works",
    )
    Warehouse(home).commit({"changes": changes_table([row], source="test")}, source="test")


def test_silences_from_a_notice_are_created_updated_and_expired(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    home = tmp_path / "wh"
    _notice(home, status="scheduled", sequence=1)
    cli = build("silences")

    def run(*extra: str) -> list[dict[str, Any]]:
        args = ["silences", "--home", str(home), "--alertmanager", stack["am"], "--json", *extra]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        rows: list[dict[str, Any]] = json.loads(result.output)
        return rows

    def ours() -> list[dict[str, Any]]:
        found = httpx.get(f"{stack['am']}/api/v2/silences", timeout=10).json()
        return [s for s in found if s["createdBy"] == "whatchanged" and s["status"]["state"] != "expired"]

    assert [r["action"] for r in run()] == ["would create", "would create"]
    assert ours() == []  # without --apply nothing is sent
    assert [r["action"] for r in run("--apply")] == ["create", "create"]
    silences = {tuple((m["name"], m["value"], m["isRegex"]) for m in s["matchers"]) for s in ours()}
    assert silences == {(("datacenter", "P19", True),), (("switch", "p19\\-sw\\-01|p19\\-sw\\-02", True),)}
    assert all("ovh:FS#4321" in s["comment"] and "id=4321" in s["comment"] for s in ours())
    assert run("--apply") == []  # up to date

    _notice(home, status="scheduled", sequence=2, hours=3.0)  # rescheduled: ends an hour later
    assert [r["action"] for r in run("--apply")] == ["update", "update"]
    assert len(ours()) == 2

    _notice(home, status="cancelled", sequence=3)
    assert [r["action"] for r in run("--apply")] == ["expire", "expire"]
    assert ours() == []
