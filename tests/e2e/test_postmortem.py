"""The reference night written up for people, through the real command line: ``whatchanged
demo`` builds the warehouse from the generated inputs, then ``fate`` audits the inventory.

Expected values come from the generator's files (``services.csv``, ``.truth.json``), never
from the code under test."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli

TZ = "Europe/Paris"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("night")
    home, inputs = root / "wh", root / "in"
    done = run_cli("demo", "--home", str(home), "--inputs", str(inputs), timeout=600)
    assert done.returncode == 0, done.stderr
    truth = json.loads((inputs / ".truth.json").read_text())
    return home, inputs, truth


def inventory(inputs: Path) -> list[dict[str, str]]:
    with open(inputs / "services.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def cli_json(home: Path, *args: str) -> Any:
    done = run_cli(*args, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_fate_finds_the_back_office_pair_in_one_datacenter(night: tuple[Path, Path, dict[str, Any]]) -> None:
    home, inputs, _ = night
    rows = inventory(inputs)
    by = {r["service"]: r for r in rows}
    group = by["bo-primary"]["redundancy_group"]
    d = cli_json(home, "fate", "--group", group)
    [g] = d["groups"]
    assert {m["service"] for m in g["members"]} == {
        r["service"] for r in rows if r["redundancy_group"] == group
    }
    dc = by["bo-primary"]["datacenter"]
    in_dc = sum(1 for r in rows if r["datacenter"] == dc)
    assert [(s["level"], s["name"], s["services"]) for s in g["shared"]] == [("datacenter", dc, in_dc)]
    # the largest domain is that datacenter; a maintenance on its switches reaches all it holds
    switches = {r["switch"] for r in rows if r["datacenter"] == dc}
    behind = sum(1 for r in rows if r["switch"] in switches)
    largest = d["largest"]
    assert (largest["level"], largest["name"]) == ("datacenter", dc)
    assert largest["switches"] == len(switches) and largest["behind_switches"] == behind
    assert (d["services"], largest["services"], behind) == (len(rows), in_dc, in_dc)
    assert (len(rows), in_dc) == (1002, 945)  # the figures of the team's account


def test_fate_table_names_every_group(night: tuple[Path, Path, dict[str, Any]]) -> None:
    home, inputs, _ = night
    done = run_cli("fate", home=home, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    groups = {r["redundancy_group"] for r in inventory(inputs)} - {""}
    assert groups and all(g in done.stdout for g in groups)
    assert "none: spread" in done.stdout  # dns and inbound mail sit in two datacenters
    unknown = run_cli("fate", "--group", "no-such-group", home=home)
    assert unknown.returncode == 2 and "no-such-group" in unknown.stderr and "Traceback" not in unknown.stderr
