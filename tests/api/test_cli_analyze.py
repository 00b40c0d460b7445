"""``analyze`` computes the day states; ``ingest`` starts it in the background after new
metrics; the answers do not depend on whether it ran."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli
from whatchanged.data.scenarios import SCENARIOS, truths_of


def _states(home: Path) -> list[Path]:
    return sorted((home / "_cache" / "daystate").glob("*.npz"))


def test_analyze_then_nothing_left(tmp_path: Path) -> None:
    truth = truths_of(SCENARIOS["host_failure_no_change"](tmp_path / "in"))[0]
    home = tmp_path / "wh"
    assert run_cli("ingest", str(tmp_path / "in"), "--tz", truth.tz, home=home).returncode == 0
    assert _states(home) == []  # WHATCHANGED_NO_ANALYZE=1 in the tests
    first = run_cli("analyze", "--json", home=home)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["days"] >= 1
    assert data["computed"] == data["days"]
    assert len(_states(home)) == data["days"]
    again = json.loads(run_cli("analyze", "--json", home=home).stdout)
    assert again["computed"] == 0
    assert again["days"] == data["days"]


def test_ingest_starts_the_analysis_in_the_background(tmp_path: Path) -> None:
    truth = truths_of(SCENARIOS["host_failure_no_change"](tmp_path / "in"))[0]
    home = tmp_path / "wh"
    ran = run_cli(
        "ingest", str(tmp_path / "in"), "--tz", truth.tz, home=home, env={"WHATCHANGED_NO_ANALYZE": ""}
    )
    assert ran.returncode == 0, ran.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = json.loads(run_cli("analyze", "--json", home=home).stdout) if _states(home) else None
        if done is not None and done["computed"] == 0:
            break
        time.sleep(0.5)
    assert _states(home), "the background analysis wrote no state"
    explained = run_cli("explain", "--at", truth.at_local, "--tz", truth.tz, "--json", home=home)
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout)["causes"][0]["category"] == truth.category


def test_every_command_loads_alone() -> None:
    """A run imports only its command's module: the map must name every command's module."""
    import typer.main

    from whatchanged.api.cli import COMMANDS, build

    names = set(typer.main.get_command(build()).commands)  # type: ignore[attr-defined]
    assert names == set(COMMANDS)
    for name in COMMANDS:
        assert name in typer.main.get_command(build(name)).commands  # type: ignore[attr-defined]


def test_background_work_is_started_nice(monkeypatch: pytest.MonkeyPatch) -> None:
    """``analyze`` and ``compact`` in the background yield the CPU to a responder's question."""
    import os
    import subprocess
    import sys

    from whatchanged.api import cli_common

    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(_argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        child = real([sys.executable, "-c", "import time; time.sleep(30)"], **kwargs)  # type: ignore[call-overload]
        started.append(child)
        return child

    monkeypatch.setattr(cli_common.subprocess, "Popen", popen)
    assert cli_common.spawn_detached("compact", "--quiet")
    (child,) = started
    try:
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == cli_common.BACKGROUND_NICE
    finally:
        child.kill()
        child.wait()


def test_an_analysis_started_while_one_runs_leaves_it_a_note(tmp_path: Path) -> None:
    """The collector starts one after every pass: a background one finding another running asks
    it to run again (the running one's snapshot may predate the commit) and returns at once."""
    from whatchanged.api.cli_analyze import analyze
    from whatchanged.engine.storage import dir_lock

    truth = truths_of(SCENARIOS["host_failure_no_change"](tmp_path / "in"))[0]
    home = tmp_path / "wh"
    assert run_cli("ingest", str(tmp_path / "in"), "--tz", truth.tz, home=home).returncode == 0
    folder = home / "_cache" / "analyze"
    folder.mkdir(parents=True)
    with dir_lock(folder):  # one running
        busy = analyze(home, background=True)
        assert busy["busy"] is True
        assert busy["computed"] == 0
        assert (folder / "again").exists()
    assert _states(home) == []
    ran = analyze(home, background=True)  # the note is consumed by the next that runs
    assert "busy" not in ran
    assert ran["computed"] == ran["days"] >= 1
    assert not (folder / "again").exists()
    assert len(_states(home)) == ran["days"]
