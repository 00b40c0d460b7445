"""The HTTP API and the command line give the same answer: one engine call and one JSON shape
(``present.shapes``) behind both, for every resource that has both a command and a route."""

from __future__ import annotations

import json
import subprocess
import sys
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


@pytest.mark.parametrize("at", ["2010-11-17 18:43", "2010-11-17 19:23"])
def test_one_incident_json_is_the_same_over_http_and_cli(
    client: httpx.Client, api_home: Path, at: str
) -> None:
    incident_id = api_json(client, "/explain", {"at": at, "tz": "Europe/Paris"})["incident"]["id"]
    over_http = api_json(client, f"/incidents/{incident_id}", {"tz": "Europe/Paris"})
    from_cli = cli_json(api_home, "explain", "--incident", incident_id, "--tz", "Europe/Paris")
    assert from_cli["incident"]["id"] == incident_id
    assert from_cli["causes"], "the reference night's incidents have ranked causes"
    assert over_http == from_cli


def test_explain_needs_exactly_one_of_at_and_incident(api_home: Path) -> None:
    for args, found in (((), "found neither"), (("--at", "19:23", "--incident", "inc-x"), "found both")):
        done = run_cli("explain", *args, home=api_home)
        assert done.returncode == 2
        assert "exactly one of --at T or --incident ID" in done.stderr
        assert found in done.stderr
        assert "Traceback" not in done.stderr
    unknown = run_cli("explain", "--incident", "inc-20101117T1823Z-000000", home=api_home)
    assert unknown.returncode != 0
    assert "inc-20101117T1823Z-000000" in unknown.stderr
    assert "Traceback" not in unknown.stderr


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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["explain", "--at", "19:23"], {"at": "19:23", "home": None, "tz": None, "as_json": False}),
        (
            ["explain", "--json", "--tz=Europe/Paris", "--at", "19:23", "--home", "/w", "--at", "19:24"],
            {"at": "19:24", "home": Path("/w"), "tz": "Europe/Paris", "as_json": True},
        ),
        (["explain", "--json"], None),  # --at missing: typer says so
        (["explain", "--at"], None),
        (["explain", "--at", ""], None),
        (["explain", "--at", "19:23", "--help"], None),
        (["explain", "--at", "19:23", "--"], None),
        (["explain", "--a", "19:23"], None),
        (["changes", "--at", "19:23"], None),
        ([], None),
    ],
)
def test_a_plain_explain_is_parsed_without_typer(args: list[str], expected: dict[str, Any] | None) -> None:
    from whatchanged.api.cli import explain_args

    assert explain_args(args) == expected


def test_explain_answers_the_same_with_and_without_typer_parsing(api_home: Path) -> None:
    """``explain --at T --tz Z --json`` is called directly (no pydantic, typer or rich imported); with a
    trailing ``--`` typer parses the same command line: the same answer."""
    args = ["explain", "--at", "2010-11-17 19:23", "--tz", "Europe/Paris", "--json"]
    direct = run_cli(*args, home=api_home)
    through_typer = run_cli(*args, "--", home=api_home)
    assert direct.returncode == through_typer.returncode == 0, direct.stderr + through_typer.stderr
    assert json.loads(direct.stdout) == json.loads(through_typer.stdout)
    code = (
        "import sys; from whatchanged.api.cli import main; "
        f"main({[*args, '--home', str(api_home)]!r}); "
        "print([m for m in ('pydantic', 'typer', 'rich') if m in sys.modules], file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "[]"  # the JSON answer needs none of them
    bad = run_cli("explain", "--at", "25:99", "--json", home=api_home)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error:")
