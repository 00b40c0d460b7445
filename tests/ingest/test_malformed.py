"""Hostile input through the real command line: one line on stderr, a non-zero exit, nothing stored.

The corpus lives in ``tests/data/malformed/<reader>/`` (a file, or a folder for the Pingdom
export); the big cases (a field over the CSV limit, JSON nested 100 000 deep, a line over the
line limit, times ahead of the clock) are written at test time instead of being committed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from whatchanged.api.cli import main
from whatchanged.engine.warehouse import Warehouse

CORPUS = Path(__file__).resolve().parents[1] / "data" / "malformed"
DEEP = 100_000
BIG_FIELD = 200 * 1024  # over the 128 KiB default of max_field_chars
LONG_LINE = 2 << 20  # over the 1 MiB default of max_line_bytes


def _ahead() -> int:
    return int(time.time()) + 3 * 86400  # three days ahead of the clock


def _deep_json(path: Path) -> Path:
    path.write_text("[" * DEEP + "]" * DEEP)
    return path


#: reader → name → writes the case under the given folder and returns the path to ingest
GENERATED: dict[str, dict[str, Callable[[Path], Path]]] = {
    "services": {
        "big_field.csv": lambda d: _write(
            d / "big_field.csv",
            "service,kind,datacenter,rack,switch,host,app,critical,tags\n"
            f"www-0001,site,P19,{'R' * BIG_FIELD},sw,h,sites,false,\n",
        ),
    },
    "metrics_csv": {
        "big_field.csv": lambda d: _write(
            d / "big_field.csv", f"timestamp,service,metric,value\n1290018120,{'w' * BIG_FIELD},bw,1\n"
        ),
        "future.csv": lambda d: _write(
            d / "future.csv", f"timestamp,service,metric,value\n1290018120,www,bw,1\n{_ahead()},www,bw,2\n"
        ),
    },
    "deploy_csv": {
        "big_field.csv": lambda d: _write(
            d / "big_field.csv",
            "id,timestamp,service,version,author,description\n"
            f"REL-1,2010-11-17T09:32:00+01:00,sites,v1,alice,{'d' * BIG_FIELD}\n",
        ),
    },
    "nagios": {
        "long_line.log": lambda d: _write(
            d / "long_line.log", "[1290015780] SERVICE ALERT: bo;HTTP;OK;HARD;1;" + "x" * LONG_LINE + "\n"
        ),
        "future.log": lambda d: _write(
            d / "future.log", f"[{_ahead()}] SERVICE ALERT: bo;HTTP;OK;HARD;1;OK\n"
        ),
    },
    "prometheus_json": {"deep.json": lambda d: _deep_json(d / "deep.json")},
    "prometheus_text": {
        "long_line.prom": lambda d: _write(
            d / "long_line.prom", '# TYPE bw gauge\nbw{service="' + "w" * LONG_LINE + '"} 1 1290018120000\n'
        ),
    },
    "pagerduty": {
        "deep.json": lambda d: _write(
            d / "deep.json", '{"routing_key": "k", "payload": ' + "[" * DEEP + "]" * DEEP + "}"
        )
    },
    "deploy_jsonl": {
        "deep.jsonl": lambda d: _write(
            d / "deep.jsonl",
            json.dumps({"id": "R", "timestamp": "2010-11-17T09:32:00+01:00", "service": "s"})
            + "\n"
            + "[" * DEEP
            + "]" * DEEP
            + "\n",
        ),
        "future.jsonl": lambda d: _write(
            d / "future.jsonl",
            json.dumps(
                {
                    "id": "R",
                    "timestamp": f"{time.strftime('%Y-%m-%d', time.gmtime(_ahead()))}T00:00:00Z",
                    "service": "s",
                }
            )
            + "\n",
        ),
    },
    "pingdom": {
        "deep": lambda d: _pingdom_deep(d / "deep"),
    },
    "metrics_parquet": {
        "epoch_5138.parquet": lambda d: _parquet(d / "epoch_5138.parquet", 99_999_999_999),
        "future.parquet": lambda d: _parquet(d / "future.parquet", _ahead()),
    },
    **{
        reader: {"deep.json": lambda d: _deep_json(d / "deep.json")}
        for reader in ("github_deploy", "grafana", "datadog", "statuspage")
    },
}


def _parquet(path: Path, epoch: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "timestamp": pa.array([1_290_018_120, epoch], pa.int64()),
            "service": ["www", "www"],
            "metric": ["bw", "bw"],
            "value": [1.0, 2.0],
        }
    )
    pq.write_table(table, path)
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _pingdom_deep(folder: Path) -> Path:
    folder.mkdir()
    (folder / "checks.json").write_text(
        '{"checks": [{"id": 1, "name": "www", "tags": ' + "[" * DEEP + "]" * DEEP + "}]}"
    )
    return folder


def _cases() -> list[tuple[str, str]]:
    cases = [(d.name, p.name) for d in sorted(CORPUS.iterdir()) for p in sorted(d.iterdir())]
    cases += [(reader, name) for reader, made in GENERATED.items() for name in made]
    return cases


def _listing(home: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(home)), p.stat().st_size) for p in home.rglob("*") if p.is_file())


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``whatchanged`` command line in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "whatchanged.api.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WHATCHANGED_NO_ANALYZE": "1", "COLUMNS": "100", **(env or {})},
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("reader", "name"), _cases())
def test_malformed_input_is_one_line_and_stores_nothing(
    reader: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "warehouse"
    Warehouse(home).init()
    if reader in GENERATED and name in GENERATED[reader]:
        work = tmp_path / "in"
        work.mkdir()
        target = GENERATED[reader][name](work)
    else:
        target = CORPUS / reader / name
    before = _listing(home)
    args = ["ingest", str(target), "--home", str(home), "--format", reader, "--no-analyze"]
    # the real entry point; in this process, as a new one per case costs seconds (a sample runs as
    # a new process in test_malformed_input_through_a_new_process)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    captured = capsys.readouterr()
    result = subprocess.CompletedProcess(args, int(exit_.value.code or 0), captured.out, captured.err)
    line = assert_one_line_error(result)
    shown = target.name if target.is_file() else str(target.name)
    assert shown in line, line
    assert "unexpected" not in line, line  # a foreseen failure, not the last-resort handler
    assert _listing(home) == before


@pytest.mark.parametrize(
    ("reader", "name"),
    [("services", "short_row.csv"), ("prometheus_json", "epoch_1e20.json"), ("deploy_csv", "not_utf8.csv")],
)
def test_malformed_input_through_a_new_process(reader: str, name: str, tmp_path: Path) -> None:
    home = tmp_path / "warehouse"
    Warehouse(home).init()
    before = _listing(home)
    result = run_cli("ingest", CORPUS / reader / name, "--home", home, "--no-analyze")
    assert_one_line_error(result, name)
    assert result.returncode == 2
    assert _listing(home) == before


@pytest.mark.parametrize(
    ("name", "head", "tail", "where"),
    [
        ("nagios.log", b"[1290015780] SERVICE ALERT: bo;HTTP;CRITICAL;HARD;1;", b"\n", "line 1"),
        (
            "metrics.csv",
            b"timestamp,service,metric,value\n1290018120,www,bw,1\n1290018180,",
            b",bw,2\n",
            "line 3",
        ),
    ],
)
def test_a_200_mb_line_fails_fast_in_bounded_memory(
    name: str, head: bytes, tail: bytes, where: str, tmp_path: Path
) -> None:
    """A 200 MB single line (a Nagios message, a CSV field): one line of error, peak RSS far
    below the input."""
    big = tmp_path / name
    with open(big, "wb") as fh:
        fh.write(head)
        block = b"x" * (1 << 20)
        for _ in range(200):
            fh.write(block)
        fh.write(tail)
    home = tmp_path / "warehouse"
    Warehouse(home).init()
    # a helper process waits for the CLI, so RUSAGE_CHILDREN holds that one child only
    probe = (
        "import json, resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(json.dumps({'rc': r.returncode, 'stderr': r.stderr,"
        " 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
    )
    cmd = [sys.executable, "-c", probe, sys.executable, "-m", "whatchanged.api.cli"]
    cmd += ["ingest", str(big), "--home", str(home), "--no-analyze"]
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    seconds = time.monotonic() - started
    report = json.loads(out.stdout)
    assert report["rc"] != 0
    lines = report["stderr"].strip().splitlines()
    assert len(lines) == 1, report["stderr"]
    assert name in lines[0], report["stderr"]
    assert where in lines[0], report["stderr"]
    assert "line too long" in lines[0]
    assert report["maxrss_kb"] < 500 * 1024, report  # the input alone is 200 MB
    assert seconds < 120


def test_unexpected_errors_are_one_line_too(tmp_path: Path) -> None:
    """The last-resort handler: a bug is one line naming the exception, --debug shows the traceback."""
    bad = tmp_path / "series.csv"
    bad.write_text("timestamp,value\n")
    env = {"PYTHONPATH": str(tmp_path)}
    # sitecustomize makes detection crash with a plain exception, as a bug would
    (tmp_path / "sitecustomize.py").write_text(
        "import whatchanged.api.cli_core as c\n"
        "def boom(*a, **k):\n    raise RuntimeError('boom\\nsecond line')\n"
        "c.expand = boom\n"
    )
    result = run_cli("ingest", bad, "--home", tmp_path / "wh", env=env)
    line = assert_one_line_error(result, "unexpected RuntimeError", "boom second line", "--debug")
    assert result.returncode == 1, line
    debug = run_cli("--debug", "ingest", bad, "--home", tmp_path / "wh", env=env)
    assert "Traceback" in debug.stderr
    assert debug.returncode != 0
