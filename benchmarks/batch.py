"""Batch analysis speed: ``whatchanged batch`` over 30 days × 1002 services × 3 metrics at 1-minute steps.

Run alone: ``.venv/bin/python benchmarks/batch.py [--days 30] [--partition-days 15] [--json]``.

The warehouse is :func:`benchmarks.synth.build` (cached under
``benchmarks/out``; built on first use, a few minutes for 30 days).  Each
executor runs the real CLI in a child process with a fresh ``--out``:
in-process (default) and ``--scheduler local:2`` (a Dask LocalCluster of
two single-threaded worker processes).  Printed: wall time, points per
second, and the peak RSS (``ru_maxrss`` from ``wait4``: the largest of the
child and its waited-for descendants — for Dask, the biggest single process,
not the sum).  Also checked: both runs wrote byte-identical
``incidents.parquet`` and ``causes.parquet``.  The day states
(``<home>/_cache/daystate`` and the contextual detector's ``ctxstate``) are removed before each run, so the time includes
computing them (``batch`` does it once before its partitions).  Targets on the 2-core
reference machine (in-process): ≤ 2 minutes and ≤ 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synth  # noqa: E402

EXE = Path(sys.executable).parent / "whatchanged"


def run(home: Path, out: Path, days: int, partition_days: int, extra: list[str]) -> dict[str, object]:
    first = synth.END_DAY - timedelta(days=days - 1)
    last = synth.END_DAY + timedelta(days=1)
    cmd = [
        str(EXE),
        "batch",
        "--from",
        first.isoformat(),
        "--to",
        last.isoformat(),
        "--out",
        str(out),
        "--home",
        str(home),
        "--partition-days",
        str(partition_days),
        "--json",
        *extra,
    ]
    log = out.with_suffix(".log")
    started = time.perf_counter()
    # append mode: a Dask worker process still exiting after the CLI may write to the
    # inherited stdout; it must not overwrite the JSON at the file's start
    with open(log, "a+") as fh, open(out.with_suffix(".err"), "a+") as err:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage: its own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        fh.seek(0)
        output = fh.read()
        err.seek(0)
        errors = err.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{errors[-3000:]}")
    start = output.find('{\n  "from"')
    if start < 0:
        raise SystemExit(f"{' '.join(cmd)}: no JSON summary on stdout:\n{output[:2000]}\n{errors[-2000:]}")
    if start > 0:  # something else wrote to the inherited stdout first: show it
        print(f"(stdout before the summary: {output[:start]!r})", file=sys.stderr)
    data, _ = json.JSONDecoder().raw_decode(output[start:])
    points = synth.N_SERVICES * len(synth.METRIC_NAMES) * 1440 * days
    rss = usage.ru_maxrss / 1024
    return {
        "executor": data["executor"],
        "seconds": round(seconds, 1),
        "points": points,
        "points_per_s": round(points / seconds),
        "peak_rss_mb": round(rss),
        "partitions": data["partitions"],
        "incidents": data["incidents"],
        "anomalies": data["anomalies"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--partition-days", type=int, default=15)
    ap.add_argument("--executors", nargs="+", default=["in-process", "local:2"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    home = synth.build(args.days, quiet=args.json)
    results = []
    with tempfile.TemporaryDirectory(prefix="wc-batch-bench-") as tmp:
        outs = []
        for name in args.executors:
            out = Path(tmp) / name.replace(":", "-")
            extra = [] if name == "in-process" else ["--scheduler", name]
            # the day-by-day detection state (median and contextual) is part of the work: none
            # on disk at the start
            for part in ("daystate", "ctxstate"):
                shutil.rmtree(home / "_cache" / part, ignore_errors=True)
            res = run(home, out, args.days, args.partition_days, extra)
            outs.append(out)
            results.append(res)
            if not args.json:
                print(
                    f"{args.days} days, {res['points']:,} points, {res['partitions']} partitions "
                    f"({args.partition_days}-day): {res['executor']}: {res['seconds']} s "
                    f"({res['points_per_s']:,} points/s), peak RSS {res['peak_rss_mb']} MB, "
                    f"{res['incidents']} incidents from {res['anomalies']} anomalies",
                    flush=True,
                )
        same = all(
            (o / f).read_bytes() == (outs[0] / f).read_bytes()
            for o in outs[1:]
            for f in ("incidents.parquet", "causes.parquet")
        )
    if args.json:
        print(json.dumps({"results": results, "identical_outputs": same}, indent=1))
    else:
        print(f"incidents.parquet and causes.parquet identical across executors: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
