"""Render the reference night's incident page in headless Chromium; print time, split and weight.

    .venv/bin/python benchmarks/dashboard_render.py [--cold-runs 3] [--warm-runs 4]
        [--bundle both|partial|full] [--disk-cache analysed|none|primed|keep] [--keep DIR] [--json]

1. builds a warehouse of the reference night in a temporary folder
   (``whatchanged.data.reference_night.generate`` + the ingest pipeline; if
   that fails, the smaller reference-night-shaped warehouse of the dashboard
   tests, and says so); with ``--keep DIR`` an existing ``DIR/warehouse`` is
   reused;
2. for each plotly.js bundle (``WHATCHANGED_PLOTLY_JS=partial|full``, see
   ``dashboards/assets.py``) and each cold run, starts ``whatchanged serve``
   as a **new process** on 127.0.0.1 over that warehouse, with the on-disk
   analysis cache (``<home>/_cache``: incidents, per-day detection state)
   removed and the page requested once the server's start-up analysis is done
   (``--disk-cache analysed``, the default: ``/api/v1/healthz`` says
   ``analysis: ready``, as on a server that has been up a while), or removed
   and requested at once (``none``: the first request computes the day
   states), or removed and then filled by
   another server process that answered the page once (``primed``: what
   ``make demo`` leaves before ``serve``), or as found (``keep``) — the files
   present at start are printed — and measures in Debian's headless Chromium
   (Playwright, ``/usr/bin/chromium``, launched once; its launch is timed
   but not counted — every load starts from a page already up on
   ``about:blank``):

   * **cold** — a new browser context (empty HTTP cache and V8 code cache)
     loads the incident page: the first request the server ever gets, so the
     server's analysis is in the time;
   * **server warm** — a *new* context loads it again: the server answers from
     its page cache, the browser starts from nothing — the browser's own cost;
   * **warm** — reloads in that same context (plotly.js from the browser's
     cache, median of ``--warm-runs``);

   and for each load the split, in ms from navigation start: first byte of the
   HTML, HTML received, plotly.js requested → received, plotly.js has run
   (``plotly:ready``: the page's loader starts), each ``Plotly.newPlot``
   (``plot-start:`` → ``plotted:``), **all graphs drawn** (the last
   ``plotted:`` mark: the SVG is in the DOM), the next frame after it, and the
   first contentful paint (text before the graphs);
3. one more server-warm load under Chromium's tracing splits plotly.js into
   background parse/compile and execution (tracing slows the page: these
   figures are for the split only);
4. prints the page weight: HTML and JavaScript, raw and gzipped.

Target: all graphs drawn in under 2 s, cold.  Nothing leaves loopback (checked).
Medians over the runs: the machine is shared, single loads vary by ±30 %.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 (the repository root first)

TARGET_S = 2.0
AT = datetime.fromisoformat("2010-11-17T19:23:00+01:00")
TZ = "Europe/Paris"
LOOPBACK = ("127.0.0.1", "localhost")


def build_warehouse(home: Path, inputs: Path) -> str:
    """Fill ``home`` with the reference night; return where the data came from."""
    from whatchanged.engine.warehouse import Warehouse

    if (home / "_commits").is_dir() and any((home / "_commits").iterdir()):
        return f"reference night, reused from {home}"
    try:
        from whatchanged.data.reference_night import generate
        from whatchanged.ingest.base import ReadContext
        from whatchanged.ingest.pipeline import ingest

        generate(inputs)
        ingest(Warehouse(home), [inputs], ReadContext(tz=TZ))
        return "reference night (generate + ingest)"
    except Exception as exc:  # the generator or a reader is not there yet: say so, use the test night
        from tests.dashboards import night

        night.build(home)
        return f"test night (tests/dashboards/night.py) — reference night unavailable: {exc}"


def incident_id(home: Path) -> str:
    """The reference night's incident with the probe outages (the one spanning 19:23 Paris)."""
    from whatchanged.engine.incidents import find_incidents
    from whatchanged.engine.warehouse import Warehouse

    con = Warehouse(home).snapshot()
    try:
        found = find_incidents(con, AT - timedelta(hours=1), AT + timedelta(hours=2))
    finally:
        con.close()
    if not found:
        raise SystemExit(f"no incident around {AT.isoformat()}")
    return max(found, key=lambda i: (i.outage_count, len(i.services_affected))).incident_id


