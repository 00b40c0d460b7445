"""A year of history (issue 17): 365 days × 1002 services × 3 metrics at 1-minute steps,
1.58 billion points, with incidents spread over the year (:mod:`yearsynth`).

Printed, each with the load average beside it:

* storage bytes per point (the committed metrics files over the points; target ≤ 2.5);
* analysis: ``whatchanged analyze`` of the whole year in a new process, day states removed
  first, with its peak RSS (target ≤ 10 min);
* explain at an incident's onset on a day in January and one in December: cold (``whatchanged
  explain --at … --json`` in a new process, the question never asked) and warm (``explain_at``
  again in one process) (targets ≤ 1 s and ≤ 100 ms);
* the year-to-date availability of the probe of ``svc-0000`` (``whatchanged availability``);
* the weekly review of a week in the middle of the year (``dashboards.views.weekly_view``),
  computed once in a process with nothing cached but the day states;
* the batch of the whole year, in-process and on ``--scheduler local:2``, wall time and peak
  RSS, and whether both wrote identical incidents and causes (target ≤ 20 min, ≤ 4 GB).

Run alone: ``python benchmarks/year.py [--skip-analysis] [--skip-batch] [--bytecode] [--json]``
(``--bytecode``: see :func:`synth.bytecode`).  The
warehouse (2.2 GB) is built once under ``benchmarks/out/warehouse-year`` (about 12 minutes on
the 2-core machine); the day states it adds (about 28 MB a day) stay in its ``_cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth
import yearsynth

EXE = Path(sys.executable).parent / "whatchanged"
POINTS = 1002 * 3 * 1440 * yearsynth.DAYS


def load() -> float:
    return round(os.getloadavg()[0], 1)


def onsets() -> dict[str, datetime]:
    """An incident's onset (UTC) on the first incident day in January and the last in December."""
    days = yearsynth.incident_days()
    jan = next(d for d, _ in days if d.month == 1)
    dec = [d for d, _ in days if d.month == 12][-1]
    out = {}
    for name, day in (("january", jan), ("december", dec)):
        k = next(i for i, (d, _) in enumerate(yearsynth.incident_days()) if d == day)
        out[name] = day + timedelta(hours=1 + k % 5, minutes=17)
    return out


def explain_figures(home: Path, at: datetime) -> dict[str, Any]:
    from whatchanged.engine.explain import explain_at
    from whatchanged.engine.settings import load_settings
    from whatchanged.engine.warehouse import Warehouse

    argv = [str(EXE), "explain", "--at", at.isoformat(), "--home", str(home), "--json"]
    cold = []
    for _ in range(3):
        for f in (home / "_cache").glob("incidents-*.json"):
            f.unlink()
        cold.append(synth.run_measured(argv)[0])
    answer = json.loads(synth.run_measured(argv)[2])
    con = Warehouse(home).snapshot()
    settings = load_settings(home=home)
    explain_at(con, at, settings=settings)
    warm = []
    for _ in range(5):
        t = time.perf_counter()
        expl = explain_at(con, at, settings=settings)
        warm.append(time.perf_counter() - t)
    con.close()
    top = expl.causes[0] if expl.causes else None
    return {
        "at": at.isoformat(),
        "cold_s": [round(c, 2) for c in cold],
        "cold_median_s": round(statistics.median(cold), 2),
        "warm_median_ms": round(statistics.median(warm) * 1000),
        "top_cause": f"{top.category} {top.change_id or top.component or ''}".strip() if top else None,
        "incident": (answer.get("incident") or {}).get("id"),
        "load": load(),
    }


def weekly_seconds(home: Path, week: str) -> dict[str, Any]:
    """The weekly review of ``week`` computed once in a process (day states on disk)."""
    from whatchanged.dashboards.views import weekly_view
    from whatchanged.engine.settings import load_settings
    from whatchanged.engine.warehouse import Warehouse

    con = Warehouse(home).snapshot()
    t = time.perf_counter()
    view = weekly_view(con, week, settings=load_settings(home=home), tz="UTC")
    seconds = time.perf_counter() - t
    con.close()
    return {"week": week, "seconds": round(seconds, 2), "incidents": len(view.incidents), "load": load()}


