"""Bounded load benchmark of the HTTP API (loopback only; stops by itself).

Starts ``whatchanged serve`` on a copy of the demo warehouse (``data/warehouse``)
or, when there is none, on a freshly generated reference night; then, for
``--duration`` seconds, ``--clients`` concurrent clients (httpx, async) send requests
while one more client POSTs a deploy every second.

``--scenario explain`` (the default): every client asks ``GET /api/v1/explain``.
Prints requests/s, p50/p95/p99 latency and the error count, then checks that
every posted deploy is visible through ``GET /api/v1/changes``.

``--scenario mixed``: each client cycles through ``/api/v1/explain``, ``/api/v1/incidents``,
an incident page, the weekly review and a service page (``/dashboards/…``), while the
deploys are posted and ``--ingests`` (default 2) ``whatchanged ingest`` processes start
together a quarter into the run, each loading a new metric for the latest day.  Prints
p50/p95/max and errors per route, and whether every write (deploys, ingested rows)
became visible.  At most ``--max-requests`` requests in all.

    python benchmarks/api_load.py [--duration 30] [--clients 20] [--scenario mixed] [--json]

Targets: explain p95 ≤ 500 ms (explain scenario); p95 ≤ 2 s on every route (mixed).
Exit code 0 when every request succeeded and every write is visible, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from whatchanged.dashboards.stale import STALE_HEADER

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "warehouse"
AT = "2010-11-17T19:23:00+01:00"
DEPLOY_DAY = "2010-11-17T12:00:00+01:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prepare_warehouse(work: Path) -> tuple[Path, str]:
    """A warehouse the benchmark may write to: a copy of the demo one, or a generated night."""
    home = work / "warehouse"
    if (DEMO / "WAREHOUSE").is_file():
        shutil.copytree(DEMO, home)
        return home, f"copy of {DEMO}"
    import pyarrow as pa

    from whatchanged.data.reference_night import generate
    from whatchanged.engine.errors import WhatchangedError
    from whatchanged.engine.warehouse import Warehouse
    from whatchanged.ingest.base import ReadContext
    from whatchanged.ingest.pipeline import read_all

    raw = work / "raw"
    raw.mkdir()
    generate(raw)
    tables: dict[str, list[pa.Table]] = {}
    skipped = []
    for unit in sorted(p for p in raw.iterdir() if not p.name.startswith(".")):
        try:  # every input a reader exists for
            read, _ = read_all([unit], ReadContext(tz="Europe/Paris"))
        except WhatchangedError:
            skipped.append(unit.name)
            continue
        for name, parts in read.items():
            tables.setdefault(name, []).extend(parts)
    Warehouse(home).commit({n: pa.concat_tables(p) for n, p in tables.items()}, source="reference-night")
    note = f"generated reference night in {home}"
    return home, note + (f" (no reader yet for: {', '.join(skipped)})" if skipped else "")


def start_server(home: Path, port: int, token: str, workers: int = 1) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "whatchanged"
    env = {**os.environ, "WHATCHANGED_HOME": str(home), "WHATCHANGED_API_TOKENS": token}
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"whatchanged serve exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("whatchanged serve did not answer within 60 s")


async def explain_client(c: httpx.AsyncClient, until: float, lat: list[float], errors: list[str]) -> None:
    while time.monotonic() < until:
        t0 = time.perf_counter()
        try:
            r = await c.get("/explain", params={"at": AT})
            if r.status_code != 200:
                errors.append(f"explain {r.status_code}: {r.text[:200]}")
        except httpx.HTTPError as exc:
            errors.append(f"explain {type(exc).__name__}: {exc}")
        lat.append(time.perf_counter() - t0)


async def poster(
    c: httpx.AsyncClient,
    until: float,
    token: str,
    run: str,
    posted: list[str],
    errors: list[str],
    every: float,
    *,
    base: str = "",
) -> None:
    if every <= 0:
        return
    n = 0
    while time.monotonic() < until:
        tick = time.monotonic()
        change_id = f"bench-{run}-{n:04d}"
        body = {
            "id": change_id,
            "timestamp": DEPLOY_DAY.replace("12:00:00", f"12:{n // 60 % 60:02d}:{n % 60:02d}"),
            "service": "www-main",
            "version": f"b{n}",
            "author": "api_load",
            "description": "load benchmark",
        }
        try:
            r = await c.post(f"{base}/changes", json=body, headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 201:
                posted.append(change_id)
            else:
                errors.append(f"post {r.status_code}: {r.text[:200]}")
        except httpx.HTTPError as exc:
            errors.append(f"post {type(exc).__name__}: {exc}")
        n += 1
        await asyncio.sleep(max(0.0, every - (time.monotonic() - tick)))


async def run_load(base: str, token: str, duration: float, clients: int, every: float) -> dict[str, Any]:
    run = secrets.token_hex(3)
    lat: list[float] = []
    errors: list[str] = []
    posted: list[str] = []
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        await c.get("/explain", params={"at": AT})  # warm-up (views, ranking model)
        started = time.monotonic()
        until = started + duration
        await asyncio.gather(
            *(explain_client(c, until, lat, errors) for _ in range(clients)),
            poster(c, until, token, run, posted, errors, every),
        )
        elapsed = time.monotonic() - started
        listed = await c.get("/changes", params={"at": DEPLOY_DAY, "before": "0s", "after": "1h"})
        visible = (
            {ch["change_id"] for ch in listed.json().get("changes", [])}
            if listed.status_code == 200
            else set()
        )
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    missing = [p for p in posted if p not in visible]
    return {
        "clients": clients,
        "duration_s": round(elapsed, 1),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(pct(0.50), 1),
        "p95_ms": round(pct(0.95), 1),
        "p99_ms": round(pct(0.99), 1),
        "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
        "errors": len(errors),
        "error_samples": errors[:5],
        "deploys_posted": len(posted),
        "deploys_missing": missing,
    }


# -- the mixed scenario -------------------------------------------------------------------------
ROUTES = ("explain", "incidents", "incident_page", "weekly", "service_page")


def write_ingest_inputs(work: Path, last_day: str, n: int, services: list[str]) -> list[Path]:
    """``n`` long-format metric CSVs for ``last_day`` (one new metric each, one sample a
    minute for every service in ``services``)."""
    import numpy as np

    rng = np.random.default_rng(19)
    out = []
    for k in range(n):
        path = work / f"ingest-{k}.csv"
        with open(path, "w") as fh:
            fh.write("timestamp,service,metric,value\n")
            for minute in range(1440):
                ts = f"{last_day}T{minute // 60:02d}:{minute % 60:02d}:00Z"
                values = rng.normal(100, 5, len(services))
                fh.writelines(
                    f"{ts},{svc},bench_load_{k},{v:.2f}\n" for svc, v in zip(services, values, strict=True)
                )
        out.append(path)
    return out


async def run_ingest(home: Path, path: Path, results: list[dict[str, Any]], errors: list[str]) -> None:
    exe = Path(sys.executable).parent / "whatchanged"
    env = {**os.environ, "WHATCHANGED_HOME": str(home), "WHATCHANGED_NO_ANALYZE": "1"}
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(exe),
        "ingest",
        str(path),
        "--json",
        "--no-analyze",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        errors.append(f"ingest {path.name} exit {proc.returncode}: {err.decode()[-300:]}")
        return
    done = json.loads(out)
    results.append({"file": path.name, "seconds": round(time.perf_counter() - t0, 2), **done["rows_added"]})


async def mixed_client(
    c: httpx.AsyncClient,
    start: int,
    until: float,
    budget: list[int],
    targets: dict[str, tuple[str, dict[str, str]]],
    lat: dict[str, list[float]],
    errors: list[str],
    stale: dict[str, int],
) -> None:
    k = start
    while time.monotonic() < until and budget[0] > 0:
        budget[0] -= 1
        route = ROUTES[k % len(ROUTES)]
        k += 1
        url, params = targets[route]
        t0 = time.perf_counter()
        try:
            r = await c.get(url, params=params)
            if r.status_code != 200:
                errors.append(f"{route} {r.status_code}: {r.text[:200]}")
            elif STALE_HEADER in r.headers:
                stale[route] += 1
        except httpx.HTTPError as exc:
            errors.append(f"{route} {type(exc).__name__}: {exc}")
        lat[route].append(time.perf_counter() - t0)


def _stats(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    if not values:
        return {"requests": 0}

    def pct(p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1)

    return {
        "requests": len(values),
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "max_ms": round(values[-1] * 1000, 1),
    }


async def run_mixed(
    root: str,
    home: Path,
    work: Path,
    token: str,
    duration: float,
    clients: int,
    every: float,
    ingests: int,
    max_requests: int,
) -> dict[str, Any]:
    run = secrets.token_hex(3)
    lat: dict[str, list[float]] = {r: [] for r in ROUTES}
    stale: dict[str, int] = dict.fromkeys(ROUTES, 0)
    errors: list[str] = []
    posted: list[str] = []
    ingested: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=root, timeout=60, limits=limits) as c:
        api = "/api/v1"
        status0 = (await c.get(f"{api}/status")).json()
        night = (await c.get(f"{api}/incidents", params={"limit": 200})).json()
        incident = night["items"][-1]["id"] if night.get("items") else None
        services = [
            s["service"] for s in (await c.get(f"{api}/services", params={"limit": 1000})).json()["items"]
        ]
        last_day = str(status0["last"])[:10]
        targets: dict[str, tuple[str, dict[str, str]]] = {
            "explain": (f"{api}/explain", {"at": AT}),
            "incidents": (f"{api}/incidents", {"limit": "50"}),
            "incident_page": (f"/dashboards/incidents/{incident}", {"tz": "Europe/Paris"}),
            "weekly": ("/dashboards/weekly", {"tz": "Europe/Paris"}),
            "service_page": ("/dashboards/services/www-main", {"tz": "Europe/Paris"}),
        }
        for url, params in targets.values():  # warm-up: one of each, as a responder would
            await c.get(url, params=params)
        inputs = write_ingest_inputs(work, last_day, ingests, services[:200])
        started = time.monotonic()
        until = started + duration
        budget = [max_requests]

        async def ingest_later() -> None:
            await asyncio.sleep(duration / 4)
            await asyncio.gather(*(run_ingest(home, p, ingested, errors) for p in inputs))

        await asyncio.gather(
            *(mixed_client(c, k, until, budget, targets, lat, errors, stale) for k in range(clients)),
            poster(c, until, token, run, posted, errors, every, base=api),
            ingest_later(),
        )
        elapsed = time.monotonic() - started
        listed = await c.get(f"{api}/changes", params={"at": DEPLOY_DAY, "before": "0s", "after": "1h"})
        visible = (
            {ch["change_id"] for ch in listed.json().get("changes", [])}
            if listed.status_code == 200
            else set()
        )
        status1 = (await c.get(f"{api}/status")).json()
    added = sum(i.get("metrics", 0) for i in ingested)
    missing = [p for p in posted if p not in visible]
    rows_ok = status1["rows"]["metrics"] == status0["rows"]["metrics"] + added and len(ingested) == ingests
    return {
        "scenario": "mixed",
        "clients": clients,
        "duration_s": round(elapsed, 1),
        "routes": {r: {**_stats(v), "stale": stale[r]} for r, v in lat.items()},
        "errors": len(errors),
        "error_samples": errors[:5],
        "deploys_posted": len(posted),
        "deploys_missing": missing,
        "ingests": ingested,
        "ingested_rows_visible": rows_ok,
        "writes_visible": rows_ok and not missing,
    }


def _print_mixed(result: dict[str, Any]) -> None:
    print(
        f"mixed load, {result['clients']} clients, {result['duration_s']} s on {result['cpus']} CPUs, "
        f"{result['workers']} server worker(s); deploys posted every {result['post_every']} s; "
        f"{len(result['ingests'])} concurrent ingest(s)"
    )
    print(f"{'route':<14} {'requests':>8} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'stale':>6}")
    for route, st in result["routes"].items():
        print(
            f"{route:<14} {st['requests']:>8} {st.get('p50_ms', '-'):>9} {st.get('p95_ms', '-'):>9} "
            f"{st.get('max_ms', '-'):>9} {st.get('stale', 0):>6}"
        )
    print(
        "stale: answers given from the data committed before an ingest while its detection ran "
        f"(flagged {STALE_HEADER})"
    )
    for ing in result["ingests"]:
        print(f"ingest {ing['file']}: {ing.get('metrics', 0)} metric rows added in {ing['seconds']} s")
    print(f"errors: {result['errors']}" + (f" e.g. {result['error_samples'][0]}" if result["errors"] else ""))
    print(
        f"deploys posted: {result['deploys_posted']}, not visible afterwards: {len(result['deploys_missing'])}; "
        f"ingested rows visible: {result['ingested_rows_visible']}; every write visible: {result['writes_visible']}"
    )
    p95 = {r: result["routes"][r].get("p95_ms", 0) for r in ROUTES}
    print(f"target p95 ≤ 2000 ms on every route: {'met' if result['p95_target_met'] else 'NOT met'} ({p95})")
    print(f"load average at the end: {result['loadavg']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--post-every", type=float, default=1.0, help="seconds between deploys (0: none)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    parser.add_argument("--scenario", choices=("explain", "mixed"), default="explain")
    parser.add_argument("--ingests", type=int, default=2, help="concurrent ingests in the mixed scenario")
    parser.add_argument("--max-requests", type=int, default=20000, help="request budget (mixed)")
    parser.add_argument("--source", type=Path, help="copy this warehouse instead of the demo one")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.duration > 600:
        parser.error("--duration: at most 600 s")
    with tempfile.TemporaryDirectory(prefix="whatchanged-api-load-") as tmp:
        if args.source:
            home, origin = Path(tmp) / "warehouse", f"copy of {args.source}"
            shutil.copytree(args.source, home)
        else:
            home, origin = prepare_warehouse(Path(tmp))
        token = secrets.token_urlsafe(24)
        port = free_port()
        server = start_server(home, port, token, args.workers)
        try:
            if args.scenario == "mixed":
                result = asyncio.run(
                    run_mixed(
                        f"http://127.0.0.1:{port}",
                        home,
                        Path(tmp),
                        token,
                        args.duration,
                        args.clients,
                        args.post_every,
                        args.ingests,
                        args.max_requests,
                    )
                )
            else:
                result = asyncio.run(
                    run_load(
                        f"http://127.0.0.1:{port}/api/v1", token, args.duration, args.clients, args.post_every
                    )
                )
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    result["warehouse"] = origin
    result["cpus"] = os.cpu_count()
    result["workers"] = args.workers
    result["post_every"] = args.post_every
    if args.scenario == "mixed":
        ok = result["errors"] == 0 and result["writes_visible"]
        result["ok"] = ok
        result["p95_target_met"] = all(result["routes"][r].get("p95_ms", 0) <= 2000 for r in ROUTES)
        result["loadavg"] = os.getloadavg()[0]
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"warehouse: {origin}")
            _print_mixed(result)
        return 0 if ok else 1
    ok = (
        result["errors"] == 0
        and not result["deploys_missing"]
        and (args.post_every <= 0 or result["deploys_posted"] > 0)
    )
    result["ok"] = ok
    result["p95_target_met"] = result["p95_ms"] <= 500
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"warehouse: {origin}")
        print(
            f"GET /explain, {result['clients']} clients, {result['duration_s']} s on {result['cpus']} CPUs, "
            f"{result['workers']} server worker(s): "
            f"{result['requests']} requests, {result['requests_per_s']} req/s"
        )
        print(
            f"latency p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms "
            f"(target p95 ≤ 500 ms: {'met' if result['p95_target_met'] else 'NOT met'})"
        )
        print(
            f"errors: {result['errors']}"
            + (f" e.g. {result['error_samples'][0]}" if result["errors"] else "")
        )
        print(
            f"deploys posted (1/s): {result['deploys_posted']}, not visible afterwards: "
            f"{len(result['deploys_missing'])}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
