"""Ingest benchmark: a day of 1-minute metrics for 1002 services, as one long CSV.

Generates (seeded) 1002 services × 3 metrics × 1440 minutes ≈ 4.3 M rows:

* ``bandwidth_out_mbps`` — daily seasonality (low at night, peak in the
  evening) times a per-service scale, with noise; two decimals, as SNMP
  exporters and Grafana CSV exports give;
* ``latency_ms`` — log-normal around a per-service level, one decimal;
* ``error_rate`` — mostly small ratios with occasional bursts, four decimals.

Then it measures, in the same run and on the same file (warm page cache):

1. a bare ``pyarrow.csv.read_csv`` → ``pyarrow.parquet.write_table``
   conversion (the floor any CSV → Parquet tool pays);
2. ``whatchanged`` ingest through the real pipeline (detect, read, validate,
   commit) into a fresh warehouse, in a subprocess, so its peak RSS
   (``ru_maxrss``) is its own;
3. a second ingest of the same file (must add 0 rows).

and prints rows/s, the ratio to the bare conversion, peak MB and the bytes
per stored point.  ``--repeat N`` measures 1 and 2 N times, alternating, and
prints each run and the medians (the ratio is noisy on a shared 2-core machine);
the ratio of CPU seconds is printed too, as it depends less on the load.  Run
alone: ``python benchmarks/ingest.py [--keep DIR] [--repeat N]``.

``--year`` measures streaming ingest at year scale instead (issue 17): the year of
:mod:`yearsynth` (365 days × 1002 services × 3 metrics at 1 minute, 1.58 billion rows) written
once as twelve monthly Parquet files (and January as CSV, 5.6 GB) under
``benchmarks/out/year-months/``; then ``whatchanged ingest`` of the twelve files in one
commit, a re-ingest of December (adds nothing) and the CSV month, each in a new process with
its peak RSS (target < 2 GB) and rows/s.  ``--months N`` takes the first N months only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

SERVICES = 1002
MINUTES = 1440
DAY_START = np.datetime64("2010-11-17T00:00:00", "s")
SEED = 20101117


def generate(path: Path, *, services: int = SERVICES, minutes: int = MINUTES, seed: int = SEED) -> int:
    """Write the long CSV; return its row count."""
    rng = np.random.default_rng(seed)
    minute = np.arange(minutes)
    hour = minute / 60.0
    # traffic: trough at 05:00, peak around 21:00
    season = 0.55 + 0.45 * np.sin((hour - 11.0) / 24.0 * 2 * np.pi)
    names = np.array([f"svc-{i:04d}" for i in range(services)])
    scale = rng.lognormal(mean=np.log(40.0), sigma=0.8, size=services)
    lat_level = rng.lognormal(mean=np.log(60.0), sigma=0.5, size=services)
    err_level = rng.beta(1.2, 800.0, size=services)

    bw = season[:, None] * scale[None, :] * rng.normal(1.0, 0.06, size=(minutes, services))
    bw = np.round(np.clip(bw, 0, None), 2)
    lat = lat_level[None, :] * (1.3 - 0.3 * season[:, None]) * rng.lognormal(0, 0.15, (minutes, services))
    lat = np.round(lat, 1)
    bursts = rng.random((minutes, services)) < 0.002
    err = err_level[None, :] * rng.gamma(2.0, 0.5, (minutes, services)) + bursts * rng.uniform(0.02, 0.3)
    err = np.round(np.clip(err, 0, 1), 4)

    metrics = ["bandwidth_out_mbps", "latency_ms", "error_rate"]
    values = np.stack([bw, lat, err], axis=2)  # (minute, service, metric): exporter order
    n = minutes * services * len(metrics)
    stamps = (DAY_START + minute.astype("timedelta64[m]")).astype("datetime64[s]")
    iso = pa.array(np.datetime_as_string(stamps, unit="s", timezone="UTC"))
    m_idx = np.repeat(np.arange(minutes), services * len(metrics))
    s_idx = np.tile(np.repeat(np.arange(services), len(metrics)), minutes)
    k_idx = np.tile(np.arange(len(metrics)), minutes * services)
    table = pa.table(
        {
            "timestamp": pc.take(iso, pa.array(m_idx)),
            "service": pc.take(pa.array(names), pa.array(s_idx)),
            "metric": pc.take(pa.array(metrics), pa.array(k_idx)),
            "value": pa.array(values.reshape(-1)),
        }
    )
    pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(quoting_style="none"))
    return n


_BARE = """
import json, sys, time
import pyarrow.csv as pcsv, pyarrow.parquet as pq
t, c = time.perf_counter(), time.process_time()
pq.write_table(pcsv.read_csv(sys.argv[1]), sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""


def bare_conversion(csv_path: Path, out: Path) -> dict[str, float]:
    """Seconds (wall and CPU) of the plain pyarrow CSV → Parquet conversion (defaults), in
    a fresh process like the ingest, so both start with the same cold allocator and thread pool."""
    done = subprocess.run(
        [sys.executable, "-c", _BARE, str(csv_path), str(out)], capture_output=True, text=True, check=True
    )
    report: dict[str, float] = json.loads(done.stdout)
    return report


_CHILD = """
import json, sys, time
from pathlib import Path
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest
wh = Warehouse(sys.argv[1])
t, c = time.perf_counter(), time.process_time()
s = ingest(wh, [Path(sys.argv[2])], ReadContext())
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
                  "rows_in": s.result.rows_in["metrics"], "added": s.result.rows_added["metrics"],
                  "pandas": "pandas" in sys.modules}))
"""


def run_ingest(home: Path, csv_path: Path) -> tuple[dict[str, float], float]:
    """Ingest in a child process: (its report, its peak RSS in MB)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), str(csv_path)], stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"ingest failed with exit code {proc.returncode}")
    return json.loads(out), usage.ru_maxrss / 1024


# -- a year in monthly files (issue 17: streaming ingest) ------------------------------------
MONTHS_DIR = Path(__file__).resolve().parent / "out" / "year-months"


def month_file(month: int, fmt: str) -> Path:
    """The cached monthly file of 2010 (``fmt`` parquet or csv), written from the year's
    generator (:mod:`yearsynth`: the same values as ``warehouse-year``) a day at a time."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from datetime import timedelta

    import pyarrow.parquet as pq
    import synth
    import yearsynth

    path = MONTHS_DIR / fmt / f"metrics-2010-{month:02d}.{fmt}"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    plan = {d: (kind, k) for k, (d, kind) in enumerate(yearsynth.incident_days())}
    writer: Any = None
    try:
        with open(tmp, "wb") as sink:
            for d in range(yearsynth.DAYS):
                day = yearsynth.FIRST_DAY + timedelta(days=d)
                if day.month != month:
                    continue
                rng = np.random.default_rng([yearsynth.SEED, d])
                shocks = [yearsynth.shocks_and_events(day, *plan[day])[0]] if day in plan else []
                table = synth.day_metrics(day, rng, incident=day == yearsynth.NIGHT_DAY, shocks=shocks)
                table = table.select(["ts", "service", "metric", "value"]).rename_columns(
                    ["timestamp", "service", "metric", "value"]
                )
                if fmt == "parquet":
                    if writer is None:
                        writer = pq.ParquetWriter(sink, table.schema, compression="zstd")
                    writer.write_table(table, row_group_size=1 << 20)
                else:
                    pcsv.write_csv(
                        table,
                        sink,
                        write_options=pcsv.WriteOptions(include_header=writer is None, quoting_style="none"),
                    )
                    writer = True
            if fmt == "parquet" and writer is not None:
                writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def run_cli_ingest(home: Path, paths: list[Path]) -> dict[str, Any]:
    """``whatchanged ingest PATHS --no-analyze --json`` in a new process: its report, wall
    seconds, peak RSS (MB) and the load average after it."""
    exe = Path(sys.executable).parent / "whatchanged"
    argv = [str(exe), "ingest", *map(str, paths), "--home", str(home), "--no-analyze", "--json"]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synth

    seconds, rss, text = synth.run_measured(argv)
    report: dict[str, Any] = json.loads(text)
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": rss,
        "rows_read": report["rows_read"].get("metrics", 0),
        "rows_added": report["rows_added"].get("metrics", 0),
        "load": round(os.getloadavg()[0], 1),
    }


