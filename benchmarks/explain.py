"""``explain`` latency on a 30-day, 1002-service warehouse (issue 5 targets: warm ≤ 300 ms, cold ≤ 1.5 s).

* warm: ``explain_at`` called repeatedly in one process (the API server's case);
* analysis: ``whatchanged analyze`` in a new process on a warehouse nobody analysed yet — the
  one-time cost of the day-by-day detection state that ``ingest`` pays in the background after
  new data (engine/daystate.py);
* cold: ``whatchanged explain --at … --json`` in a new process (the CLI's case) with the day
  states in place but the question never asked (no cached incidents: the target), then with
  the last day's state missing too (a question right after a commit of today's data, before
  the background analysis finished), then repeated (the on-disk incident cache answers);
* bare: a plain DuckDB query fetching every metric sample of the same 2-hour window,
  measured in the same run, as the floor to compare with;
* without the contextual detector (``WHATCHANGED_CONTEXTUAL=0``): the analysis and the cold
  question again (``--no-contextual`` skips them), for issue 18's budget (the analysis with
  it within twice the analysis without it).

Run alone: ``python benchmarks/explain.py [DAYS]`` (the warehouse is built once by
``benchmarks/synth.py`` and cached under ``benchmarks/out/``).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth

from whatchanged.engine.explain import explain_at
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse

AT = synth.INCIDENT  # 19:23 Paris


#: CPU seconds (user + system) of each new process run by :func:`_run`, in order: on a busy
#: machine the wall time includes waiting for a core, the CPU time does not
CPU: list[float] = []


def _run(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def _forget_questions(home: Path) -> None:
    for f in (home / "_cache").glob("incidents-*.json"):
        f.unlink()


def main() -> None:
    days = next((int(a) for a in sys.argv[1:] if a.isdigit()), 30)
    home = synth.build(days)
    settings = load_settings(home=home, tz="Europe/Paris")
    exe = str(Path(sys.executable).parent / "whatchanged")
    wh = Warehouse(home)
    con = wh.snapshot()
    lo, hi = AT - timedelta(hours=1), AT + timedelta(hours=1)
    bare = []
    for _ in range(5):
        t = time.perf_counter()
        rows = con.sql(
            f"SELECT * FROM metrics WHERE ts BETWEEN TIMESTAMPTZ '{lo.isoformat()}' AND TIMESTAMPTZ '{hi.isoformat()}'"
        ).to_arrow_table()
        bare.append(time.perf_counter() - t)
    n_rows = rows.num_rows
    shutil.rmtree(home / "_cache", ignore_errors=True)  # nobody analysed this warehouse yet
    analysis_s = _run([exe, "analyze", "--home", str(home)])
    argv = [exe, "explain", "--at", AT.isoformat(), "--tz", "Europe/Paris", "--home", str(home), "--json"]
    cold_first = []
    for _ in range(5):  # a question never asked on this data version, from a new process
        _forget_questions(home)
        cold_first.append(_run(argv))
    cold_first_cpu = CPU[-5:]
    states = sorted((home / "_cache" / "daystate").glob("*.npz"))
    cold_today = []
    for _ in range(3):  # ... right after a commit of the last day's data, before the background analysis
        _forget_questions(home)
        states[-1].unlink()
        cold_today.append(_run(argv))
        states = sorted((home / "_cache" / "daystate").glob("*.npz"))
    cold_repeat = [_run(argv) for _ in range(3)]  # the same question again: the incident cache
    _forget_questions(home)
    first = time.perf_counter()
    expl = explain_at(con, AT, settings=settings)
    first_s = time.perf_counter() - first
    warm = []
    for _ in range(7):
        t = time.perf_counter()
        expl = explain_at(con, AT, settings=settings)
        warm.append(time.perf_counter() - t)
    top = expl.causes[0] if expl.causes else None
    b, w = statistics.median(bare), statistics.median(warm)
    cf, ct, cr = statistics.median(cold_first), statistics.median(cold_today), statistics.median(cold_repeat)
    print(
        f"explain on {days} days × 1002 services × 3 metrics (top cause: "
        f"{top.category + ' ' + (top.change_id or top.component or '') if top else '-'})"
    )
    print(f"  bare DuckDB 2-hour window ({n_rows:,} rows): median {b * 1000:.0f} ms")
    print(f"  analysis of the whole warehouse (whatchanged analyze, once after ingest): {analysis_s:.1f} s")
    print(
        f"  cold (new process, CLI), question never asked: median {cf * 1000:.0f} ms of "
        f"{', '.join(f'{x * 1000:.0f}' for x in cold_first)}  (target ≤ 1500 ms), {cf / b:.1f}× the bare query"
    )
    print(
        f"    its CPU time (user + system): median {statistics.median(cold_first_cpu) * 1000:.0f} ms"
        f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"  cold, last day's state not computed yet: median {ct * 1000:.0f} ms of "
        f"{', '.join(f'{x * 1000:.0f}' for x in cold_today)}"
    )
    print(
        f"  cold, question asked before (incident cache): median {cr * 1000:.0f} ms, {cr / b:.1f}× the bare query"
    )
    print(f"  first call in a process (states cached, question new): {first_s * 1000:.0f} ms")
    print(
        f"  warm (in-process)       : median {w * 1000:.0f} ms  (target ≤ 300 ms), {w / b:.1f}× the bare query"
    )
    if "--no-contextual" not in sys.argv:
        without_contextual(home, exe, argv, analysis_s)


def without_contextual(home: Path, exe: str, argv: list[str], analysis_s: float) -> None:
    """The same without the contextual detector on the fleet (``WHATCHANGED_CONTEXTUAL=0``): the
    issue-18 budget is the analysis with it within twice the analysis without it."""
    env = {**os.environ, "WHATCHANGED_CONTEXTUAL": "0"}
    days = len([f for f in (home / "_cache" / "ctxstate").glob("*.npz") if not f.name.endswith(".carry.npz")])
    shutil.rmtree(home / "_cache", ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([exe, "analyze", "--home", str(home)], check=True, capture_output=True, env=env)
    median_only = time.perf_counter() - t
    cold = []
    for _ in range(5):
        _forget_questions(home)
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        cold.append(time.perf_counter() - t)
    print(
        f"without the contextual detector on the fleet (WHATCHANGED_CONTEXTUAL=0, {days} days with it above):"
    )
    print(
        f"  analysis: {median_only:.1f} s; with it {analysis_s:.1f} s = {analysis_s / median_only:.2f}× "
        f"(budget 2×), {(analysis_s - median_only) / max(days, 1):.2f} s a day for the contextual part"
    )
    print(
        f"  cold explain, question never asked: median {statistics.median(cold) * 1000:.0f} ms of "
        f"{', '.join(f'{x * 1000:.0f}' for x in cold)}"
    )


if __name__ == "__main__":
    main()
