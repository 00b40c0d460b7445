"""What the CLI prints for people: data shown verbatim, ids and times never cut, short errors.

Service names, titles and error texts come from users and providers; rich would read
``[bold]`` as a style, ``[/]`` as a closing tag and ``:x:`` as an emoji.  Every output here
runs the real console script in a new process, piped (so rich draws 80 columns) and with
``COLUMNS=80``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import run_cli
from whatchanged.ingest.registry import readers

WEB = "web[bold]-1:x:"
DB = "db[/]-2"
REL = "REL-[bold]7"
NARROW = {"COLUMNS": "80", "TERM": "dumb"}
T0 = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


def _world(folder: Path) -> None:
    folder.mkdir()
    (folder / "services.csv").write_text(
        "service,kind,datacenter,rack,switch,host,app,critical,tags,owner\n"
        f"{WEB},site,DC1,R1,sw-1,h-1,shop,true,,ops\n"
        f"{DB},db,DC1,R1,sw-1,h-2,shop,true,,ops\n"
    )
    (folder / "deploys.csv").write_text(
        "id,timestamp,service,version,author,description\n"
        f"{REL},2024-03-05T10:00:00Z,{WEB},1.2,al,[red]Deploy[/] :x: shop\n"
    )
    lines = ["timestamp,service,metric,value"]
    for m in range(120):
        at = (T0 + timedelta(minutes=m)).isoformat()
        for service in (WEB, DB):
            lines.append(f"{at},{service},latency_ms,{5000.0 if 63 <= m < 80 else 100.0 + m % 3}")
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    down = int((T0 + timedelta(minutes=63)).timestamp())
    (folder / "nagios.log").write_text(
        f"[{down}] SERVICE ALERT: h-1;{WEB};CRITICAL;HARD;3;CRITICAL - down\n"
        f"[{down + 900}] SERVICE ALERT: h-1;{WEB};OK;HARD;1;OK\n"
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("markup")
    _world(root / "in")
    home = root / "wh"
    done = run_cli("ingest", str(root / "in"), home=home, env=NARROW)
    assert done.returncode == 0, done.stderr
    return home


def test_service_names_and_ids_are_printed_verbatim(shop: Path) -> None:
    out = run_cli("explain", "--at", "2024-03-05T10:05Z", home=shop, env=NARROW)
    assert out.returncode == 0, out.stderr
    assert REL in out.stdout
    assert f"#1 {REL}" in out.stdout
    assert "web[bold]-1" in out.stdout
    assert ":x:" in out.stdout
    assert "❌" not in out.stdout
    changes = run_cli("changes", "--at", "2024-03-05T10:05Z", home=shop, env=NARROW)
    assert changes.returncode == 0, changes.stderr
    assert REL in changes.stdout
    assert "❌" not in changes.stdout


def test_a_malformed_line_is_quoted_verbatim(tmp_path: Path) -> None:
    bad = tmp_path / "metrics.csv"
    bad.write_text("timestamp,service,metric,value\n2024-03-05T09:00:00Z,a,cpu,[bold]oops[/]:x:\n")
    out = run_cli("ingest", str(bad), home=tmp_path / "wh", env=NARROW)
    assert out.returncode != 0
    assert "[bold]oops[/]:x:" in out.stderr
    assert "❌" not in out.stderr
    assert "Traceback" not in out.stderr


def test_incident_ids_and_onsets_are_never_cut(shop: Path) -> None:
    args = ("incidents", "--from", "2024-03-05T00:00Z", "--to", "2024-03-06T00:00Z")
    found = json.loads(run_cli(*args, "--json", home=shop).stdout)["items"]
    assert found, "the world holds an incident"
    table = run_cli(*args, home=shop, env=NARROW)
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    for incident in found:  # the id and the onset (UTC: no --tz) whole
        assert incident["id"] in table.stdout
        assert incident["onset"][:16].replace("T", " ") in table.stdout
    assert "…" not in table.stdout


def test_unknown_format_says_what_was_found_in_two_lines_at_most(tmp_path: Path) -> None:
    odd = tmp_path / "passwd"
    odd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\n")
    out = run_cli("ingest", str(odd), home=tmp_path / "wh", env=NARROW)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2
    assert len(out.stderr) < 400
    assert "root:x:0:0" in out.stderr
    assert "❌" not in out.stderr
    assert "whatchanged formats" in out.stderr


def test_formats_lists_every_reader_with_an_example() -> None:
    listed = json.loads(run_cli("formats", "--json").stdout)
    assert [f["name"] for f in listed] == [r.name for r in readers()]
    assert all(f["example"].strip() for f in listed)
    text = run_cli("formats", env=NARROW).stdout
    for f in listed:
        assert f["name"] in text
