"""The HTTP API and the command line give the same answer: one engine call behind both."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.helpers import run_cli


def test_explain_json_is_the_same_over_http_and_cli(client: httpx.Client, api_home: Path) -> None:
    over_http = client.get("/explain", params={"at": "2010-11-17 19:23", "tz": "Europe/Paris"})
    assert over_http.status_code == 200, over_http.text
    done = run_cli("explain", "--at", "2010-11-17 19:23", "--tz", "Europe/Paris", "--json", home=api_home)
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(done.stdout)
    assert from_cli["incident"] is not None
    assert over_http.json() == from_cli
