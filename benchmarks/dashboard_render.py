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
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
AT = datetime.fromisoformat("2010-11-17T19:23:00+01:00")
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

    from whatchanged.api.app import create_app

    app = create_app(settings)
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
    """The reference night's incident with the probe outages (the one spanning 19:23 Paris)."""
    from whatchanged.engine.incidents import find_incidents
    from whatchanged.engine.warehouse import Warehouse

    con = Warehouse(home).connect()
    try:
        found = find_incidents(con, AT - timedelta(hours=1), AT + timedelta(hours=2))
    finally:
        con.close()
    if not found:
        raise SystemExit(f"no incident around {AT.isoformat()}")
    return max(found, key=lambda i: (i.outage_count, len(i.services_affected))).incident_id


_TIMES = """() => {
    const marks = performance.getEntriesByType('mark').filter(m => m.name.startsWith('plotted:'));
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource').filter(r => r.initiatorType === 'script');
    return {plotted: Math.max(...marks.map(m => m.startTime)), ttfb: nav.responseStart,
            traces: document.querySelector('.js-plotly-plot').data.length,
            html: nav.decodedBodySize, html_wire: nav.encodedBodySize,
            js: res.reduce((a, r) => a + r.decodedBodySize, 0),
            js_wire: res.reduce((a, r) => a + r.encodedBodySize, 0)};
}"""


def measure(url: str, runs: int, screenshot: Path | None = None) -> dict[str, Any]:
    """Load ``url`` ``runs`` times in one browser: the first with empty caches (server and browser)."""
    from playwright.sync_api import sync_playwright

    loads: list[dict[str, Any]] = []
    outside: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on(
            "request",
            lambda r: (
                outside.append(r.url) if urlsplit(r.url).hostname not in ("127.0.0.1", "localhost") else None
            ),
        )
        for _ in range(runs):
            page.goto(url, wait_until="load")
            page.wait_for_function(
                "(window.__plotsDone || 0) >= document.querySelectorAll('.plotly-graph-div').length",
                timeout=30_000,
            )
            loads.append(page.evaluate(_TIMES))
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    if errors:
        raise SystemExit(f"console errors: {errors}")
    cold, warm = loads[0], loads[1:]
    return {
        "render_cold_s": cold["plotted"] / 1000,
        "server_cold_s": cold["ttfb"] / 1000,
        "render_warm_median_s": statistics.median(w["plotted"] for w in warm) / 1000,
        "server_warm_median_s": statistics.median(w["ttfb"] for w in warm) / 1000,
        "traces": cold["traces"],
        "html_bytes": cold["html"],
        "html_wire_bytes": cold["html_wire"],
        "js_bytes": cold["js"],
        "js_wire_bytes": cold["js_wire"],
        "requests_outside_loopback": outside,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="page loads (the first one cold)")
    ap.add_argument("--keep", type=Path, help="build the warehouse here and keep it")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--screenshot", type=Path, help="save a full-page PNG of the last load here")
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
            result = measure(f"{url}/dashboards/incidents/{inc}", max(2, args.runs), args.screenshot)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    result.update(data=origin, incident=inc, warehouse_build_s=round(built, 2), target_s=TARGET_S)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ok = result["render_warm_median_s"] < TARGET_S
    kib = 1024
    print(f"data:            {origin}")
    print(f"incident page:   /dashboards/incidents/{inc} ({result['traces']} traces)")
    print(
        f"render (cold):   {result['render_cold_s']:.3f} s  navigation start → all Plotly graphs drawn, "
        f"first load after start (analysis computed: {result['server_cold_s']:.3f} s to first byte)"
    )
    print(
        f"render (warm):   {result['render_warm_median_s']:.3f} s  median of {args.runs - 1} reloads "
        f"(page cache, plotly.js from the browser cache; {result['server_warm_median_s']:.3f} s to first byte)"
    )
    print(
        f"page weight:     HTML {result['html_bytes'] / kib:.0f} KiB + JS {result['js_bytes'] / kib:.0f} KiB"
        f" decoded; {(result['html_wire_bytes'] + result['js_wire_bytes']) / kib:.0f} KiB on the wire"
    )
    print(f"off-loopback:    {len(result['requests_outside_loopback'])} requests")
    print(
        f"target < {TARGET_S:.0f} s:    {'met' if ok else 'MISSED'} (warm); cold {'met' if result['render_cold_s'] < TARGET_S else 'missed'}"
    )


if __name__ == "__main__":
    main()