def batch_figures(home: Path, extra: list[str], out: Path) -> dict[str, Any]:
    argv = [str(EXE), "batch", "--from", "2010-01-01T00:00:00+00:00", "--to", "2011-01-01T00:00:00+00:00"]
    argv += ["--out", str(out), "--home", str(home), "--partition-days", "15", "--json", *extra]
    for part in ("daystate", "ctxstate"):  # the analysis is part of it
        shutil.rmtree(home / "_cache" / part, ignore_errors=True)
    seconds, rss, text = synth.run_measured(argv)
    start = text.find('{\n  "from"')
    data, _ = json.JSONDecoder().raw_decode(text[start:])
    return {
        "seconds": round(seconds),
        "peak_rss_mb": rss,
        "incidents": data["incidents"],
        "anomalies": data["anomalies"],
        "partitions": data["partitions"],
        "load": load(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-analysis", action="store_true", help="keep the day states already there")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--json", action="store_true")
    synth.add_bytecode_option(ap)
    args = ap.parse_args(argv)
    home = yearsynth.build(quiet=args.json)
    compiled = yearsynth.synth.bytecode(args.bytecode)
    from whatchanged.engine.warehouse import Warehouse

    wh = Warehouse(home)
    metric_bytes = sum(os.stat(f).st_size for f in wh.files("metrics"))
    res: dict[str, Any] = {
        "bytecode": compiled,
        "points": POINTS,
        "bytes_per_point": round(metric_bytes / POINTS, 3),
        "load": load(),
    }

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    say(
        f"a year: {POINTS:,} points, {metric_bytes / 1e9:.2f} GB of metrics, {res['bytes_per_point']} bytes/point"
    )
    if not args.skip_analysis:
        shutil.rmtree(home / "_cache", ignore_errors=True)
        seconds, rss, _ = synth.run_measured([str(EXE), "analyze", "--home", str(home)])
        res["analysis"] = {"seconds": round(seconds), "peak_rss_mb": rss, "load": load()}
        say(
            f"analysis of the year (whatchanged analyze): {seconds / 60:.1f} min, peak RSS {rss} MB (load {load()})"
        )
    for name, at in onsets().items():
        res[f"explain_{name}"] = e = explain_figures(home, at)
        say(
            f"explain {name} ({at:%Y-%m-%d %H:%M} UTC, top cause {e['top_cause']}, bytecode {compiled}): new process "
            f"median {e['cold_median_s']} s of {e['cold_s']}, warm {e['warm_median_ms']} ms (load {e['load']})"
        )
    ytd = ["--service", "svc-0000", "--from", "2010-01-01", "--to", "2011-01-01", "--tz", "UTC"]
    seconds, _, text = synth.run_measured([str(EXE), "availability", *ytd, "--home", str(home), "--json"])
    avail = json.loads(text)
    res["availability"] = {"seconds": round(seconds, 2), "result": avail, "load": load()}
    say(f"availability of svc-0000 over 2010: {json.dumps(avail)[:300]} in {seconds:.2f} s (load {load()})")
    res["weekly"] = weekly_seconds(home, "2010-W26")
    say(f"weekly review of 2010-W26: {res['weekly']['seconds']} s in a process (load {load()})")
    if not args.skip_batch:
        with tempfile.TemporaryDirectory(prefix="wc-year-batch-") as tmp:
            outs = []
            for name, extra in (("in-process", []), ("local:2", ["--scheduler", "local:2"])):
                out = Path(tmp) / name.replace(":", "-")
                res[f"batch_{name}"] = b = batch_figures(home, extra, out)
                outs.append(out)
                say(
                    f"batch of the year, {name}: {b['seconds'] / 60:.1f} min, peak RSS {b['peak_rss_mb']} MB, "
                    f"{b['incidents']} incidents (load {b['load']})"
                )
            res["batch_identical"] = all(
                (outs[1] / f).read_bytes() == (outs[0] / f).read_bytes()
                for f in ("incidents.parquet", "causes.parquet")
            )
            say(f"batch outputs identical in-process and on local:2: {res['batch_identical']}")
    res["finished"] = datetime.now(UTC).isoformat()
    if args.json:
        print(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
