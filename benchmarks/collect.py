"""Pull throughput and answer lag of ``whatchanged collect`` from a REAL Prometheus.

1002 services × 3 metrics at a 60 s step (``--hours`` of them, default 6) are written as
OpenMetrics, backfilled into a Prometheus started on a loopback port
(``promtool tsdb create-blocks-from openmetrics``), then:

* **throughput**: one ``collect`` pass pulls everything into an empty warehouse — samples per
  second from Prometheus's ``query_range`` into committed Parquet;
* **lag**: with the cursor one step short of the end, one pass pulls the newest minute (what
  ``collect --every 60s`` does each minute), then ``explain`` is asked about that minute.  A
  sample is answerable ``delay`` + up to ``every`` (waiting for the next pass) + pass time +
  explain time after its timestamp; the last two are measured here.

Needs Debian's ``prometheus`` (``make live-servers``).  ``python benchmarks/collect.py --hours 6``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

METRICS = ("bandwidth_mbps", "latency_ms", "error_rate")
END = datetime(2010, 11, 17, 23, 59, tzinfo=UTC)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_night(path: Path, *, services: int, hours: int, seed: int = 0) -> tuple[int, int, int]:
    rng = np.random.default_rng(seed)
    steps = hours * 60
    first = int((END - timedelta(minutes=steps - 1)).timestamp())
    times = first + 60 * np.arange(steps)
    level = {"bandwidth_mbps": 200.0, "latency_ms": 120.0, "error_rate": 0.5}
    n = 0
    with open(path, "w") as f:
        for metric in METRICS:
            f.write(f"# TYPE {metric} gauge\n")
            for i in range(services):
                values = np.round(level[metric] * (1 + 0.05 * rng.standard_normal(steps)), 2)
                lab = f'{metric}{{service="svc-{i:04d}",datacenter="P19"}}'
                f.write("".join(f"{lab} {v} {t}\n" for v, t in zip(values, times, strict=True)))
                n += steps
        f.write("# EOF\n")
    return n, first, int(times[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--services", type=int, default=1002)
    args = ap.parse_args()
    prom, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not promtool:
        print("prometheus/promtool not installed: run make live-servers", file=sys.stderr)
        return 1
    from whatchanged.api.cli_explain import explain_json_at
    from whatchanged.engine.settings import load_settings
    from whatchanged.engine.warehouse import Warehouse
    from whatchanged.ingest.collect import Collector
    from whatchanged.ingest.sources import PrometheusSource, SourcesFile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        samples, first, last = write_night(root / "night.om", services=args.services, hours=args.hours)
        t1 = time.perf_counter()
        files = [str(root / "night.om"), str(root / "tsdb")]
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h", *files],
            check=True,
            capture_output=True,
        )
        t2 = time.perf_counter()
        print(f"{samples} samples written in {t1 - t0:.1f} s, backfilled by promtool in {t2 - t1:.1f} s")
        port = _port()
        (root / "prometheus.yml").write_text("global: {}\n")
        proc = subprocess.Popen(
            [
                prom,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                "--storage.tsdb.retention.time=50y",
                "--query.lookback-delta=30s",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    print("prometheus did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            start = datetime.fromtimestamp(first, UTC)

            def source(until: int) -> SourcesFile:
                src = PrometheusSource(
                    name="prom",
                    url=url,
                    queries=list(METRICS),
                    step=timedelta(seconds=60),
                    start=start,
                    until=datetime.fromtimestamp(until, UTC),
                    chunk=timedelta(hours=6),
                )
                return SourcesFile(prometheus=[src])

            wh = Warehouse(root / "wh")
            # throughput: everything but the last minute, into an empty warehouse
            c = Collector(wh, source(last - 60))
            t3 = time.perf_counter()
            (out,) = c.run_pass()
            t4 = time.perf_counter()
            c.close()
            pulled = out.rows_added.get("metrics", 0)
            print(
                f"pull: {pulled} samples in {t4 - t3:.2f} s = {pulled / (t4 - t3):,.0f} samples/s "
                f"({out.commits} commits)"
            )
            # lag: the newest minute, as collect --every 60s pulls it, then explain at that minute
            c = Collector(wh, source(last))
            t5 = time.perf_counter()
            (out,) = c.run_pass()
            t6 = time.perf_counter()
            c.close()
            at = datetime.fromtimestamp(last, UTC).isoformat()
            explain_json_at(load_settings(home=wh.home), at)
            t7 = time.perf_counter()
            print(
                f"newest minute: pass {t6 - t5:.2f} s ({out.rows_added.get('metrics', 0)} samples), "
                f"explain at it {t7 - t6:.2f} s (cold, first question) -> answerable "
                f"{t7 - t5:.2f} s after the pass starts (+ delay + up to one --every interval)"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