def year_main(args: argparse.Namespace) -> None:
    """Ingest the year's monthly Parquet files in one run, re-ingest a month, and ingest
    monthly CSV files; print peak RSS and throughput (target: peak RSS < 2 GB)."""
    months = list(range(1, args.months + 1))
    if months:
        _year_parquet(months)
    if args.csv_months:
        _year_csv(args.csv_months)


def _year_parquet(months: list[int]) -> None:
    t = time.perf_counter()
    files = [month_file(m, "parquet") for m in months]
    size = sum(f.stat().st_size for f in files)
    print(
        f"{len(files)} monthly Parquet files, {size / 1e9:.2f} GB (generated or cached in "
        f"{time.perf_counter() - t:.0f} s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="wc-year-ingest-", dir=MONTHS_DIR) as tmp:
        home = Path(tmp) / "warehouse"
        r = run_cli_ingest(home, files)
        points = r["rows_read"]
        per_day: dict[str, int] = {}
        for f in (home / "metrics").rglob("*.parquet"):
            per_day[f.parent.name] = per_day.get(f.parent.name, 0) + 1
        stored = sum(f.stat().st_size for f in (home / "metrics").rglob("*.parquet"))
        print(
            f"ingest of {len(files)} monthly Parquet files in one commit: {points:,} rows in {r['seconds']:.0f} s, "
            f"{points / r['seconds']:,.0f} rows/s, peak RSS {r['peak_rss_mb']} MB (target < 2000), "
            f"{r['rows_added']:,} added, {len(per_day)} days, files per day {min(per_day.values())}–"
            f"{max(per_day.values())}, {stored / max(points, 1):.2f} bytes/point (load {r['load']})",
            flush=True,
        )
        again = run_cli_ingest(home, files[-1:])
        print(
            f"re-ingest of {files[-1].name}: {again['rows_read']:,} rows read, {again['rows_added']} added "
            f"(expected 0), {again['seconds']:.0f} s, peak RSS {again['peak_rss_mb']} MB (load {again['load']})",
            flush=True,
        )


def _year_csv(months: int) -> None:
    csvs = [month_file(m, "csv") for m in range(1, months + 1)]
    size = sum(f.stat().st_size for f in csvs)
    with tempfile.TemporaryDirectory(prefix="wc-year-ingest-", dir=MONTHS_DIR) as tmp:
        r = run_cli_ingest(Path(tmp) / "warehouse", csvs)
        print(
            f"ingest of {len(csvs)} monthly CSV file(s) ({size / 1e9:.1f} GB): {r['rows_read']:,} rows in "
            f"{r['seconds']:.0f} s, {r['rows_read'] / r['seconds']:,.0f} rows/s, peak RSS "
            f"{r['peak_rss_mb']} MB (target < 2000) (load {r['load']})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=SERVICES)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure N times, bare and ingest alternating; report medians"
    )
    parser.add_argument(
        "--year", action="store_true", help="ingest 2010 from monthly files (cached under benchmarks/out)"
    )
    parser.add_argument("--months", type=int, default=12, help="with --year: the first N months")
    parser.add_argument("--csv-months", type=int, default=1, help="with --year: also N months of CSV")
    args = parser.parse_args()
    if args.year:
        year_main(args)
        return
    with tempfile.TemporaryDirectory(prefix="wc-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        csv_path = work / "metrics.csv"
        t = time.perf_counter()
        n = generate(csv_path, services=args.services)
        print(
            f"generated {n:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB CSV) in {time.perf_counter() - t:.1f} s"
        )
        home = work / "warehouse"
        runs = []
        for i in range(max(1, args.repeat)):
            load = os.getloadavg()[0]
            bare = bare_conversion(csv_path, work / "bare.parquet")
            shutil.rmtree(home, ignore_errors=True)  # a fresh warehouse, also with --keep
            first, peak_mb = run_ingest(home, csv_path)
            ratio = bare["seconds"] / first["seconds"]  # of rows/s: the same rows
            runs.append((bare, first, peak_mb, ratio))
            if args.repeat > 1:
                print(
                    f"run {i + 1}: bare {bare['seconds']:.2f} s (cpu {bare['cpu']:.2f} s), "
                    f"ingest {first['seconds']:.2f} s (cpu {first['cpu']:.2f} s), ratio {ratio:.2f}, "
                    f"peak {peak_mb:,.0f} MB, load {load:.1f}",
                    flush=True,
                )
        again, _ = run_ingest(home, csv_path)
        bare_size = (work / "bare.parquet").stat().st_size
        stored = sum(p.stat().st_size for p in (home / "metrics").rglob("*.parquet"))
        bare_s = statistics.median(r[0]["seconds"] for r in runs)
        ours_s = statistics.median(r[1]["seconds"] for r in runs)
        ratio = statistics.median(r[3] for r in runs)
        cpu_ratio = statistics.median(r[0]["cpu"] / r[1]["cpu"] for r in runs)
        peak_mb = max(r[2] for r in runs)
        first = runs[-1][1]
        med = " (median)" if len(runs) > 1 else ""
        print(
            f"bare pyarrow csv→parquet: {bare_s:.2f} s{med}, {n / bare_s:,.0f} rows/s, {bare_size / n:.2f} B/row"
        )
        print(f"whatchanged ingest:       {ours_s:.2f} s{med}, {first['rows_in'] / ours_s:,.0f} rows/s")
        print(f"ratio to bare conversion: {ratio:.2f}{med} (target ≥ 0.6); of CPU time: {cpu_ratio:.2f}")
        print(f"peak RSS of the ingest:   {peak_mb:,.0f} MB (target < 1500)")
        print(
            f"stored:                   {stored / 1e6:.1f} MB, {stored / first['added']:.2f} bytes/point (target ≤ 2.5)"
        )
        print(
            f"re-ingest:                {again['seconds']:.2f} s, {int(again['added'])} rows added (expected 0)"
        )
        if first["pandas"]:
            print("note: the ingest imported pandas")


if __name__ == "__main__":
    main()
