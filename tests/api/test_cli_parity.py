"""The HTTP API and the command line give the same answer: one engine call and one JSON shape
(``present.shapes``) behind both, for every resource that has both a command and a route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import run_cli

FROM, TO = "2010-11-16T00:00:00+01:00", "2010-11-18T00:00:00+01:00"


def cli_json(home: Path, *args: str) -> Any:
    done = run_cli(*args, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def api_json(client: httpx.Client, path: str, params: dict[str, Any]) -> Any:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_explain_json_is_the_same_over_http_and_cli(client: httpx.Client, api_home: Path) -> None:
    over_http = api_json(client, "/explain", {"at": "2010-11-17 19:23", "tz": "Europe/Paris"})
    from_cli = cli_json(api_home, "explain", "--at", "2010-11-17 19:23", "--tz", "Europe/Paris")
    assert from_cli["incident"] is not None
    assert over_http == from_cli


@pytest.mark.parametrize(("tz", "limit", "offset"), [("Europe/Paris", 50, 0), ("UTC", 2, 1)])
def test_incidents_json_is_the_same_over_http_and_cli(
    client: httpx.Client, api_home: Path, tz: str, limit: int, offset: int
) -> None:
    over_http = api_json(
        client, "/incidents", {"from": FROM, "to": TO, "tz": tz, "limit": limit, "offset": offset}
    )
    from_cli = cli_json(
        api_home,
        "incidents",
        *("--from", FROM, "--to", TO, "--tz", tz, "--limit", str(limit), "--offset", str(offset)),
    )
    assert from_cli["items"], "the reference night has incidents"
    assert over_http == from_cli


@pytest.mark.parametrize("kind", [None, "maintenance"])
def test_changes_json_is_the_same_over_http_and_cli(
    client: httpx.Client, api_home: Path, kind: str | None
) -> None:
    params = {"at": "2010-11-17 19:23", "tz": "Europe/Paris", "before": "6h", "after": "1h"}
    args = ["changes", "--at", "2010-11-17 19:23", "--tz", "Europe/Paris", "--before", "6h", "--after", "1h"]
    if kind:
        params["kind"] = kind
        args += ["--kind", kind]
    over_http = api_json(client, "/changes", params)
    from_cli = cli_json(api_home, *args)
    assert from_cli["changes"], "the reference night has changes around 19:23"
    assert over_http == from_cli


@pytest.mark.parametrize("exclude_planned", [False, True])
def test_availability_json_is_the_same_over_http_and_cli(
    client: httpx.Client, api_home: Path, exclude_planned: bool
) -> None:
    params = {"service": "www-main", "from": FROM, "to": TO, "tz": "UTC"}
    args = ["availability", "--service", "www-main", "--from", FROM, "--to", TO, "--tz", "UTC"]
    if exclude_planned:
        params["exclude_planned"] = "true"
        args.append("--exclude-planned")
    over_http = api_json(client, "/availability", params)
    from_cli = cli_json(api_home, *args)
    assert from_cli["outage_count"] >= 1
    assert over_http == from_cli


def test_status_json_is_the_same_over_http_and_cli(
    client: httpx.Client, api_home: Path, auth: dict[str, str]
) -> None:
    r = client.get("/status", headers=auth)  # with a token the server shows its folder, as the CLI does
    assert r.status_code == 200, r.text
    from_cli = cli_json(api_home, "status")
    assert from_cli["rows"]["metrics"] > 0
    assert r.json() == from_cli


def test_incidents_default_zone_is_the_configured_one_over_http_and_cli(api_home: Path) -> None:
    """Without ``tz`` the API answers in the server's configured zone, as ``whatchanged
    incidents`` does (and as ``/explain`` and ``/incidents/{id}`` always did), not in UTC."""
    from tests.api.conftest import TOKENS, start_server
    from whatchanged.engine.settings import Settings

    live = start_server(Settings(home=api_home, tz="Europe/Paris", api_tokens=",".join(TOKENS)))
    try:
        with httpx.Client(base_url=live.api, timeout=60) as c:
            over_http = api_json(c, "/incidents", {"from": FROM, "to": TO})
    finally:
        live.stop()
    from_cli = json.loads(
        run_cli(
            "incidents",
            "--from",
            FROM,
            "--to",
            TO,
            "--json",
            home=api_home,
            env={"WHATCHANGED_TZ": "Europe/Paris"},
        ).stdout
    )
    assert over_http["items"][0]["onset"].endswith("+01:00")
    assert over_http == from_cli


@pytest.mark.parametrize(("lang", "audience"), [("en", "team"), ("fr", "customers")])
def test_postmortem_json_is_the_same_over_http_and_cli(
    client: httpx.Client, api_home: Path, lang: str, audience: str
) -> None:
    incident = api_json(client, "/explain", {"at": "2010-11-17 19:23", "tz": "Europe/Paris"})["incident"]
    params = {"tz": "Europe/Paris", "lang": lang, "format": "json", "audience": audience}
    over_http = api_json(client, f"/incidents/{incident['id']}/postmortem", params)
    done = run_cli(
        "postmortem",
        *("--incident", incident["id"], "--tz", "Europe/Paris", "--lang", lang),
        *("--format", "json", "--audience", audience),
        home=api_home,
    )
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(done.stdout)
    assert from_cli["incident_id"] == incident["id"]
    assert from_cli["lang"] == lang
    assert over_http == from_cli


@pytest.mark.parametrize("group", [None, "backoffice"])
def test_fate_json_is_the_same_over_http_and_cli(
    client: httpx.Client, api_home: Path, group: str | None
) -> None:
    over_http = api_json(client, "/fate", {"group": group} if group else {})
    from_cli = cli_json(api_home, "fate", *(["--group", group] if group else []))
    assert from_cli["services"] > 0
    assert from_cli["largest"] is not None
    assert over_http == from_cli


def test_fate_of_an_unknown_group_is_404_naming_it(client: httpx.Client) -> None:
    r = client.get("/fate", params={"group": "no-such-group"})
    assert r.status_code == 404
    assert "no-such-group" in r.json()["detail"]
