"""``explain`` latency on a 30-day, 1002-service warehouse (issue 5 targets: warm ≤ 300 ms, cold ≤ 1.5 s).

* warm: ``explain_at`` called repeatedly in one process (the API server's case);
* cold: ``whatchanged explain --at … --json`` in a new process (the CLI's case), once with an
  empty analysis cache (nobody asked about this data version yet), then repeated (the on-disk
  incident cache answers);
* bare: a plain DuckDB query fetching every metric sample of the same 2-hour window,
  measured in the same run, as the floor to compare with.

Run alone: ``python benchmarks/explain.py [DAYS]`` (the warehouse is built once by
``benchmarks/synth.py`` and cached under ``benchmarks/out/``).
"""

from __future__ import annotations

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


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    home = synth.build(days)
    settings = load_settings(home=home, tz="Europe/Paris")
    wh = Warehouse(home)
    con = wh.connect()
    lo, hi = AT - timedelta(hours=1), AT + timedelta(hours=1)
    bare = []
    for _ in range(5):
        t = time.perf_counter()
        rows = con.sql(
            f"SELECT * FROM metrics WHERE ts BETWEEN TIMESTAMPTZ '{lo.isoformat()}' AND TIMESTAMPTZ '{hi.isoformat()}'"
        ).to_arrow_table()
        bare.append(time.perf_counter() - t)
    n_rows = rows.num_rows
    shutil.rmtree(home / "_cache", ignore_errors=True)  # the first call runs detection
    first = time.perf_counter()
    expl = explain_at(con, AT, settings=settings)
    first_s = time.perf_counter() - first
    warm = []
    for _ in range(7):
        t = time.perf_counter()
        expl = explain_at(con, AT, settings=settings)
        warm.append(time.perf_counter() - t)
    top = expl.causes[0] if expl.causes else None
    exe = Path(sys.executable).parent / "whatchanged"
    argv = [
        str(exe),
        "explain",
        "--at",
        AT.isoformat(),
        "--tz",
        "Europe/Paris",
        "--home",
        str(home),
        "--json",
    ]
    shutil.rmtree(home / "_cache", ignore_errors=True)  # nobody asked about this data version yet
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    cold_first = time.perf_counter() - t
    cold = []
    for _ in range(3):  # the same question again from new processes: the on-disk cache answers
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        cold.append(time.perf_counter() - t)
    b, w, c = statistics.median(bare), statistics.median(warm), statistics.median(cold)
    print(
        f"explain on {days} days × 1002 services × 3 metrics (top cause: "
        f"{top.category + ' ' + (top.change_id or top.component or '') if top else '-'})"
    )
    print(f"  bare DuckDB 2-hour window ({n_rows:,} rows): median {b * 1000:.0f} ms")
    print(f"  first call in a process (runs detection): {first_s * 1000:.0f} ms")
    print(
        f"  warm (in-process)       : median {w * 1000:.0f} ms  (target ≤ 300 ms), {w / b:.1f}× the bare query"
    )
    print(
        f"  cold (new process, CLI), first question on this data version: {cold_first * 1000:.0f} ms"
        f"  (target ≤ 1500 ms), {cold_first / b:.1f}× the bare query"
    )
    print(
        f"  cold (new process, CLI), question asked before (disk cache): median {c * 1000:.0f} ms,"
        f" {c / b:.1f}× the bare query"
    )


if __name__ == "__main__":
    main()
