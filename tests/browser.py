"""How the browser tests and ``benchmarks/dashboard_render.py`` start Debian's headless Chromium
(as root it needs these flags and a fresh profile folder, which Playwright's launch makes)."""

from __future__ import annotations

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
