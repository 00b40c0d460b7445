"""Ingest under stress: bad rows, generated inputs, concurrent writers, a killed writer.

* ``--skip-bad`` keeps the good rows and lists the rejected ones (real CLI);
* Hypothesis: generated rows → CSV → ingest gives the same values back, and
  ingesting again adds 0 rows (services inventory, metrics long and wide);
* two ``whatchanged ingest`` processes started together both land all rows;
* an ingest killed with SIGKILL while it writes leaves a readable warehouse
  holding either none or all of the file's rows.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import run_cli
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

EXE = Path(sys.executable).parent / "whatchanged"

# -- --skip-bad --------------------------------------------------------------------


def test_skip_bad_keeps_good_rows_and_lists_rejected(tmp_path: Path) -> None:
    src = tmp_path / "metrics.csv"
    src.write_text(
        "timestamp,service,metric,value\n"
        "2010-11-17T19:22:00+01:00,www-0001,latency_ms,35.2\n"
        "2010-11-17T19:23:00+01:00,www-0001,latency_ms,abc\n"
        "not a time,www-0001,latency_ms,36.1\n"
        "2010-11-17T19:25:00+01:00,,latency_ms,36.4\n"
        "2010-11-17T19:26:00+01:00,www-0001,latency_ms,37.0\n"
    )
    home = tmp_path / "wh"
    strict = run_cli("ingest", str(src), "--json", home=home)
    assert strict.returncode == 2
    assert "line 3" in strict.stderr
    assert "'abc'" in strict.stderr
    assert not Warehouse(home).exists or Warehouse(home).manifests() == []

    done = run_cli("ingest", str(src), "--skip-bad", "--json", home=home)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["rows_added"] == {"metrics": 2}
    rejected = out["rejected"]
    assert len(rejected) == 3
    assert "line 3" in rejected[0]
    assert "'abc'" in rejected[0]
    assert "line 4" in rejected[1]
    assert "field 'timestamp'" in rejected[1]
    assert "line 5" in rejected[2]
    assert "field 'service'" in rejected[2]
    con = Warehouse(home).snapshot()
    values = con.sql("SELECT value FROM metrics ORDER BY ts").fetchall()
    con.close()
    assert values == [(35.2,), (37.0,)]


def test_skip_bad_nagios_and_prometheus(tmp_path: Path) -> None:
    log = tmp_path / "nagios.log"
    log.write_text(
        "[1290015780] SERVICE ALERT: bo-primary;HTTP;CRITICAL;HARD;3;timeout\n"
        "[1290015840] SERVICE ALERT: bo-primary;HTTP;PURPLE;HARD;3;??\n"
        "[1290015900] SERVICE ALERT: bo-primary;HTTP;OK;HARD;1;back\n"
    )
    prom = tmp_path / "scrape.prom"
    prom.write_text('up{service="www-0001"} 1 1290018120000\nup{service="www-0002"} 1\n')
    ctx = ReadContext(skip_bad=True)
    summary = ingest(Warehouse(tmp_path / "wh"), [log, prom], ctx)
    assert summary.result is not None
    assert summary.result.rows_added == {"states": 2, "metrics": 1}
    assert [e.line for e in summary.rejected] == [2, 2]


# -- Hypothesis round trips ----------------------------------------------------------

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMES = st.integers(
    min_value=946_684_800, max_value=1_700_000_000
)  # 2000 … 2023, seconds (not ahead of the clock)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.none(),
)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def _stored(home: Path, sql: str) -> list[tuple[object, ...]]:
    con = Warehouse(home).snapshot()
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def _fmt_time(seconds: int, style: int) -> str:
    t = EPOCH + timedelta(seconds=seconds)
    return [str(seconds), str(seconds * 1000), t.isoformat(), t.strftime("%Y-%m-%dT%H:%M:%SZ")][style]


@FAST
@given(
    rows=st.lists(
        st.tuples(TIMES, NAME, NAME, VALUES, st.one_of(st.none(), NAME), st.integers(0, 3)),
        min_size=1,
        max_size=40,
    )
)
def test_metrics_long_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, rows: list[tuple]) -> None:
    tmp = tmp_path_factory.mktemp("long")
    src = tmp / "m.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "service", "metric", "value", "env"])
        for t, svc, met, val, env, style in rows:
            w.writerow([_fmt_time(t, style), svc, met, "" if val is None else repr(val), env or ""])
    home = tmp / "wh"
    first = ingest(Warehouse(home), [src], ReadContext())
    expected: dict[tuple[str, str, int], tuple[float | None, str | None]] = {}
    for t, svc, met, val, env, _ in rows:
        expected.setdefault((svc, met, t), (val, env))  # the first row of a key wins
    assert first.result is not None
    assert first.result.added_total == len(expected)
    got = _stored(home, "SELECT service, metric, epoch(ts)::BIGINT, value, env FROM metrics")
    assert len(got) == len(expected)
    for svc, met, t, val, env in got:
        want_val, want_env = expected[(svc, met, t)]
        assert _same(val, want_val)
        assert env == want_env
    again = ingest(Warehouse(home), [src], ReadContext())
    assert again.result is not None
    assert again.result.added_total == 0


@FAST
@given(
    metrics=st.lists(NAME.map(lambda n: "m_" + n), min_size=1, max_size=4, unique=True),
    rows=st.lists(st.tuples(TIMES, NAME, st.lists(VALUES, min_size=4, max_size=4)), min_size=1, max_size=25),
)
def test_metrics_wide_csv_round_trip(
    tmp_path_factory: pytest.TempPathFactory, metrics: list[str], rows: list[tuple]
) -> None:
    tmp = tmp_path_factory.mktemp("wide")
    src = tmp / "w.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "service", *metrics])
        for t, svc, vals in rows:
            w.writerow([t, svc, *("" if v is None else repr(v) for v in vals[: len(metrics)])])
    home = tmp / "wh"
    ingest(Warehouse(home), [src], ReadContext())
    expected: dict[tuple[str, str, int], float] = {}
    for t, svc, vals in rows:
        for met, val in zip(metrics, vals, strict=False):
            if val is not None:  # an empty wide cell is no sample
                expected.setdefault((svc, met, t), val)
    got = _stored(home, "SELECT service, metric, epoch(ts)::BIGINT, value FROM metrics")
    assert {(s, m, t) for s, m, t, _ in got} == set(expected)
    for svc, met, t, val in got:
        assert _same(val, expected[(svc, met, t)])
    again = ingest(Warehouse(home), [src], ReadContext())
    assert again.result is None or again.result.added_total == 0


@FAST
@given(
    rows=st.lists(
        st.tuples(
            NAME,
            st.sampled_from(["site", "backoffice", "email", ""]),
            st.sampled_from(["P19", "RBX", ""]),
            st.booleans(),
            st.dictionaries(NAME, NAME, max_size=3),
        ),
        min_size=1,
        max_size=20,
        unique_by=lambda r: r[0],
    )
)
def test_services_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, rows: list[tuple]) -> None:
    tmp = tmp_path_factory.mktemp("svc")
    src = tmp / "services.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["service", "kind", "datacenter", "rack", "switch", "host", "app", "critical", "tags"])
        for svc, kind, dc, crit, tags in rows:
            w.writerow(
                [
                    svc,
                    kind,
                    dc,
                    "",
                    "",
                    "",
                    "",
                    str(crit).lower(),
                    ";".join(f"{k}={v}" for k, v in tags.items()),
                ]
            )
    home = tmp / "wh"
    ingest(Warehouse(home), [src], ReadContext())
    got = {
        r[0]: r[1:]
        for r in _stored(
            home, "SELECT service, kind, datacenter, critical, map_keys(tags), map_values(tags) FROM services"
        )
    }
    assert set(got) == {r[0] for r in rows}
    for svc, kind, dc, crit, tags in rows:
        g_kind, g_dc, g_crit, keys, vals = got[svc]
        assert (g_kind, g_dc, g_crit) == (kind or None, dc or None, crit)
        assert dict(zip(keys, vals, strict=True)) == dict(sorted(tags.items()))
    again = ingest(Warehouse(home), [src], ReadContext())
    assert again.result is not None
    assert again.result.added_total == 0


# -- processes -------------------------------------------------------------------------


def _write_metrics(path: Path, *, services: int, minutes: int, prefix: str) -> int:
    with open(path, "w") as fh:
        fh.write("timestamp,service,metric,value\n")
        for m in range(minutes):
            t = 1290000000 + 60 * m
            for s in range(services):
                fh.write(f"{t},{prefix}-{s:04d},latency_ms,{(s * 7 + m) % 500 / 10}\n")
    return services * minutes


@pytest.mark.slow
def test_two_ingests_at_once_both_land(tmp_path: Path) -> None:
    home = tmp_path / "wh"
    Warehouse(home).init()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    n_a = _write_metrics(a, services=50, minutes=600, prefix="a")
    n_b = _write_metrics(b, services=40, minutes=700, prefix="b")
    env = {**os.environ, "WHATCHANGED_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [str(EXE), "ingest", str(f), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in (a, b)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    rows = dict(_stored(home, "SELECT split_part(service, '-', 1), count(*) FROM metrics GROUP BY 1"))
    assert rows == {"a": n_a, "b": n_b}
    assert len(Warehouse(home).manifests()) == 2
    status = run_cli("status", "--json", home=home)
    assert status.returncode == 0
    assert json.loads(status.stdout)["rows"]["metrics"] == n_a + n_b


@pytest.mark.slow
def test_sigkill_midway_leaves_none_or_all(tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    total = _write_metrics(src, services=1000, minutes=1440, prefix="svc")  # 1.44 M rows
    seen = set()
    for attempt in range(8):
        home = tmp_path / f"wh{attempt}"
        Warehouse(home).init()
        env = {**os.environ, "WHATCHANGED_HOME": str(home)}
        proc = subprocess.Popen(
            [str(EXE), "ingest", str(src), "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        # wait until the writer has staged something under .tmp/, then kill it
        while time.monotonic() < deadline and proc.poll() is None:
            if any((home / ".tmp").glob("*/*")):
                break
            time.sleep(0.005)
        time.sleep(0.01 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        status = run_cli("status", "--json", home=home)
        assert status.returncode == 0, status.stderr
        count = json.loads(status.stdout)["rows"]["metrics"]
        assert count in (0, total)
        seen.add(count)
        if 0 in seen:
            break
    assert 0 in seen, "never caught the writer mid-write"
