"""Compaction (engine/compact.py): a day's small commits merged through the manifests, every
row seen once before, during and after, even with the compactor killed; the day-state cache
key unchanged; replaced files removed after the grace period; ``whatchanged compact`` and
``status``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from tests.helpers import run_cli
from whatchanged.engine import compact as compact_mod
from whatchanged.engine.compact import collect_garbage, compact, crowded, day_digest, partitions
from whatchanged.engine.daygrid import day_files
from whatchanged.engine.daystate_cache import chain_keys
from whatchanged.engine.detect import DEFAULT
from whatchanged.engine.doctor import diagnose
from whatchanged.engine.warehouse import Warehouse

T0 = datetime(2024, 3, 1, tzinfo=UTC)
SERVICES = 20


def _minute(k: int, *, services: int = SERVICES) -> pa.Table:
    """Minute ``k`` of the day: one sample per service and metric, value ``k`` (the commit)."""
    t = T0 + timedelta(minutes=k)
    names = [f"svc-{s:03d}" for s in range(services)]
    return pa.table(
        {
            "ts": pa.array([t] * services * 2, pa.timestamp("us", tz="UTC")),
            "service": names * 2,
            "metric": ["cpu"] * services + ["mem"] * services,
            "value": [float(k)] * services * 2,
        }
    )


def _state(k: int) -> pa.Table:
    return pa.table(
        {
            "ts": pa.array([T0 + timedelta(minutes=k)], pa.timestamp("us", tz="UTC")),
            "service": ["svc-000"],
            "check": ["HTTP"],
            "state": ["CRITICAL" if k % 2 else "OK"],
        }
    )


def _summary(wh: Warehouse) -> tuple[int, int, float]:
    con = wh.snapshot()
    try:
        row = con.sql(
            "SELECT count(*), count(DISTINCT (service, metric, ts)), coalesce(sum(value), 0) FROM metrics"
        ).fetchall()[0]
    finally:
        con.close()
    return int(row[0]), int(row[1]), float(row[2])


def test_compaction_merges_a_days_commits_and_keeps_every_row_once(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    for k in range(10):
        wh.commit({"metrics": _minute(k), "states": _state(k)})
    before = _summary(wh)
    keys_before = chain_keys(day_files(wh.files("metrics")), DEFAULT, 60.0)
    assert crowded(wh) == [("metrics", "date=2024-03-01"), ("states", "date=2024-03-01")]
    assert wh.status()["most_files_per_day"] == {"metrics": 10, "states": 10}

    report = compact(wh, grace_s=3600)
    assert [(p.table, p.files_in, p.files_out) for p in report.partitions] == [
        ("metrics", 10, 1),
        ("states", 10, 1),
    ]
    assert (
        _summary(wh) == before == (10 * SERVICES * 2, 10 * SERVICES * 2, float(SERVICES * 2 * sum(range(10))))
    )
    con = wh.snapshot()
    assert con.sql("SELECT count(*) FROM states").fetchall()[0][0] == 10
    con.close()
    assert {k: len(v) for k, v in partitions(wh).items()} == {
        ("metrics", "date=2024-03-01"): 1,
        ("states", "date=2024-03-01"): 1,
    }
    # rows moved between files, the day's identity stayed: the detection states are not stale
    assert chain_keys(day_files(wh.files("metrics")), DEFAULT, 60.0) == keys_before
    # within the grace period the replaced files stay on disk for readers that listed them
    assert len(list((wh.home / "metrics" / "date=2024-03-01").glob("*.parquet"))) == 11
    assert wh.sweep().removed == 0

    # a commit after the compaction adds a file beside the merged one; the digest follows
    wh.commit({"metrics": _minute(10)})
    assert _summary(wh)[0] == 11 * SERVICES * 2

    removed_files, removed_manifests = collect_garbage(wh, grace_s=0)
    assert removed_files == 20  # ten metrics and ten states files
    assert removed_manifests == 10  # the ten minute commits named nothing else
    assert _summary(wh)[0] == 11 * SERVICES * 2
    assert len(list((wh.home / "metrics" / "date=2024-03-01").glob("*.parquet"))) == 2
    assert all(f.outcome != "problem" for f in diagnose(wh, repair=False))

    # compacting the compacted: the first compaction's manifest goes too, once nothing names it
    for k in range(11, 16):
        wh.commit({"metrics": _minute(k)})
    compact(wh, grace_s=0)
    assert _summary(wh) == (16 * SERVICES * 2, 16 * SERVICES * 2, float(SERVICES * 2 * sum(range(16))))
    names = [json.loads(p.read_text()) for p in (wh.home / "_commits").glob("*.json")]
    assert sum(1 for m in names if m.get("source") == compact_mod.SOURCE) == 2  # metrics now, states before
    files = sorted(p.name for p in (wh.home / "metrics" / "date=2024-03-01").glob("*.parquet"))
    assert len(files) == 1
    assert day_digest(files) == day_digest([Path(f).name for f in wh.files("metrics")])


def test_a_compaction_that_lost_the_race_publishes_nothing(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    for k in range(6):
        wh.commit({"metrics": _minute(k)})
    files = partitions(wh)[("metrics", "date=2024-03-01")]
    first = compact_mod._compact_one(wh, "metrics", "date=2024-03-01", files)
    late = compact_mod._compact_one(wh, "metrics", "date=2024-03-01", files)
    assert first.txid
    assert late.txid is None
    assert _summary(wh)[:2] == (6 * SERVICES * 2, 6 * SERVICES * 2)
    assert wh.sweep().removed == 0  # the loser's staged file went with its staging folder


def test_a_commit_does_not_start_over_for_a_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = Warehouse(tmp_path / "wh")
    for k in range(6):
        wh.commit({"metrics": _minute(k)})
    stages = 0
    real = Warehouse._stage

    def staging_then_compacted(self: Warehouse, *args: object, **kwargs: object) -> object:
        nonlocal stages
        stages += 1
        out = real(self, *args, **kwargs)  # type: ignore[arg-type]
        if stages == 1:
            compact(wh, grace_s=3600)  # lands between this commit's snapshot and its publication
        return out

    monkeypatch.setattr(Warehouse, "_stage", staging_then_compacted)
    wh.commit({"metrics": _minute(6)})
    assert stages == 1
    assert _summary(wh)[:2] == (7 * SERVICES * 2, 7 * SERVICES * 2)


_COMMITTER = """
import sys, time
from tests.engine.test_compact import _minute
from whatchanged.engine.warehouse import Warehouse
wh = Warehouse(sys.argv[1])
for k in range(int(sys.argv[2])):
    wh.commit({"metrics": _minute(k)})
