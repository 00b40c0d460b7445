"""The warehouse under concurrency and storage faults: one copy of concurrent identical
ingests, leftovers of killed writers swept (never a live writer's), failed commits undone,
disk full / permission denied / read-only as one clear error, ``whatchanged doctor``."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from tests.helpers import run_cli
from whatchanged.engine import warehouse as warehouse_mod
from whatchanged.engine.doctor import diagnose
from whatchanged.engine.errors import StorageError
from whatchanged.engine.storage import dir_lock, stale_temp_files, storage_error
from whatchanged.engine.warehouse import Warehouse

EXE = Path(sys.executable).parent / "whatchanged"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _metrics(services: int, minutes: int, *, metric: str = "cpu", day: int = 0) -> pa.Table:
    ts, svc, vals = [], [], []
    for m in range(minutes):
        t = T0 + timedelta(days=day, minutes=m)
        for s in range(services):
            ts.append(t)
            svc.append(f"svc-{s:03d}")
            vals.append(float((s * 7 + m) % 50))
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "service": svc,
            "metric": [metric] * len(ts),
            "value": vals,
        }
    )


def _write_csv(path: Path, services: int, minutes: int) -> int:
    with open(path, "w") as fh:
        fh.write("timestamp,service,metric,value\n")
        for m in range(minutes):
            t = (T0 + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.writelines(f"{t},svc-{s:03d},cpu,{(s * 7 + m) % 50}\n" for s in range(services))
    return services * minutes


def _count(home: Path, table: str = "metrics") -> int:
    con = Warehouse(home).snapshot()
    try:
        return int(con.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    finally:
        con.close()


def _tree(home: Path) -> dict[str, int]:
    """Every file under ``home`` but the staging area, with its size."""
    return {
        str(p.relative_to(home)): p.stat().st_size
        for p in home.rglob("*")
        if p.is_file() and ".tmp" not in p.relative_to(home).parts
    }


# -- 4. the same content twice at the same time is stored once ----------------------------------
def test_two_ingest_processes_of_the_same_file_store_it_once(tmp_path: Path) -> None:
    src = tmp_path / "same.csv"
    total = _write_csv(src, services=60, minutes=600)
    for attempt in range(3):
        home = tmp_path / f"wh{attempt}"
        env = {**os.environ, "WHATCHANGED_HOME": str(home), "WHATCHANGED_NO_ANALYZE": "1"}
        procs = [
            subprocess.Popen(
                [str(EXE), "ingest", str(src), "--json", "--no-analyze"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
        added = sorted(json.loads(o[0])["rows_added"].get("metrics", 0) for o in outs)
        assert added == [0, total], (attempt, added)
        assert _count(home) == total, attempt
        assert len(Warehouse(home).manifests()) == 1


def test_a_commit_that_lost_the_race_drops_what_the_winner_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic version of the race: another writer publishes the same rows between
    this commit's duplicate check and its publication."""
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    data = _metrics(20, 30)
    other = Warehouse(wh.home)
    real_stage = Warehouse._stage
    raced = []

    def stage_then_race(self: Warehouse, *args: object, **kwargs: object) -> object:
        staged = real_stage(self, *args, **kwargs)  # type: ignore[arg-type]
        if not raced:
            raced.append(True)
            with monkeypatch.context() as m:
                m.setattr(Warehouse, "_stage", real_stage)
                assert other.commit({"metrics": data}).added_total == data.num_rows
        return staged

    monkeypatch.setattr(Warehouse, "_stage", stage_then_race)
    result = wh.commit({"metrics": data})
    assert result.txid is None
    assert result.added_total == 0
    assert _count(wh.home) == data.num_rows
    assert not list((wh.home / ".tmp").iterdir())


def test_commits_into_other_folders_do_not_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    calls = []
    real = Warehouse._stage

    def counting(self: Warehouse, *args: object, **kwargs: object) -> object:
        calls.append(1)
        staged = real(self, *args, **kwargs)  # type: ignore[arg-type]
        if len(calls) == 1:
            with monkeypatch.context() as m:
                m.setattr(Warehouse, "_stage", real)
                Warehouse(wh.home).commit({"metrics": _metrics(5, 10, day=3)})  # another day folder
        return staged

    monkeypatch.setattr(Warehouse, "_stage", counting)
    wh.commit({"metrics": _metrics(5, 10)})
    assert len(calls) == 1
    assert _count(wh.home) == 100


