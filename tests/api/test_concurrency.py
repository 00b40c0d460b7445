"""The server keeps answering while ``whatchanged ingest`` writes in another process,
and what that process committed is visible to the next read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.api.conftest import LiveServer

RECORDS = 5_000


def _deploy_log(path: Path) -> None:
    with open(path, "w") as fh:
        for n in range(RECORDS):
            minute = n % 600
            fh.write(
                json.dumps(
                    {
                        "id": f"conc-{n:05d}",
                        "timestamp": f"2010-11-18T{8 + minute // 60:02d}:{minute % 60:02d}:00+01:00",
                        "service": f"www-{n % 900:04d}",
                        "version": f"v{n}",
                        "author": "loadgen",
                        "description": "",
                    }
                )
                + "\n"
            )


def test_reads_keep_answering_during_an_ingest_in_another_process(server: LiveServer, tmp_path: Path) -> None:
    log = tmp_path / "deploys.jsonl"
    _deploy_log(log)
    exe = Path(sys.executable).parent / "whatchanged"
    env = {**os.environ, "WHATCHANGED_HOME": str(server.home)}
    statuses: list[int] = []
    latencies: list[float] = []
    stop = threading.Event()

    def reader(n: int) -> None:
        with httpx.Client(base_url=server.api, timeout=30) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                if n % 2:
                    r = c.get(
                        "/changes", params={"at": "2010-11-18T12:00:00+01:00", "before": "2m", "after": "2m"}
                    )
                else:
                    r = c.get("/services", params={"limit": 20, "kind": "site"})
                latencies.append(time.perf_counter() - t0)
                statuses.append(r.status_code)

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(reader, n) for n in range(6)]
        time.sleep(0.3)
        proc = subprocess.run(
            [str(exe), "ingest", str(log), "--json"], env=env, capture_output=True, text=True, timeout=300
        )
        time.sleep(0.3)
        stop.set()
        for f in futures:
            f.result()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_added"]["changes"] == RECORDS
    assert statuses
    assert set(statuses) == {200}, sorted(set(statuses))
    assert len(statuses) > 20
    assert max(latencies) < 10
    # the next read sees the other process's commit
    with httpx.Client(base_url=server.api, timeout=30) as c:
        listed = c.get("/changes", params={"at": "2010-11-18T12:00:00+01:00", "before": "0s", "after": "0s"})
        status = c.get("/status").json()
    assert listed.status_code == 200
    ids = {ch["change_id"] for ch in listed.json()["changes"]}
    assert ids == {f"conc-{n:05d}" for n in range(RECORDS) if n % 600 == 240}
    assert status["changes_by_kind"]["deploy"] >= RECORDS
