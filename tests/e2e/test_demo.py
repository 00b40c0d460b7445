"""The reference night end to end through the real command line: ``whatchanged demo``
generates the inputs in their real formats, ingests them and explains 18:43 and 19:23;
then ``explain --json`` and ``availability --json`` must give the night's answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.golden import check
from tests.helpers import run_cli

TZ = "Europe/Paris"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    root = tmp_path_factory.mktemp("night")
    home, inputs = root / "wh", root / "in"
    done = run_cli("demo", "--home", str(home), "--inputs", str(inputs), timeout=600)
    assert done.returncode == 0, done.stderr
    truth = json.loads((inputs / ".truth.json").read_text())
    return home, truth, done.stdout


def explain(home: Path, at: str) -> dict[str, Any]:
    done = run_cli("explain", "--at", at, "--tz", TZ, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_demo_prints_both_answers(night: tuple[Path, dict[str, Any], str]) -> None:
    _, _, out = night
    assert "explain --at 18:43" in out
    assert "explain --at 19:23" in out
    assert "ovh:FS#4321" in out
    assert "bo-primary" in out
    assert "99.98%" in out


def test_1923_is_the_p19_switch_maintenance(night: tuple[Path, dict[str, Any], str]) -> None:
    home, truth, _ = night
    d = explain(home, "19:23")
    inc = d["incident"]
    assert inc is not None
    assert inc["onset"].startswith("2010-11-17T19:2")
    assert inc["outage_count"] == 14
    assert abs(inc["downtime_s"] - 54 * 60) <= 60
    assert 25 <= inc["critical_services"] <= 35
    top = d["causes"][0]
    assert (top["category"], top["change_id"]) == ("external_maintenance", truth["general"]["change_id"])
    assert any("covers the onset at 19:2" in e for e in top["evidence_for"])
    ruled = {r["category"]: r["reason"] for r in d["ruled_out"]}
    assert "application_release" in ruled
    assert "releases that day" in ruled["application_release"]
    reactions = {r["change_id"] for r in d["reactions"] if r["kind"] == "restart"}
    assert reactions == set(truth["general"]["reactions"])
    # the day's releases and the other notices, where they are candidates at all, are implausible
    others = [c for c in d["causes"] if c["change_id"] in truth["general"]["must_rank_below"]]
    assert all(c["score"] < 0.25 < top["score"] for c in others), others


def test_1843_is_the_failed_backoffice_server(night: tuple[Path, dict[str, Any], str]) -> None:
    home, truth, _ = night
    d = explain(home, "18:43")
    inc = d["incident"]
    assert inc is not None
    assert inc["onset"].startswith("2010-11-17T18:4")
    assert set(truth["backoffice"]["critical_services"]) <= set(inc["critical"])
    top = d["causes"][0]
    assert top["category"] == "hosting"
    assert top["component"] in (truth["backoffice"]["component"], truth["backoffice"]["component_host"])
    release = next(c for c in d["causes"] if c["change_id"] == truth["unrelated_release_id"])
    assert release["rank"] > 1
    assert any("none of which is affected" in e for e in release["evidence_against"])


def test_year_to_date_availability_is_99_98(night: tuple[Path, dict[str, Any], str]) -> None:
    home, truth, _ = night
    done = run_cli(
        "availability",
        "--service",
        truth["probe_service"],
        "--from",
        "2010-01-01 00:00",
        "--to",
        "2010-11-18 00:00",
        "--tz",
        TZ,
        home=home,
    )
    assert done.returncode == 0, done.stderr
    assert "99.98%" in done.stdout


@pytest.mark.parametrize("at", ["18:43", "19:23"])
def test_explain_answers_are_the_golden_ones(night: tuple[Path, dict[str, Any], str], at: str) -> None:
    """The whole ``explain --json`` of both questions, byte for byte (tests/golden.py)."""
    home, _, _ = night
    check(f"reference-night-explain-{at.replace(':', '')}", explain(home, at))


def test_batch_of_the_week_is_the_golden_one(night: tuple[Path, dict[str, Any], str], tmp_path: Path) -> None:
    """The batch outputs of the demo week: every table's rows and the summary, as golden JSON."""
    import pyarrow.parquet as pq

    home, _, _ = night
    out = tmp_path / "batch"
    done = run_cli(
        "batch",
        "--from",
        "2010-11-11",
        "--to",
        "2010-11-18",
        "--tz",
        TZ,
        "--out",
        str(out),
        "--json",
        home=home,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    summary.pop("out", None)
    summary.pop("seconds", None)
    tables = {p.name: pq.read_table(p).to_pylist() for p in sorted(out.glob("*.parquet"))}
    check("reference-night-batch", {"summary": summary, "tables": tables})
