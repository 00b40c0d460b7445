"""Render the reference night's incident page in headless Chromium; print time and weight.

    .venv/bin/python benchmarks/dashboard_render.py [--runs 5] [--keep DIR] [--json]

1. builds a warehouse of the reference night in a temporary folder
   (``whatchanged.data.reference_night.generate`` + the ingest pipeline; if
   that fails, the smaller reference-night-shaped warehouse of the dashboard
   tests, and says so);
2. serves the API app with the dashboards under uvicorn on 127.0.0.1;
3. loads ``/dashboards/incidents/<the 19:23 incident>`` in Debian's headless
   Chromium ``--runs`` times (the first with an empty cache) and prints:

   * **render time**: navigation start → every Plotly graph drawn (the
     ``performance.mark('plotted:…')`` each figure sets when ``Plotly.newPlot``
     resolves), cold and warm (median of the warm runs);
   * **server time**: navigation start → first byte of the HTML;
   * **page weight**: bytes of HTML + JavaScript the page loads.

Target: under 2 s.  Nothing leaves loopback (checked).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def build_warehouse(home: Path, inputs: Path) -> str:
    """Fill ``home`` with the reference night; return where the data came from."""
    from whatchanged.engine.warehouse import Warehouse

    try:
        from whatchanged.data.reference_night import generate
        from whatchanged.ingest.base import ReadContext
        from whatchanged.ingest.pipeline import ingest

        generate(inputs)
        ingest(Warehouse(home), [inputs], ReadContext(tz="Europe/Paris"))
        return "reference night (generate + ingest)"
    except Exception as exc:  # the generator or a reader is not there yet: say so, use the test night
        sys.path.insert(0, str(ROOT))
        from tests.dashboards import night

        night.build(home)
        return f"test night (tests/dashboards/night.py) — reference night unavailable: {exc}"


def serve(settings: Any) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    from whatchanged.dashboards import pages

    try:
        from whatchanged.api.app import create_app

        app = create_app(settings)
    except ImportError:
        from fastapi import FastAPI

        app = FastAPI()
        app.state.settings = settings
    if not any(getattr(r, "path", "").startswith("/dashboards") for r in app.routes):
        app.include_router(pages.router)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def incident_id(home: Path) -> str:
    from whatchanged.engine.incidents import find_incidents
    from whatchanged.engine.warehouse import Warehouse

    con = Warehouse(home).connect()
    try:
        last = con.sql("SELECT max(ts) FROM states").fetchone()
        assert last is not None and last[0] is not None, "the warehouse has no states"
        found = find_incidents(con, last[0] - timedelta(days=1), last[0])
    finally:
        con.close()
    if not found:
        raise SystemExit("no incident found in the last day of data")
    return max(found, key=lambda i: (i.outage_count, len(i.services_affected))).incident_id


def measure(url: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    cold: dict[str, Any] = {}
    warm: list[float] = []
    ttfb: list[float] = []
    weight: dict[str, int] = {}
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on(
            "request",
            lambda r: (
                outside.append(r.url) if urlsplit(r.url).hostname not in ("127.0.0.1", "localhost") else None
            ),
        )

        def on_response(r: Any) -> None:
            if r.request.resource_type in ("document", "script"):
                with contextlib.suppress(Exception):  # a cached response may have no body to read
                    weight[r.url] = len(r.body())

        page.on("response", on_response)
        for run in range(runs):
            page.goto(url, wait_until="load")
            page.wait_for_function(
                "(window.__plotsDone || 0) >= document.querySelectorAll('.plotly-graph-div').length",
                timeout=30_000,
            )
            t = page.evaluate(
                """() => {
                    const marks = performance.getEntriesByType('mark').filter(m => m.name.startsWith('plotted:'));
                    const nav = performance.getEntriesByType('navigation')[0];
                    return {plotted: Math.max(...marks.map(m => m.startTime)), ttfb: nav.responseStart,
                            traces: document.querySelector('.js-plotly-plot').data.length};
                }"""
            )
            if run == 0:
                cold = t
                page.on("response", lambda r: None)
            else:
                warm.append(t["plotted"])
            ttfb.append(t["ttfb"])
        browser.close()
    if errors:
        raise SystemExit(f"console errors: {errors}")
    html_bytes = sum(v for k, v in weight.items() if "/static/" not in k)
    js_bytes = sum(v for k, v in weight.items() if "/static/" in k)
    return {
        "render_cold_s": cold["plotted"] / 1000,
        "render_warm_median_s": statistics.median(warm) / 1000 if warm else None,
        "server_ttfb_median_s": statistics.median(ttfb) / 1000,
        "traces": cold["traces"],
        "html_bytes": html_bytes,
        "js_bytes": js_bytes,
        "requests_outside_loopback": outside,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="page loads (the first one cold)")
    ap.add_argument("--keep", type=Path, help="build the warehouse here and keep it")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    from whatchanged.engine.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        home = base / "warehouse"
        started = time.perf_counter()
        origin = build_warehouse(home, base / "inputs")
        built = time.perf_counter() - started
        settings = load_settings(home=home, tz="Europe/Paris")
        inc = incident_id(home)
        server, thread, url = serve(settings)
        try:
            result = measure(f"{url}/dashboards/incidents/{inc}", max(2, args.runs))
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    result.update(data=origin, incident=inc, warehouse_build_s=round(built, 2), target_s=TARGET_S)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ok = result["render_cold_s"] < TARGET_S
    print(f"data:            {origin}")
    print(f"incident page:   /dashboards/incidents/{inc} ({result['traces']} traces)")
    print(f"render (cold):   {result['render_cold_s']:.3f} s  navigation start → all Plotly graphs drawn")
    print(f"render (warm):   {result['render_warm_median_s']:.3f} s  median of {args.runs - 1} cached loads")
    print(f"server (TTFB):   {result['server_ttfb_median_s']:.3f} s  median")
    print(
        f"page weight:     HTML {result['html_bytes'] / 1024:.0f} KiB + JS {result['js_bytes'] / 1024:.0f} KiB"
    )
    print(f"off-loopback:    {len(result['requests_outside_loopback'])} requests")
    print(f"target < {TARGET_S:.0f} s:    {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
