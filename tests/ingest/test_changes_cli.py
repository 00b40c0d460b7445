"""``whatchanged changes`` on the sample data, through the real console script."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers import ROOT, run_cli

SAMPLES = ROOT / "data" / "samples"
MY_SAMPLES = [SAMPLES / "services.csv", SAMPLES / "deploys.csv", SAMPLES / "works.works.txt"]
CHANGE_KEYS = {
    "change_id",
    "kind",
    "start",
    "end",
    "title",
    "description",
    "status",
    "impact",
    "source",
    "url",
    "author",
    "version",
    "scope",
    "resolved_services",
    "start_local",
    "end_local",
}
SCOPE_KEYS = {"services", "apps", "datacenters", "racks", "switches", "hosts"}


def _ingest(home: Path) -> None:
    done = run_cli("ingest", "--tz", "Europe/Paris", *map(str, MY_SAMPLES), home=home)
    assert done.returncode == 0, done.stderr


def test_changes_at_1923_json_shape(tmp_path: Path) -> None:
    home = tmp_path / "wh"
    _ingest(home)
    done = run_cli("changes", "--at", "19:23", "--tz", "Europe/Paris", "--json", home=home)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"at", "tz", "from", "to", "kind", "total", "changes"}  # GET /changes's shape
    assert (data["at"], data["tz"], data["kind"]) == ("2010-11-17T18:23:00Z", "Europe/Paris", None)
    assert (data["from"], data["to"]) == ("2010-11-17T16:23:00Z", "2010-11-17T18:53:00Z")
    assert data["total"] == len(data["changes"])
    for change in data["changes"]:
        assert set(change) == CHANGE_KEYS
        assert set(change["scope"]) == SCOPE_KEYS
    ids = [c["change_id"] for c in data["changes"]]
    assert ids == ["rel-20101117-09", "rel-20101117-10", "ovh:FS#4321"]  # oldest first
    notice = data["changes"][-1]
    assert (notice["start_local"], notice["end_local"]) == (
        "2010-11-17T19:00:00+01:00",
        "2010-11-17T21:00:00+01:00",
    )
    assert (notice["start"], notice["kind"], notice["status"]) == (
        "2010-11-17T18:00:00Z",
        "maintenance",
        "scheduled",
    )
    with open(SAMPLES / "services.csv", newline="") as fh:
        p19 = sorted(r["service"] for r in csv.DictReader(fh) if r["datacenter"] == "P19")
    assert notice["resolved_services"] == p19


def test_changes_table_and_kind_filter(tmp_path: Path) -> None:
    home = tmp_path / "wh"
    _ingest(home)
    done = run_cli(
        "changes",
        "--at",
        "19:23",
        "--tz",
        "Europe/Paris",
        "--kind",
        "maintenance",
        home=home,
        env={"COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert "ovh:FS#4321" in done.stdout
    assert "rel-20101117-10" not in done.stdout
    assert "2010-11-17 19:00 → 21:00" in done.stdout
    bad = run_cli("changes", "--at", "19:23", "--kind", "reboot", home=home)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "--kind" in bad.stderr
    assert "Traceback" not in bad.stderr