# -- 5. a clean warehouse -----------------------------------------------------------------------
def _killed_writer_leftovers(wh: Warehouse) -> tuple[Path, Path]:
    """What a writer killed after renaming a data file leaves: an unlocked staging folder and
    an orphan data file (backdated past the grace period)."""
    txid = f"{time.time_ns():020d}-999999-dead00"
    staging = wh.home / ".tmp" / txid
    staging.mkdir(parents=True)
    (staging / "metrics-1.parquet").write_bytes(b"half")
    orphan = wh.home / "metrics" / "date=2024-03-01" / f"{txid}-0.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(wh.files("metrics")[0], orphan)
    old = time.time() - 60
    for p in (staging / "metrics-1.parquet", staging, orphan):
        os.utime(p, (old, old))
    return staging, orphan


def test_sweep_removes_dead_writers_leftovers_and_status_counts_committed_bytes(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.commit({"metrics": _metrics(10, 60)})
    committed = wh.status()["bytes"]
    staging, orphan = _killed_writer_leftovers(wh)
    assert wh.status()["bytes"] == committed  # the orphan is not counted
    swept = wh.sweep()
    assert swept.staging == (str(staging.relative_to(wh.home)),)
    assert swept.orphans == (str(orphan.relative_to(wh.home)),)
    assert not staging.exists()
    assert not orphan.exists()
    assert _count(wh.home) == 600


def test_sweep_leaves_a_live_writers_staging_and_files_alone(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.commit({"metrics": _metrics(10, 60)})
    staging, orphan = _killed_writer_leftovers(wh)
    with dir_lock(staging):  # the writer is alive after all
        swept = wh.sweep()
        assert swept.removed == 0
        assert swept.live_writers == 1
        assert staging.exists()
        assert orphan.exists()
    assert wh.sweep().removed == 2


def test_every_write_sweeps_first(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.commit({"metrics": _metrics(10, 60)})
    staging, orphan = _killed_writer_leftovers(wh)
    wh.commit({"metrics": _metrics(10, 60, day=1)})
    assert not staging.exists()
    assert not orphan.exists()
    assert sorted(p.name for p in (wh.home / ".tmp").iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_failed_manifest_rename_puts_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.commit({"metrics": _metrics(10, 60)})
    before = _tree(wh.home)
    real_replace = os.replace

    def failing(src: object, dst: object) -> None:
        if str(dst).endswith(".json") and "_commits" in str(dst):
            raise OSError(code, os.strerror(code), str(dst))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(warehouse_mod.os, "replace", failing)
    with pytest.raises(StorageError) as err:
        wh.commit({"metrics": _metrics(10, 60, day=2)})
    monkeypatch.undo()
    assert str(err.value).startswith(str(wh.home / "_commits")), err.value
    assert _tree(wh.home) == before  # no new day folder, no data file, no manifest
    assert not (wh.home / "metrics" / "date=2024-03-03").exists()
    assert not list((wh.home / ".tmp").iterdir())
    assert _count(wh.home) == 600


def test_storage_error_names_path_and_remedy() -> None:
    found = storage_error(
        OSError(errno.ENOSPC, "No space left on device", "/x/wh/metrics/a.parquet"), "/x/wh"
    )
    assert found is not None
    assert str(found).startswith("/x/wh/metrics/a.parquet: no space left on the device")
    assert "free some space" in str(found)
    assert "/x" not in found.public
    # pyarrow's IO errors carry the errno in their text only
    arrow = OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert storage_error(arrow, "/x/wh") is not None
    assert storage_error(OSError(errno.ENOENT, "gone"), "/x/wh") is None


def test_stale_daystate_temp_files_are_matched(tmp_path: Path) -> None:
    folder = tmp_path / "_cache" / "daystate"
    folder.mkdir(parents=True)
    dead = folder / ".2010-11-17-abc.npz.999999.tmp"
    grid = folder / ".2010-11-17-abc.grid.npy.999998.tmp"
    live = folder / f".2010-11-17-abc.npz.{os.getpid()}.tmp"
    kept = folder / "2010-11-17-abc.npz"
    for p in (dead, grid, live, kept):
        p.write_bytes(b"x")
    assert sorted(stale_temp_files(tmp_path / "_cache")) == sorted([dead, grid])

    from whatchanged.engine.daystate_cache import _sweep

    _sweep(kept)
    assert kept.exists()
    assert live.exists()
    assert not dead.exists()
    assert not grid.exists()


def test_doctor_repairs_what_it_can_and_says_what_it_cannot(tmp_path: Path) -> None:
    home = tmp_path / "wh"
    wh = Warehouse(home)
    wh.commit({"metrics": _metrics(10, 60)})
    staging, orphan = _killed_writer_leftovers(wh)
    (home / "_empty" / "states.parquet").unlink()
    cache = home / "_cache" / "daystate"
    cache.mkdir(parents=True)
    (cache / ".2024-03-01-k.npz.999999.tmp").write_bytes(b"x")

    dry = run_cli("doctor", "--dry-run", "--json", home=home)
    assert dry.returncode == 1, dry.stderr
    assert orphan.exists()
    assert staging.exists()

    done = run_cli("doctor", "--json", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = {f["check"]: f["outcome"] for f in json.loads(done.stdout)["findings"]}
    assert outcomes["staging"] == outcomes["orphans"] == outcomes["empty"] == outcomes["cache"] == "repaired"
    assert outcomes["views"] == "ok"
    assert not orphan.exists()
    assert not staging.exists()
    assert (home / "_empty" / "states.parquet").exists()

    # what it cannot repair: a committed file gone, a manifest broken
    lost = Path(wh.files("metrics")[0])
    lost.rename(tmp_path / "elsewhere.parquet")
    found = {f.check: f for f in diagnose(wh)}
    assert found["files"].outcome == "problem"
    assert "restore" in found["files"].detail
    (home / "_commits" / "broken.json").write_text("{not json")
    again = run_cli("doctor", "--json", home=home)
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    manifests = next(f for f in json.loads(again.stdout)["findings"] if f["check"] == "manifests")
    assert manifests["outcome"] == "problem"
    assert "broken.json" in manifests["detail"]


# -- storage faults on a real small file system -------------------------------------------------
@pytest.fixture
def tiny_fs(tmp_path: Path) -> object:
    """A 3 MiB tmpfs (we run as root in CI); skipped where mounting is not permitted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a size-limited file system")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", f"wc-{uuid.uuid4().hex[:6]}", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()[:120]})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def test_disk_full_is_one_line_and_leaves_the_warehouse_as_it_was(tiny_fs: Path, tmp_path: Path) -> None:
    home = tiny_fs / "wh"
    first = tmp_path / "first.csv"
    _write_csv(first, services=20, minutes=60)
    ok = run_cli("ingest", str(first), "--no-analyze", home=home)
    assert ok.returncode == 0, ok.stderr
    rows_before = _count(home)
    # an input that cannot fit: 720 k random floats do not compress below 3 MiB
    rng = random.Random(19)
    big = tmp_path / "big.csv"
    with open(big, "w") as fh:
        fh.write("timestamp,service,metric,value\n")
        for m in range(1440):
            t = (T0 + timedelta(days=1, minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.writelines(f"{t},svc-{s:03d},rand,{rng.random()}\n" for s in range(500))
    before = _tree(home)
    failed = run_cli("ingest", str(big), "--no-analyze", home=home)
    assert failed.returncode == 2
    lines = [line for line in failed.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in failed.stderr
    assert "no space left" in failed.stderr, failed.stderr
    assert str(home) in failed.stderr.replace("\n", ""), failed.stderr
    assert len(" ".join(lines)) < 400
    assert _tree(home) == before  # nothing of the failed write is left
    assert _count(home) == rows_before  # and what was there still reads
    status = run_cli("status", "--json", home=home)
    assert status.returncode == 0
    assert json.loads(status.stdout)["rows"]["metrics"] == rows_before


def test_read_only_warehouse_is_one_line(tiny_fs: Path, tmp_path: Path) -> None:
    home = tiny_fs / "wh"
    src = tmp_path / "a.csv"
    _write_csv(src, services=5, minutes=10)
    assert run_cli("ingest", str(src), "--no-analyze", home=home).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    try:
        again = tmp_path / "b.csv"
        with open(again, "w") as fh:
            fh.write("timestamp,service,metric,value\n2024-03-05T00:00:00Z,svc-000,cpu,1\n")
        done = run_cli("ingest", str(again), "--no-analyze", home=home)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert "read-only file system" in done.stderr
        assert "remount" in done.stderr
        assert run_cli("status", home=home).returncode == 0
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_fs)], check=False)
