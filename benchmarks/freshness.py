"""A commit a minute and the question right after it (issue 17: new-process explain ≤ 1 s p95).

A warehouse with eight days of history (1002 services × 3 metrics, :mod:`synth`, analysed
once, as a running deployment has it) then receives the next day — the reference night's —
one minute at a time, as ``whatchanged collect`` commits it: each commit holds that minute's
3006 samples (and the check states of that minute), the day compressed in time (the next
commit follows as soon as the previous one and its question are done).  After each commit the
analysis of the new minutes (one at a time: ``api/cli_analyze.py``) and, when a day holds more
than twelve files, a compaction (``engine/compact.py``) are started in the background, as
``collect`` does; the next commit waits for that analysis to be done (commits are a minute
apart in reality: how long it waited is printed).  Every ``--every`` commits, ``whatchanged explain --at <the minute just
committed> --json`` runs in a new process, right after the commit: the background analysis has
usually not reached that minute, so the question extends the day's detection state itself
(``engine/daystate.py``) and reads the contextual detector's results of the day from before the
commit (``engine/ctxchain.py``, ``STALE_STEPS``).

Printed: commit latency and new-process explain latency (median, p95, max), how many files
the day's partition held at most and at the end before the last compaction, and after it
(``whatchanged compact``), and the load average.

``--start 18:00 --minutes 120 --every 3`` commits the day up to 18:00 at once (analysed, as the
background analysis leaves it) and asks during the reference night's incident (18:23 UTC):
away from an incident ``explain`` also looks for deviations the detector cannot see
(``engine/origin.py``), a scan of two days of samples.

Run alone: ``python benchmarks/freshness.py [--start HH:MM] [--minutes 1440] [--every 20] [--bytecode]`` (the history is
built once under ``benchmarks/out/freshness-base``; each run works on a fresh copy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth

from whatchanged.api import cli_analyze, cli_compact
from whatchanged.engine.compact import partitions
from whatchanged.engine.warehouse import Warehouse

HISTORY_DAYS = 8
BASE = synth.OUT / "freshness-base"
RUN = synth.OUT / "freshness-run"
DAY = synth.END_DAY  # the reference night's day, committed minute by minute
EXE = Path(sys.executable).parent / "whatchanged"


def build_base() -> Path:
    """Eight days of history before :data:`DAY`, inventory and changes, analysed (cached)."""
    done = BASE / "BASE_DONE"
    if synth.cached(done, history_days=HISTORY_DAYS):
        return BASE
    shutil.rmtree(BASE, ignore_errors=True)
    wh = Warehouse(BASE)
    wh.init()
    _states, changes = synth.night_events()
    wh.commit({"services": synth.inventory(), "changes": changes}, source="freshness")
    rng = np.random.default_rng(7)
    for d in range(HISTORY_DAYS):
        day = DAY - timedelta(days=HISTORY_DAYS - d)
        wh.commit(
            {"metrics": synth.day_metrics(day, rng, incident=False)}, source=f"freshness {day:%Y-%m-%d}"
        )
    subprocess.run([str(EXE), "analyze", "--home", str(BASE)], check=True, capture_output=True)
    synth.mark_built(done, history_days=HISTORY_DAYS)
    return BASE


def minutes_of(table: pa.Table, column: str) -> tuple[pa.Table, np.ndarray]:
    """``table`` sorted by minute of :data:`DAY`, and where each minute starts."""
    minute = pc.divide(
        pc.subtract(table.column(column).cast(pa.int64()), int(DAY.timestamp() * 1e6)), 60_000_000
    )
    order = pc.sort_indices(minute)
    table = table.take(order)
    m = np.asarray(minute.take(order))
    return table, np.searchsorted(m, np.arange(1441))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name}: n={len(ms)}, median {statistics.median(ms):.0f} ms, p95 {pct(ms, 95):.0f} ms, "
        f"max {max(ms):.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="00:00", help="HH:MM (UTC): the day before it is committed at once")
    ap.add_argument("--minutes", type=int, default=1440, help="minutes of the day to commit one by one")
    ap.add_argument("--every", type=int, default=20, help="ask explain after every N-th commit")
    ap.add_argument("--json", action="store_true")
    synth.add_bytecode_option(ap)
    args = ap.parse_args(argv)
    compiled = synth.bytecode(args.bytecode)
    build_base()
    shutil.rmtree(RUN, ignore_errors=True)
    shutil.copytree(BASE, RUN)
    wh = Warehouse(RUN)
    rng = np.random.default_rng(17)
    metrics, m_at = minutes_of(synth.day_metrics(DAY, rng, incident=True), "ts")
    states, s_at = minutes_of(synth.night_events()[0], "ts")
    commit_s: list[float] = []
    explain_s: list[float] = []
    most_files = 0
    part = ("metrics", f"date={DAY.date().isoformat()}")
    loads = [os.getloadavg()[0]]
    env = {**os.environ, "WHATCHANGED_NO_ANALYZE": "1"}
    hh, mm = (int(v) for v in args.start.split(":"))
    first = hh * 60 + mm
    if first:  # the day so far, collected and analysed before the run
        wh.commit({"metrics": metrics.slice(0, m_at[first]), "states": states.slice(0, s_at[first])})
        subprocess.run([str(EXE), "analyze", "--home", str(RUN)], check=True, capture_output=True)
    waited_s: list[float] = []
    for m in range(first, min(1440, first + args.minutes)):
        # a minute apart in reality: the analysis of the previous commit is done before the next
        t = time.perf_counter()
        while _analysing(RUN):
            time.sleep(0.02)
        waited_s.append(time.perf_counter() - t)
        tables = {"metrics": metrics.slice(m_at[m], m_at[m + 1] - m_at[m])}
        if s_at[m + 1] > s_at[m]:
            tables["states"] = states.slice(s_at[m], s_at[m + 1] - s_at[m])
        t = time.perf_counter()
        wh.commit(tables, source="collect:freshness")
        commit_s.append(time.perf_counter() - t)
        cli_analyze.start_background(wh.home)  # as collect does after a pass: the analysis
        cli_compact.start_background(wh.home)  # of the new minutes, and a compaction when due
        most_files = max(most_files, len(partitions(wh).get(part, [])))
        if (m + 1 - first) % args.every == 0:
            at = DAY + timedelta(minutes=m)
            argv_ = [str(EXE), "explain", "--at", at.isoformat(), "--home", str(RUN), "--json"]
            t = time.perf_counter()
            subprocess.run(argv_, check=True, capture_output=True, env=env)
            explain_s.append(time.perf_counter() - t)
            loads.append(os.getloadavg()[0])
            if not args.json and len(explain_s) % 12 == 0:
                print(
                    f"  {at:%H:%M}: {m + 1 - first} commits, explain {explain_s[-1] * 1000:.0f} ms, "
                    f"files today {len(partitions(wh).get(part, []))}",
                    flush=True,
                )
    time.sleep(1.0)
    while (RUN / "_compact").is_dir() and _compacting(RUN):
        time.sleep(0.5)
    files_end = len(partitions(wh).get(part, []))
    subprocess.run([str(EXE), "compact", "--home", str(RUN), "--grace", "0"], check=True, capture_output=True)
    files_after = len(partitions(wh).get(part, []))
    out = {
        "minutes": args.minutes,
        "samples_per_commit": int(m_at[1] - m_at[0]),
        "commit_ms": {k: round(pct(commit_s, q) * 1000) for k, q in (("p50", 50), ("p95", 95), ("max", 100))},
        "explain_ms": {
            k: round(pct(explain_s, q) * 1000) for k, q in (("p50", 50), ("p95", 95), ("max", 100))
        },
        "explains": len(explain_s),
        "analysis_wait_ms": {k: round(pct(waited_s, q) * 1000) for k, q in (("p50", 50), ("max", 100))},
        "files_today_most": most_files,
        "files_today_end": files_end,
        "files_today_after_compact": files_after,
        "load_average": {"min": min(loads), "max": max(loads), "end": os.getloadavg()},
        "bytecode": compiled,
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(
            f"{len(commit_s)} commits of one minute from {args.start} UTC ({out['samples_per_commit']} samples each)"
        )
        print("  " + line("commit", commit_s))
        print(
            "  "
            + line("explain in a new process right after a commit", explain_s)
            + "  (target p95 ≤ 1000 ms)"
        )
        print(
            "  the background analysis still running at the next commit (waited for): "
            f"median {out['analysis_wait_ms']['p50']} ms, max {out['analysis_wait_ms']['max']} ms"
        )
        print(
            f"  files in the day's partition: at most {most_files} during the day (background compaction), "
            f"{files_end} at the end, {files_after} after 'whatchanged compact'"
        )
        print(
            f"  load average during the run: {min(loads):.1f}–{max(loads):.1f} (1 min); bytecode {compiled}"
        )
    return 0


def _analysing(home: Path) -> bool:
    """Whether a background analysis of ``home`` holds its lock (``api/cli_analyze.py``) or is
    still starting (a process started before it takes the lock: without this, a commit right
    after ``start_background`` did not wait)."""
    from whatchanged.engine.storage import held_by_other

    if held_by_other(home / "_cache" / "analyze"):
        return True
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if b"analyze" in args and os.fsencode(str(home)) in args:
            return True
    return False


def _compacting(home: Path) -> bool:
    """Whether a background compaction holds the lock."""
    from whatchanged.engine.storage import held_by_other

    return held_by_other(home / "_compact")


if __name__ == "__main__":
    sys.exit(main())
