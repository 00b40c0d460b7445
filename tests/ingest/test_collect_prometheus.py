"""``whatchanged collect`` against a REAL Prometheus (Debian's 2.42), backfilled with
``promtool tsdb create-blocks-from openmetrics`` from a generated night with a known cause
(the ``utc_notice_local_deploys`` scenario: storage latency jumps during an SBG firmware
maintenance announced by an iCalendar notice).

* collecting the metrics from Prometheus and the notice from an iCalendar drop folder gives the
  same rows and the same top cause as ingesting the scenario's files;
* a collector SIGKILLed in the middle of a pull and run again loses and doubles no sample.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.servers import prometheus, write_openmetrics
from whatchanged.data.scenarios import utc_notice_local_deploys
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.collect import Collector
from whatchanged.ingest.pipeline import ingest
from whatchanged.ingest.sources import load_sources

pytestmark = pytest.mark.slow

TZ = "Europe/Paris"


class Night:
    def __init__(self, folder: Path, truth: Any, prom_url: str, first: int, last: int) -> None:
        self.folder = folder
        self.truth = truth
        self.prom_url = prom_url
        self.first = first  # epoch seconds of the first and last sample
        self.last = last

    def sources_toml(self, *, chunk: str = "12h", ical: bool = True) -> str:
        first = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.first))
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last))
        text = f"""
[collect]
timeout = "10s"
retries = 0

[[prometheus]]
name = "prom"
url = "{self.prom_url}"
queries = ["latency_ms"]
service_label = "service"
datacenter_label = "datacenter"
step = "60s"
start = {first}
until = {until}
chunk = "{chunk}"
"""
        if ical:
            text += '\n[[ical]]\nname = "notices"\nfolder = "notices"\n'
        return text

    def live_home(self, home: Path, **kw: Any) -> Warehouse:
        """A warehouse with the inventory, checks and deploys from files; metrics and the
        notice left to the collector."""
        wh = Warehouse(home)
        ctx = ReadContext(tz=TZ)
        ingest(wh, [self.folder / n for n in ("services.csv", "nagios.log", "deploys.csv")], ctx)
        (home / "notices").mkdir()
        shutil.copy(self.folder / "maintenance.ics", home / "notices" / "sbg.ics")
        (home / "sources.toml").write_text(self.sources_toml(**kw))
        return wh


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    root = tmp_path_factory.mktemp("night")
    truth = utc_notice_local_deploys(root / "scenario")
    folder = root / "scenario"
    rows = pq.read_table(folder / "metrics.parquet").to_pylist()
    om = root / "night.om"
    write_openmetrics(rows, om, labels=dict.fromkeys({r["service"] for r in rows}, 'datacenter="SBG"'))
    first = int(min(r["timestamp"] for r in rows).timestamp())
    last = int(max(r["timestamp"] for r in rows).timestamp())
    with prometheus(om, root) as url:
        yield Night(folder, truth, url, first, last)


@pytest.fixture(scope="module")
def from_files(night: Night, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    wh = Warehouse(tmp_path_factory.mktemp("files") / "wh")
    ingest(wh, [night.folder], ReadContext(tz=TZ))
    return wh


def _metrics(wh: Warehouse) -> list[tuple[Any, ...]]:
    con = wh.snapshot()
    try:
        return con.sql("SELECT service, metric, epoch(ts), value FROM metrics ORDER BY ALL").fetchall()
    finally:
        con.close()


def _explain_top(wh: Warehouse, at_local: str) -> tuple[str, str | None, float]:
    from whatchanged.api.cli_fast import explain_json_at

    answer = explain_json_at(load_settings(home=wh.home, tz=TZ), at_local)
    top = answer["causes"][0]
    return top["category"], top["change_id"], top["score"]


def test_collect_gives_the_rows_and_the_answer_of_the_files(
    night: Night, from_files: Warehouse, tmp_path: Path
) -> None:
    wh = night.live_home(tmp_path / "wh")
    collector = Collector(wh, load_sources(wh.home), tz=TZ)
    try:
        outcomes = collector.run_pass()
        assert [(o.source, o.ok) for o in outcomes] == [("prom", True), ("notices", True)], outcomes
        assert outcomes[0].rows_added["metrics"] == 17280
        assert outcomes[0].commits == 6  # 3 days in 12 h chunks: one commit each
        # nothing new: a second pass adds nothing and commits nothing
        again = collector.run_pass()
        assert [o.commits for o in again] == [0, 0]
    finally:
        collector.close()
    assert _metrics(wh) == _metrics(from_files)
    expected = _explain_top(from_files, night.truth.at_local)
    assert expected[:2] == ("external_maintenance", night.truth.change_id)
    assert _explain_top(wh, night.truth.at_local) == expected


def test_sigkill_mid_pull_neither_loses_nor_doubles(night: Night, tmp_path: Path) -> None:
    wh = night.live_home(tmp_path / "wh", chunk="6h", ical=False)
    before = len(wh.manifests())
    cmd = [sys.executable, "-m", "whatchanged.api.cli", "collect", "--home", str(wh.home), "--no-notify"]
    env = {**os.environ, "WHATCHANGED_TZ": TZ}
    log = tmp_path / "collect.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(wh.manifests()) < before + 2:  # a few chunks committed, most still to pull
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the collector committed nothing in 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    killed_at = len(_metrics(wh))
    assert 0 < killed_at < 17280, killed_at
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _metrics(wh)
    assert len(rows) == 17280
    assert len({r[:3] for r in rows}) == 17280  # no (service, metric, ts) twice
    con = wh.snapshot()
    try:
        ((cursor,),) = con.sql("SELECT cursor FROM cursors WHERE source = 'prom'").fetchall()
    finally:
        con.close()
    assert json.loads(cursor) == {"kind": "prometheus", "end": night.last}
    # each commit carried its cursor: the cursor rows are as many as the collector's commits
    collect_commits = [m for m in wh.manifests() if m["source"] == "collect:prom"]
    assert all("cursors" in m["tables"] for m in collect_commits)
    assert sum(m["tables"]["cursors"]["rows"] for m in collect_commits) == len(collect_commits)
    assert timedelta(seconds=night.last - night.first) == timedelta(days=3) - timedelta(minutes=1)


def test_collect_starts_the_analysis_of_what_it_added(night: Night, tmp_path: Path) -> None:
    """After a pass that added metrics, the day states (and the contextual detector's results)
    are computed in the background: a question finds them instead of computing them."""
    wh = night.live_home(tmp_path / "wh", ical=False)
    cmd = [sys.executable, "-m", "whatchanged.api.cli", "collect", "--home", str(wh.home), "--no-notify"]
    env = {**os.environ, "WHATCHANGED_TZ": TZ, "WHATCHANGED_NO_ANALYZE": ""}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    analyse = [sys.executable, "-m", "whatchanged.api.cli", "analyze", "--home", str(wh.home), "--json"]
    states = wh.home / "_cache" / "daystate"
    deadline = time.monotonic() + 120
    while not list(states.glob("*.npz")):  # the background analysis has started writing
        assert time.monotonic() < deadline, "no day state written by the background analysis"
        time.sleep(0.2)
    # this one waits for the background one (one at a time), which left nothing to compute
    after = json.loads(subprocess.run(analyse, env=env, capture_output=True, text=True, check=True).stdout)
    assert after["days"] >= 3
    assert after["computed"] == 0
