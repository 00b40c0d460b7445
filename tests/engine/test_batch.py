"""Batch analysis: partitions stitched into what a whole-range run gives, on every executor.

The warehouse: 3 days × 40 services × 2 metrics at 1-minute steps (seeded),
with an incident crossing midnight UTC — bandwidth of 8 P19 services on one
switch capped near 50 and their HTTP checks CRITICAL from 23:40 to 00:30 —
covered by a switch maintenance notice, and a short probe outage mid-day.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.engine import scenarios as sc
from tests.helpers import run_cli
from whatchanged.engine import batch
from whatchanged.engine.availability import availability
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.incidents import find_incidents
from whatchanged.engine.model import Incident
from whatchanged.engine.schema import CHANGES
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.present import report

DAY0 = datetime(2010, 11, 15, tzinfo=UTC)
DAYS = 3
START, END = DAY0, DAY0 + timedelta(days=DAYS)
MIDNIGHT = DAY0 + timedelta(days=2)
HIT_START = MIDNIGHT - timedelta(minutes=20)  # 23:40 UTC
HIT_END = MIDNIGHT + timedelta(minutes=30)  # 00:30 UTC
N_SERVICES = 40
HIT = [f"svc-{i:02d}" for i in range(0, 16, 2)]  # 8 services on switch p19-sw-1
METRICS = ("bandwidth_mbps", "latency_ms")
PROBE = (DAY0 + timedelta(days=1, hours=10), DAY0 + timedelta(days=1, hours=10, minutes=7))


def _tables(seed: int = 3) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    names = [f"svc-{i:02d}" for i in range(N_SERVICES)]
    inv = pa.table(
        {
            "service": names,
            "kind": [("site", "backoffice")[i % 2] for i in range(N_SERVICES)],
            "datacenter": ["P19" if i < 30 else "RBX" for i in range(N_SERVICES)],
            "switch": [f"{'p19' if i < 30 else 'rbx'}-sw-{i % 2 + 1}" for i in range(N_SERVICES)],
            "host": [f"h{i // 4:02d}" for i in range(N_SERVICES)],
            "app": [("sites", "backoffice", "mail")[i % 3] for i in range(N_SERVICES)],
        }
    )
    minutes = DAYS * 1440
    ts = np.datetime64(DAY0.replace(tzinfo=None), "us") + np.arange(minutes).astype("timedelta64[m]")
    lo = int((HIT_START - DAY0).total_seconds() // 60)
    hi = int((HIT_END - DAY0).total_seconds() // 60)
    cols: dict[str, list[np.ndarray]] = {"ts": [], "service": [], "metric": [], "value": []}
    for s in names:
        for m in METRICS:
            if m == "bandwidth_mbps":
                v = sc.traffic(ts, rng, mean=float(rng.uniform(120, 220)), noise=4.0)
                if s in HIT:
                    v[lo:hi] = 50.0 + rng.normal(0, 0.5, hi - lo)
            else:
                v = 40.0 + rng.gamma(2.0, 2.0, minutes)
            cols["ts"].append(ts)
            cols["service"].append(np.full(minutes, s))
            cols["metric"].append(np.full(minutes, m))
            cols["value"].append(np.round(v, 2))
    metrics = pa.table(
        {
            "ts": pa.array(np.concatenate(cols["ts"]), pa.timestamp("us", tz="UTC")),
            "service": pa.array(np.concatenate(cols["service"])),
            "metric": pa.array(np.concatenate(cols["metric"])),
            "value": pa.array(np.concatenate(cols["value"])),
        }
    )
    states = sc.StateRows()
    for s in HIT:
        states.intervals(
            s, "HTTP", [(HIT_START, HIT_END)], bad="CRITICAL", good="OK", source="nagios", first=DAY0
        )
    states.intervals("svc-31", "HTTP", [], bad="CRITICAL", good="OK", source="nagios", first=DAY0)
    states.intervals("svc-33", "www probe", [PROBE], bad="down", good="up", source="pingdom", first=DAY0)
    change = {c: [None] for c in CHANGES.names}
    change.update(
        change_id=["prov:MAINT-1"],
        kind=["maintenance"],
        start=[HIT_START - timedelta(minutes=10)],
        end=[HIT_END + timedelta(minutes=20)],
        title=["Network: P19 switch p19-sw-1 maintenance"],
        source=["test"],
        scope=[{"switches": ["p19-sw-1"]}],
    )
    return {
        "services": inv,
        "metrics": metrics,
        "states": states.table(),
        "changes": pa.Table.from_pydict(change, schema=CHANGES),
    }


@pytest.fixture(scope="module")
def wh_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("batch") / "warehouse"
    wh = Warehouse(home)
    wh.init()
    wh.commit(_tables(), source="test")
    return home


def _params(home: Path, **kw: int) -> batch.BatchParams:
    return batch.BatchParams(home=home, start=START, end=END, **{"partition_days": 1, "shards": 2, **kw})


def _run(home: Path, out: Path, executor: batch.Executor | None = None, **kw: int) -> batch.BatchResult:
    settings = load_settings(home=home)
    result = batch.run_batch(_params(home, **kw), out, settings=settings, executor=executor)
    batch.write_outputs(result, out, extra=report.files(result))
    return result


#: every file a run writes: the tables and the Markdown report
OUTPUTS = (*batch.OUTPUTS, "report.md")


def _bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def in_process(wh_home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, batch.BatchResult]:
    out = tmp_path_factory.mktemp("inproc")
    return out, _run(wh_home, out)


def _midnight_incident(result: batch.BatchResult) -> list[Incident]:
    return [i for i in result.incidents if i.onset < MIDNIGHT < (i.end or END)]


def test_plan_cuts_days_at_midnight_and_shards_services(wh_home: Path) -> None:
    con = Warehouse(wh_home).snapshot()
    parts = batch.plan(con, _params(wh_home))
    assert [p.key for p in parts] == [
        f"{d:%Y%m%d}T000000-s{k:03d}" for d in (DAY0, DAY0 + timedelta(days=1), MIDNIGHT) for k in (0, 1)
    ]
    assert {p.end - p.start for p in parts} == {timedelta(days=1)}
    shards = {p.services for p in parts}
    assert len(shards) == 2
    assert sorted(s for shard in shards for s in shard or ()) == [f"svc-{i:02d}" for i in range(N_SERVICES)]
    weekly = batch.plan(con, _params(wh_home, partition_days=7, shards=1))
    assert [(p.start, p.end, p.first, p.last) for p in weekly] == [(START, END, True, True)]


def test_midnight_incident_is_one_and_equals_a_whole_range_run(
    wh_home: Path, in_process: tuple[Path, batch.BatchResult]
) -> None:
    _, result = in_process
    whole = find_incidents(Warehouse(wh_home).snapshot(), START, END, online=False)
    assert list(result.incidents) == whole
    [inc] = _midnight_incident(result)
    assert inc.onset == HIT_START
    assert inc.end is not None
    assert inc.end >= HIT_END
    assert set(inc.services_affected) == set(HIT)
    assert inc.critical_services == tuple(sorted(HIT))
    assert inc.signals == ("bandwidth_mbps",)
    # its anomalies were owned by the second day's partitions: they end after midnight
    assert inc.anomalies
    assert all(a.onset < MIDNIGHT < (a.end or END) for a in inc.anomalies)
    top = result.top_cause(inc.incident_id)
    assert top is not None
    assert top.change_id == "prov:MAINT-1"
    assert top.category == "external_maintenance"
    # and one row in the Parquet output spanning both days
    out, _ = in_process
    rows = pq.read_table(out / "incidents.parquet").to_pylist()
    spanning = [r for r in rows if r["onset"] < MIDNIGHT < r["end"]]
    assert [r["incident_id"] for r in spanning] == [inc.incident_id]
    assert spanning[0]["top_change_id"] == "prov:MAINT-1"


def test_outputs_schemas_order_and_report(in_process: tuple[Path, batch.BatchResult]) -> None:
    out, result = in_process
    incidents = pq.read_table(out / "incidents.parquet")
    causes = pq.read_table(out / "causes.parquet")
    avail = pq.read_table(out / "availability.parquet")
    assert incidents.schema.equals(batch.INCIDENTS)
    assert causes.schema.equals(batch.CAUSES)
    assert avail.schema.equals(batch.AVAILABILITY)
    onsets = incidents.column("onset").to_pylist()
    assert onsets == sorted(onsets)
    assert incidents.num_rows == len(result.incidents)
    keys = [(r["incident_id"], r["rank"]) for r in causes.to_pylist()]
    by_incident: dict[str, list[int]] = {}
    for incident_id, rank in keys:
        by_incident.setdefault(incident_id, []).append(rank)
    assert list(by_incident) == incidents.column("incident_id").to_pylist()
    assert all(ranks == list(range(1, len(ranks) + 1)) for ranks in by_incident.values())
    assert avail.column("service").to_pylist() == sorted(avail.column("service").to_pylist())
    report = (out / "report.md").read_text()
    assert "## Outage minutes per cause class" in report
    assert "| external_maintenance | 1 | 50 |" in report
    assert "prov:MAINT-1" in report


def test_availability_per_service_matches_the_engine(
    wh_home: Path, in_process: tuple[Path, batch.BatchResult]
) -> None:
    _, result = in_process
    con = Warehouse(wh_home).snapshot()
    assert [a.selection for a in result.availability] == [
        f"service={s}" for s in sorted([*HIT, "svc-31", "svc-33"])
    ]
    for got in result.availability:
        want = availability(con, START, END, service=got.selection.removeprefix("service="))
        assert got == want
    by = {a.selection: a for a in result.availability}
    assert by["service=svc-33"].downtime_s == 420
    assert by["service=svc-33"].source == "external"
    assert by["service=svc-31"].availability == 1.0
    assert by["service=svc-00"].downtime_s == 3000


class _Failing:
    """An executor that runs ``ok`` partitions, then fails like a killed run."""

    name = "failing"

    def __init__(self, ok: int) -> None:
        self.ok = ok

    def run(self, home: str, parts: Sequence[batch.Partition]) -> Iterator[tuple[batch.Partition, pa.Table]]:
        for n, part in enumerate(parts):
            if n == self.ok:
                raise KeyboardInterrupt
            yield part, batch.run_partition(home, part)


def test_interrupted_run_leaves_no_output_and_resumes(
    wh_home: Path, tmp_path: Path, in_process: tuple[Path, batch.BatchResult]
) -> None:
    with pytest.raises(KeyboardInterrupt):
        _run(wh_home, tmp_path, executor=_Failing(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partitions"]
    assert len(list((tmp_path / ".partitions").glob("*.parquet"))) == 2
    seen: list[batch.Progress] = []
    result = batch.run_batch(
        _params(wh_home), tmp_path, settings=load_settings(home=wh_home), progress=seen.append
    )
    batch.write_outputs(result, tmp_path, extra=report.files(result))
    assert result.cached == 2
    assert [p.cached for p in seen].count(True) == 2
    assert _bytes(tmp_path) == _bytes(in_process[0])


def test_resume_skips_every_finished_partition(
    wh_home: Path, tmp_path: Path, in_process: tuple[Path, batch.BatchResult]
) -> None:
    _run(wh_home, tmp_path)
    for name in OUTPUTS:
        (tmp_path / name).unlink()
    result = _run(wh_home, tmp_path, executor=_Failing(0))  # would fail if asked to run anything
    assert result.cached == result.partitions == 6
    assert _bytes(tmp_path) == _bytes(in_process[0])


def test_other_parameters_are_refused(wh_home: Path, tmp_path: Path) -> None:
    _run(wh_home, tmp_path)
    with pytest.raises(ConfigError, match=r"partition_days: stored 1, now 3.*another --out"):
        _run(wh_home, tmp_path, partition_days=3)


def test_process_pool_gives_the_same_bytes(
    wh_home: Path, tmp_path: Path, in_process: tuple[Path, batch.BatchResult]
) -> None:
    result = _run(wh_home, tmp_path, executor=batch.PoolExecutor(2))
    assert result.executor.startswith("process pool")
    assert _bytes(tmp_path) == _bytes(in_process[0])


def test_engine_batch_imports_no_dask() -> None:
    code = "import sys, whatchanged.engine.batch; print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_cli_batch_writes_every_output(
    wh_home: Path, tmp_path: Path, in_process: tuple[Path, batch.BatchResult]
) -> None:
    done = run_cli(
        "batch",
        "--from",
        "2010-11-15 00:00",
        "--to",
        "2010-11-18 00:00",
        "--out",
        str(tmp_path),
        "--partition-days",
        "1",
        "--shards",
        "2",
        "--workers",
        "2",
        "--json",
        home=wh_home,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["incidents"] == len(in_process[1].incidents)
    assert data["partitions"] == 6
    assert data["downtime_by_class_s"]["external_maintenance"] == 3000
    assert _bytes(tmp_path) == _bytes(in_process[0])
    page = (tmp_path / "report.html").read_text()
    # plotly.js inlined (its bundle names a topojson CDN default, never loaded: no geo plots)
    assert re.search(r"<script[^>]+src=", page) is None
    assert "<link" not in page
    assert len(page) > 3_000_000
    assert "Plotly" in page
    assert "batch-incidents" in page
    assert "prov:MAINT-1" in page
    again = run_cli(
        "batch",
        "--from",
        "2010-11-15 00:00",
        "--to",
        "2010-11-18 00:00",
        "--out",
        str(tmp_path),
        home=wh_home,
    )
    assert again.returncode == 2
    assert "other parameters" in again.stderr
    assert "Traceback" not in again.stderr


# -- a real Dask cluster ----------------------------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as lc,
        Client(lc) as client,
    ):
        yield lc, client


@pytest.mark.dask
def test_dask_cluster_gives_the_same_bytes(
    cluster: Any, tmp_path: Path, in_process: tuple[Path, batch.BatchResult], wh_home: Path
) -> None:
    lc, _ = cluster
    result = _run(wh_home, tmp_path, executor=batch.DaskExecutor(lc.scheduler_address))
    assert result.executor.startswith("dask")
    assert len(_midnight_incident(result)) == 1
    assert _bytes(tmp_path) == _bytes(in_process[0])


@pytest.mark.dask
def test_dask_killed_worker_loses_and_duplicates_nothing(
    cluster: Any, tmp_path: Path, in_process: tuple[Path, batch.BatchResult], wh_home: Path
) -> None:
    lc, client = cluster
    pids: dict[str, int] = client.run(os.getpid)
    killed: list[int] = []
    running: list[str] = []  # the tasks the killed worker held

    def kill_one(_progress: batch.Progress) -> None:
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        victim = busy[0] if busy else sorted(pids)[0]
        killed.append(pids[victim])
        running.extend(client.processing()[victim])
        os.kill(pids[victim], signal.SIGKILL)

    params = _params(wh_home, shards=4)  # 12 partitions: some are running when one worker dies
    result = batch.run_batch(
        params,
        tmp_path,
        settings=load_settings(home=wh_home),
        executor=batch.DaskExecutor(lc.scheduler_address),
        progress=kill_one,
    )
    batch.write_outputs(result, tmp_path, extra=report.files(result))
    assert killed
    assert killed[0] not in client.run(os.getpid).values()
    assert running, "the killed worker held no partition: nothing was rescheduled"
    assert result.partitions == 12
    assert len(list((tmp_path / ".partitions").glob("*.parquet"))) == 12
    assert list(result.incidents) == list(in_process[1].incidents)
    for name in ("incidents.parquet", "causes.parquet", "availability.parquet"):
        assert (tmp_path / name).read_bytes() == (in_process[0] / name).read_bytes()
