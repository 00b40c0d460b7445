"""Detection speed: 1002 services × 3 metrics at 1-minute steps, over 1 day and over 30 days.

Run alone: ``.venv/bin/python benchmarks/detect.py [--days 1 30] [--json]``.

A seeded warehouse is generated in a temporary folder (in a child process,
one commit per day, through :meth:`Warehouse.commit`), then
:func:`whatchanged.engine.detect.detect_anomalies` runs online over the whole
range in this process.  Printed: wall time, points per second and this
process's peak RSS (generation excluded: it runs in the child).  Targets on
the 2-core reference machine: 1 day < 10 s, 30 days < 2 min and < 4 GB.

``--contextual`` instead prints what the single-series contextual detector
(:mod:`whatchanged.engine.contextual`) costs per series and day of 1-minute
data, whole and without its fine novelty, and what that would be for the
fleet's 1002 × 3 series (issue 18: why the fleet does not run it yet).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

SERVICES = 1002
METRICS = ("bandwidth_mbps", "cpu_pct", "error_rate")
DAY0 = datetime(2010, 10, 18, tzinfo=UTC)


def generate(home: str, days: int, seed: int = 0) -> None:
    from whatchanged.engine.warehouse import Warehouse

    wh = Warehouse(home)
    wh.init()
    rng = np.random.default_rng(seed)
    names = [f"svc{i:04d}" for i in range(SERVICES)]
    wh.commit({"services": pa.table({"service": names, "datacenter": ["P19"] * SERVICES})})
    level = rng.uniform(20, 300, (SERVICES, len(METRICS)))
    minute = np.arange(1440)
    shape = 1 + 0.3 * np.cos(2 * np.pi * (minute - 1200) / 1440)
    svc = np.repeat(np.arange(SERVICES), len(METRICS) * 1440)
    met = np.tile(np.repeat(np.arange(len(METRICS)), 1440), SERVICES)
    service_col = pa.DictionaryArray.from_arrays(pa.array(svc, pa.int32()), pa.array(names)).cast(pa.string())
    metric_col = pa.DictionaryArray.from_arrays(pa.array(met, pa.int32()), pa.array(METRICS)).cast(
        pa.string()
    )
    for d in range(days):
        start = np.datetime64((DAY0 + timedelta(days=d)).replace(tzinfo=None), "us")
        ts = np.tile(start + minute.astype("timedelta64[m]"), SERVICES * len(METRICS))
        values = level[:, :, None] * shape[None, None, :]
        values = values + rng.normal(0, 0.03, values.shape) * level[:, :, None]
        if d == days - 1:  # a few planted level shifts on the last day
            values[:5, 0, 1163:1246] = 50.0
        wh.commit(
            {
                "metrics": pa.table(
                    {
                        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                        "service": service_col,
                        "metric": metric_col,
                        "value": values.ravel(),
                    }
                )
            },
            source=f"bench day {d}",
        )


def _detect(home: str, days: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from whatchanged.engine.detect import detect_anomalies
    from whatchanged.engine.warehouse import Warehouse

    con = Warehouse(home).snapshot()
    t1 = time.perf_counter()
    found = detect_anomalies(con, DAY0, DAY0 + timedelta(days=days), online=True)
    seconds = time.perf_counter() - t1
    con.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((seconds, rss_mb, len(found)))


def run(days: int) -> dict[str, object]:
    """Generate (child process), then detect (another child, so its peak RSS is detection's)."""
    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="wc-bench-")
    try:
        home = str(Path(tmp) / "warehouse")
        t0 = time.perf_counter()
        gen = ctx.Process(target=generate, args=(home, days))
        gen.start()
        gen.join()
        if gen.exitcode:
            raise SystemExit(f"generation failed with exit code {gen.exitcode}")
        gen_s = time.perf_counter() - t0
        queue = ctx.Queue()
        det = ctx.Process(target=_detect, args=(home, days, queue))
        det.start()
        seconds, rss_mb, n_found = queue.get()
        det.join()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    points = SERVICES * len(METRICS) * 1440 * days
    return {
        "days": days,
        "series": SERVICES * len(METRICS),
        "points": points,
        "generate_s": round(gen_s, 1),
        "detect_s": round(seconds, 2),
        "points_per_s": round(points / seconds),
        "peak_rss_mb": round(rss_mb),
        "anomalies": n_found,
    }


def contextual_costs(days: int = 3) -> dict[str, float]:
    """Seconds the contextual detector takes for a day of the fleet: 1002 × 3 series of
    5-minute steps (``engine/ctxchain.py``'s input), pushed day by day into the stream
    (``engine/ctxstream.py``) after ``days - 1`` days of history; the median of the later days."""
    from whatchanged.engine import ctxstream as cs
    from whatchanged.engine.contextual import CONTEXT_DEFAULT

    rows, steps = SERVICES * len(METRICS), 288
    rng = np.random.default_rng(0)
    carry = cs.new_carry(rows, int(DAY0.timestamp()) // 300, CONTEXT_DEFAULT)
    level = rng.uniform(10, 1000, rows)[:, None]
    shape = 1 + 0.3 * np.cos(2 * np.pi * (np.arange(steps) - 240) / steps)[None, :]
    seconds = []
    for _ in range(days):
        x = level * shape * rng.normal(1, 0.03, (rows, steps))
        expected = level * shape
        resid = x - expected
        absz = np.abs(resid) / (0.03 * level)
        t = time.perf_counter()
        cs.push(carry, x, absz, resid, expected, CONTEXT_DEFAULT)
        seconds.append(time.perf_counter() - t)
    return {
        "series": rows,
        "day_s": round(float(np.median(seconds[1:])), 2),
        "first_day_s": round(seconds[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, nargs="+", default=[1, 30])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--contextual", action="store_true", help="the contextual detector's cost per fleet day")
    args = ap.parse_args(argv)
    if args.contextual:
        costs = contextual_costs()
        if args.json:
            print(json.dumps(costs, indent=1))
            return 0
        print(
            f"contextual detector, {costs['series']} series of 5-minute steps: {costs['day_s']} s a day"
            f" (the first day, empty history: {costs['first_day_s']} s; load {os.getloadavg()[0]:.1f})"
        )
        return 0
    results = []
    for days in args.days:
        res = run(days)
        results.append(res)
        if not args.json:
            print(
                f"{days:3d} day(s): {res['points']:,} points in {res['detect_s']} s "
                f"({res['points_per_s']:,} points/s), peak RSS {res['peak_rss_mb']} MB, "
                f"{res['anomalies']} anomalies (generation {res['generate_s']} s)",
                flush=True,
            )
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