class Server:
    """``whatchanged serve`` in its own process on a free loopback port; stopped by its pid."""

    def __init__(self, home: Path, bundle: str, *, ready: bool = False) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, WHATCHANGED_TZ=TZ, WHATCHANGED_PLOTLY_JS=bundle)
        exe = Path(sys.executable).with_name("whatchanged")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "whatchanged.api.cli"]
        cmd += ["serve", "--home", str(home), "--port", str(self.port), "--log-level", "warning"]
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise SystemExit(f"whatchanged serve exited {self.proc.returncode}: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/healthz", timeout=2) as r:
                    # ready: also wait for the start-up analysis (`analysis` leaves "running")
                    if r.status == 200 and (not ready or json.loads(r.read())["analysis"] != "running"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("whatchanged serve did not answer /api/v1/healthz within 60 s")
            time.sleep(0.05)
        self.start_s = time.perf_counter() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# Runs in the page before its own scripts: a mark one frame after the last graph is drawn.
_INIT = """
(() => {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (!e.name.startsWith('plotted:')) continue;
      requestAnimationFrame(() => setTimeout(() => performance.mark('frame-after:' + e.name), 0));
    }
  }).observe({type: 'mark', buffered: true});
})();
"""

_TIMES = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const marks = {};
    for (const m of performance.getEntriesByType('mark')) marks[m.name] = m.startTime;
    const plotted = Object.keys(marks).filter(k => k.startsWith('plotted:'));
    const last = plotted.reduce((a, k) => (a === null || marks[k] > marks[a] ? k : a), null);
    const js = performance.getEntriesByType('resource').filter(r => r.name.includes('/static/plotly'));
    const fcp = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
    const figs = plotted.map(k => k.slice(8)).map(id => ({
        id, start: marks['plot-start:' + id] ?? null, end: marks['plotted:' + id],
        traces: document.getElementById(id).data.length,
        svg: document.querySelectorAll('#' + id + ' .main-svg').length}));
    return {
        ttfb: nav.responseStart, html_end: nav.responseEnd,
        dom_interactive: nav.domInteractive, dcl: nav.domContentLoadedEventStart,
        js_start: js.length ? js[0].startTime : null, js_end: js.length ? js[0].responseEnd : null,
        js_bytes: js.reduce((a, r) => a + r.decodedBodySize, 0),
        js_wire: js.reduce((a, r) => a + r.transferSize, 0),
        html_bytes: nav.decodedBodySize, html_wire: nav.encodedBodySize,
        plotly_ready: marks['plotly:ready'] ?? null,
        plotted: last === null ? null : marks[last],
        frame_after: last === null ? null : (marks['frame-after:' + last] ?? null),
        fcp: fcp ? fcp.startTime : null, figures: figs,
    };
}"""


class Browser:
    """One Chromium for the whole run; every load in a page already up on about:blank."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        started = time.perf_counter()
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.launch_s = time.perf_counter() - started
        self.outside: list[str] = []
        self.errors: list[str] = []

    def context(self) -> tuple[Any, Any]:
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.add_init_script(_INIT)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "request",
            lambda r: (
                self.outside.append(r.url)
                if urlsplit(r.url).hostname not in LOOPBACK and not r.url.startswith(("data:", "about:"))
                else None
            ),
        )
        page.goto("about:blank")
        return context, page

    def load(self, page: Any, url: str) -> dict[str, Any]:
        page.goto(url, wait_until="load", timeout=120_000)
        # polled from here: wait_for_function compiles its predicate in the page, which the
        # pages' Content-Security-Policy (no 'unsafe-eval') refuses
        deadline = time.monotonic() + 120
        while not page.evaluate(
            """() => {
                const n = document.querySelectorAll('.plotly-graph-div').length;
                const frames = performance.getEntriesByType('mark').filter(m => m.name.startsWith('frame-after:'));
                return n > 0 && (window.__plotsDone || 0) >= n && frames.length >= n;
            }"""
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: the figures were not drawn within 120 s")
            page.wait_for_timeout(10)
        page.wait_for_timeout(50)
        times: dict[str, Any] = page.evaluate(_TIMES)
        return times

    def traced(self, url: str) -> dict[str, float]:
        """One load in a new context under Chromium tracing: plotly.js parse/compile and execution (ms)."""
        context, page = self.context()
        try:
            self.browser.start_tracing(page=page, categories=["devtools.timeline", "v8", "blink.user_timing"])
            self.load(page, url)
            raw = self.browser.stop_tracing()
        finally:
            context.close()
        events = json.loads(raw)
        events = events["traceEvents"] if isinstance(events, dict) else events
        out = {"parse_compile_ms": 0.0, "execute_ms": 0.0, "figures_script_ms": 0.0}
        for e in events:
            if e.get("ph") != "X" or "dur" not in e:
                continue
            url_ = str((e.get("args") or {}).get("data", {}).get("url", ""))
            ms = e["dur"] / 1000
            if "/static/plotly" in url_:
                if e["name"] in ("v8.parseOnBackground", "v8.compile"):
                    out["parse_compile_ms"] += ms
                elif e["name"] == "EvaluateScript":
                    out["execute_ms"] += ms
            elif e["name"] == "FunctionCall" and "/dashboards/incidents/" in url_:
                out["figures_script_ms"] += ms
        return {k: round(v) for k, v in out.items()}

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()


def _split(t: dict[str, Any]) -> dict[str, Any]:
    """The load's milestones in ms from navigation start, and the durations between them."""

    def r(x: float | None) -> int | None:
        return None if x is None else round(x)

    figs = [
        {"id": f["id"], "newplot_ms": r(f["end"] - f["start"]) if f["start"] is not None else None}
        for f in t["figures"]
    ]
    return {
        "all_graphs_drawn_ms": r(t["plotted"]),
        "next_frame_ms": r(t["frame_after"]),
        "ttfb_ms": r(t["ttfb"]),
        "html_received_ms": r(t["html_end"]),
        "first_contentful_paint_ms": r(t["fcp"]),
        "js_requested_ms": r(t["js_start"]),
        "js_received_ms": r(t["js_end"]),
        "plotly_ready_ms": r(t["plotly_ready"]),
        "js_download_ms": r(t["js_end"] - t["js_start"]) if t["js_start"] is not None else None,
        "js_run_ms": r(t["plotly_ready"] - max(t["js_end"], t["html_end"]))
        if t["plotly_ready"] is not None and t["js_end"] is not None
        else None,
        "figures": figs,
        "traces": sum(f["traces"] for f in t["figures"]),
        "svg": all(f["svg"] >= 1 for f in t["figures"]),
    }


def _median(loads: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each milestone over the loads; the per-figure times of the median load."""
    keys = [k for k, v in loads[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out: dict[str, Any] = {}
    for k in keys:
        vals = [load[k] for load in loads if load[k] is not None]
        out[k] = round(statistics.median(vals)) if vals else None
    mid = sorted(loads, key=lambda x: x["all_graphs_drawn_ms"])[len(loads) // 2]
    out["figures"] = mid["figures"]
    out["svg"] = all(load["svg"] for load in loads)
    out["runs"] = len(loads)
    out["all_graphs_drawn_each_ms"] = [load["all_graphs_drawn_ms"] for load in loads]
    return out


def weight(url: str, page_url: str) -> dict[str, Any]:
    """Bytes of the page and of plotly.js, raw and gzipped (what a client accepting gzip receives)."""
    with urllib.request.urlopen(page_url, timeout=120) as r:
        html = r.read()
    src = html.split(b'src="', 1)[1].split(b'"', 1)[0].decode() if b'src="' in html else ""
    req = urllib.request.Request(url + src, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=60) as r:
        wire = r.read()
        bundle = r.headers.get("X-Plotly-Bundle", "?")
    raw = gzip.decompress(wire) if wire[:2] == b"\x1f\x8b" else wire
    return {
        "html_bytes": len(html),
        "html_gzip_bytes": len(gzip.compress(html, 6, mtime=0)),
        "js_bytes": len(raw),
        "js_gzip_bytes": len(wire),
        "bundle": bundle,
    }


def _cache_state(cache: Path) -> str:
    """What analysis the server finds on disk: files under ``<home>/_cache`` per subfolder."""
    if not cache.is_dir():
        return "no <home>/_cache"
    counts: dict[str, int] = {}
    for f in cache.rglob("*"):
        if f.is_file():
            where = f.parent.relative_to(cache).as_posix()
            counts[where] = counts.get(where, 0) + 1
    if not counts:
        return "<home>/_cache empty"
    return "<home>/_cache: " + ", ".join(
        f"{n} files in {k if k != '.' else '_cache/'}" for k, n in sorted(counts.items())
    )


def run_bundle(
    home: Path, inc: str, bundle: str, browser: Browser, cold_runs: int, warm_runs: int, disk_cache: str
) -> dict[str, Any]:
    cold: list[dict[str, Any]] = []
    server_warm: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    states: list[str] = []
    starts: list[float] = []
    trace: dict[str, float] = {}
    page_weight: dict[str, Any] = {}
    path = f"/dashboards/incidents/{inc}?tz={TZ}"
    for i in range(cold_runs):
        cache = home / "_cache"
        if disk_cache in ("none", "primed", "analysed") and cache.exists():
            shutil.rmtree(cache)
        if disk_cache == "primed":
            primer = Server(home, bundle)
            try:
                with urllib.request.urlopen(primer.url + path, timeout=300) as r:
                    r.read()
            finally:
                primer.stop()
        at_start = _cache_state(cache)
        server = Server(home, bundle, ready=disk_cache == "analysed")
        starts.append(server.start_s)
        # the server may fill the cache in the background from its start: what is there at the request
        states.append(f"{at_start} at start; {_cache_state(cache)} at the first request")
        try:
            context, page = browser.context()
            cold.append(_split(browser.load(page, server.url + path)))
            context.close()
            context, page = browser.context()
            server_warm.append(_split(browser.load(page, server.url + path)))
            if i == 0:
                for _ in range(warm_runs):
                    warm.append(_split(browser.load(page, server.url + path)))
            context.close()
            if i == 0:
                trace = browser.traced(server.url + path)
                page_weight = weight(server.url, server.url + path)
        finally:
            server.stop()
    return {
        "bundle": page_weight.pop("bundle", bundle),
        "analysis_state_at_start": sorted(set(states)),
        "server_start_s": round(statistics.median(starts), 2),
        "cold": _median(cold),
        "server_warm": _median(server_warm),
        "warm": _median(warm) if warm else None,
        "plotly_js_trace": trace,
        "weight": page_weight,
    }


def _fmt(name: str, m: dict[str, Any]) -> list[str]:
    def v(k: str) -> str:
        return "—" if m.get(k) is None else f"{m[k]}"

    figs = ", ".join(f"{f['id']} {f['newplot_ms']}" for f in m["figures"])
    return [
        f"  {name:<12} all graphs drawn {m['all_graphs_drawn_ms'] / 1000:.3f} s "
        f"(each: {', '.join(str(x) for x in m['all_graphs_drawn_each_ms'])} ms; median of {m['runs']})",
        f"  {'':<12} first byte {v('ttfb_ms')} · text painted {v('first_contentful_paint_ms')} · "
        f"plotly.js {v('js_requested_ms')}→{v('js_received_ms')} (download {v('js_download_ms')}) · "
        f"plotly.js run {v('js_run_ms')} → ready {v('plotly_ready_ms')} · newPlot {figs} · "
        f"next frame {v('next_frame_ms')}  [ms]",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh servers per bundle (median)")
    ap.add_argument("--warm-runs", type=int, default=4, help="reloads in one context (median)")
    ap.add_argument("--bundle", choices=("both", "partial", "full"), default="both")
    ap.add_argument("--keep", type=Path, help="build the warehouse here (or reuse it) and keep it")
    ap.add_argument(
        "--disk-cache",
        choices=("none", "analysed", "primed", "keep"),
        default="analysed",
        help="analysis when each cold server starts: none (the first request computes the day "
        "states), analysed (default: no cache on disk, the page is requested once the server's "
        "start-up analysis is done, as on a server that has been up a while), primed (another "
        "server answered the page before), keep",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--screenshot", type=Path, help="save a full-page PNG of a server-warm load here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        home = base / "warehouse"
        started = time.perf_counter()
        origin = build_warehouse(home, base / "inputs")
        built = time.perf_counter() - started
        inc = incident_id(home)
        browser = Browser()
        results: dict[str, Any] = {}
        try:
            for bundle in ("partial", "full") if args.bundle == "both" else (args.bundle,):
                results[bundle] = run_bundle(
                    home,
                    inc,
                    bundle,
                    browser,
                    max(1, args.cold_runs),
                    max(1, args.warm_runs),
                    args.disk_cache,
                )
            if args.screenshot is not None:
                server = Server(home, "partial" if args.bundle != "full" else "full")
                try:
                    context, page = browser.context()
                    browser.load(page, f"{server.url}/dashboards/incidents/{inc}?tz={TZ}")
                    page.screenshot(path=str(args.screenshot), full_page=True)
                    context.close()
                finally:
                    server.stop()
        finally:
            launch_s = browser.launch_s
            outside, errors = browser.outside, browser.errors
            browser.close()
    if errors:
        raise SystemExit(f"console errors: {errors}")
    summary: dict[str, Any] = {
        "data": origin,
        "incident": inc,
        "warehouse_build_s": round(built, 2),
        "browser_launch_s": round(launch_s, 2),
        "requests_outside_loopback": outside,
        "target_s": TARGET_S,
        "load_average": os.getloadavg()[0],
        "bundles": results,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    kib = 1024
    print(f"data:            {origin}")
    print(f"incident page:   /dashboards/incidents/{inc}?tz={TZ}")
    print(
        f"browser launch:  {launch_s:.2f} s (not counted; loads start on about:blank) · "
        f"load average {summary['load_average']:.1f} on {os.cpu_count()} cores"
    )
    for name, r in results.items():
        w = r["weight"]
        print(f"plotly.js {name} ({r['bundle']}):")
        print(
            f"  server:      new process per cold run (up in {r['server_start_s']:.2f} s); "
            f"analysis on disk: {' | '.join(r['analysis_state_at_start'])}"
        )
        for line in _fmt("cold", r["cold"]):
            print(line)
        for line in _fmt("server warm", r["server_warm"]):
            print(line)
        if r["warm"]:
            for line in _fmt("warm", r["warm"]):
                print(line)
        t = r["plotly_js_trace"]
        print(
            f"  plotly.js under tracing: parse+compile {t.get('parse_compile_ms')} ms (off the main thread, "
            f"streamed), execute {t.get('execute_ms')} ms; figures script {t.get('figures_script_ms')} ms"
        )
        print(
            f"  page weight: HTML {w['html_bytes'] / kib:.0f} KiB ({w['html_gzip_bytes'] / kib:.0f} KiB gzipped, "
            f"served raw) + JS {w['js_bytes'] / kib:.0f} KiB ({w['js_gzip_bytes'] / kib:.0f} KiB gzipped, served gzipped)"
        )
        cold_s = r["cold"]["all_graphs_drawn_ms"] / 1000
        sw_s = r["server_warm"]["all_graphs_drawn_ms"] / 1000
        print(
            f"  target < {TARGET_S:.0f} s: cold {'met' if cold_s < TARGET_S else 'MISSED'} ({cold_s:.2f} s); "
            f"server warm {'met' if sw_s < TARGET_S else 'MISSED'} ({sw_s:.2f} s)"
        )
    print(f"off-loopback:    {len(outside)} requests")


if __name__ == "__main__":
    main()