"""

_COMPACTOR = """
import sys
from whatchanged.engine.compact import compact
from whatchanged.engine.warehouse import Warehouse
wh = Warehouse(sys.argv[1])
while True:
    compact(wh, max_files=2, grace_s=float(sys.argv[2]))
"""

_READER = """
import sys, time
from pathlib import Path
from whatchanged.engine.warehouse import Warehouse
wh = Warehouse(sys.argv[1])
done, reads = Path(sys.argv[2]), 0
while True:
    last = done.exists()
    con = wh.snapshot()
    n, keys, lo, hi, commits = con.sql(
        "SELECT count(*), count(DISTINCT (service, metric, ts)), min(value), max(value), count(DISTINCT value) "
        "FROM metrics"
    ).fetchall()[0]
    con.close()
    reads += 1
    # every row once, and the rows of commits 0 … k-1 exactly
    if n != keys or (n and (lo != 0 or commits != hi + 1 or n != commits * int(sys.argv[3]))):
        print(f"inconsistent read: {n} rows, {keys} keys, values {lo}…{hi}, {commits} commits")
        sys.exit(1)
    if last:
        print(reads)
        break
"""


def _spawn(code: str, *args: object, out: int = subprocess.PIPE) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=out,
        stderr=out,
        text=True,
        env=env,
    )


def test_commits_compactions_and_reads_in_three_processes_with_the_compactor_killed(tmp_path: Path) -> None:
    """A committer (a minute per commit), a compactor killed by SIGKILL and restarted, and a
    reader checking every snapshot: no row is lost or doubled, at any time or at the end."""
    home = tmp_path / "wh"
    Warehouse(home).init()
    commits, grace = 60, 3.0
    done = tmp_path / "done"
    committer = _spawn(_COMMITTER, home, commits)
    reader = _spawn(_READER, home, done, SERVICES * 2)
    kills = 0
    try:
        while committer.poll() is None:
            compactor = _spawn(_COMPACTOR, home, grace, out=subprocess.DEVNULL)
            time.sleep(0.4 + 0.3 * (kills % 3))
            compactor.send_signal(signal.SIGKILL)
            compactor.wait()
            kills += 1
    finally:
        done.touch()
        _, committer_err = committer.communicate(timeout=60)
        out, err = reader.communicate(timeout=60)
    assert committer.returncode == 0, committer_err
    assert reader.returncode == 0, out + err
    assert int(out.strip()) > 3  # the reader did read meanwhile
    assert kills >= 2
    wh = Warehouse(home)
    expected = (commits * SERVICES * 2, commits * SERVICES * 2, float(SERVICES * 2 * sum(range(commits))))
    assert _summary(wh) == expected
    # the killed compactors' leftovers are swept; a last run brings the day down
    wh.sweep(grace_s=0)
    compact(wh, grace_s=0)
    assert _summary(wh) == expected
    assert all(len(v) <= 4 for v in partitions(wh).values())
    on_disk = list((home / "metrics").rglob("*.parquet"))
    assert len(on_disk) == len(wh.files("metrics")) <= 4
    assert all(f.outcome != "problem" for f in diagnose(wh, repair=False))


def test_compact_command_and_status(tmp_path: Path) -> None:
    home = tmp_path / "wh"
    wh = Warehouse(home)
    for k in range(6):
        wh.commit({"metrics": _minute(k)})
    status = json.loads(run_cli("status", "--home", str(home), "--json").stdout)
    assert status["files"]["metrics"] == 6
    assert status["most_files_per_day"]["metrics"] == 6
    out = json.loads(run_cli("compact", "--home", str(home), "--json").stdout)
    assert out["compacted"] == 1
    assert out["partitions"][0]["files_out"] == 1
    assert "files: metrics 1" in run_cli("status", "--home", str(home)).stdout
    again = json.loads(run_cli("compact", "--home", str(home), "--json").stdout)
    assert again["compacted"] == 0
