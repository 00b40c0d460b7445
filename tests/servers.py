"""Real servers for the live tests: Prometheus (backfilled with promtool), Alertmanager,
``whatchanged serve``, and recording HTTP sinks.

Every server listens on a free loopback port, keeps its data in a temporary folder, is waited
for with a bounded timeout and is always stopped (the fixtures use ``finally``).  The Debian
binaries are installed by ``make live-servers`` (a prerequisite of ``make unit``); a test
that needs one that is missing is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (make live-servers installs Debian's package)")
    return path


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s} s:\n{log.read_text()[-2000:]}")


@contextlib.contextmanager
def running(
    cmd: list[str], ready_url: str, log: Path, *, timeout_s: float = 90.0, **kw: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd``, wait until ``ready_url`` answers 200 (a loaded 2-core machine takes
    20 s to import the server), always stop it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
    try:
        wait_ready(ready_url, proc, log, timeout_s=timeout_s)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def write_openmetrics(rows: list[dict[str, Any]], path: Path, *, labels: dict[str, str]) -> None:
    """Metric rows (timestamp, service, metric, value) as an OpenMetrics file for promtool,
    every family contiguous; ``labels`` maps a service to extra labels text (``datacenter="SBG"``)."""
    rows = sorted(rows, key=lambda r: (r["metric"], r["service"], r["timestamp"]))
    with open(path, "w") as f:
        family = None
        for r in rows:
            if r["metric"] != family:
                family = r["metric"]
                f.write(f"# TYPE {family} gauge\n")
            extra = labels.get(r["service"], "")
            lab = f'service="{r["service"]}"' + (f",{extra}" if extra else "")
            f.write(f"{family}{{{lab}}} {r['value']!r} {int(r['timestamp'].timestamp())}\n")
        f.write("# EOF\n")


@contextlib.contextmanager
def prometheus(openmetrics: Path, workdir: Path) -> Iterator[str]:
    """A real Prometheus holding ``openmetrics`` (backfilled), on a loopback port; its URL."""
    binary = need("prometheus")
    promtool = need("promtool")
    tsdb = workdir / "tsdb"
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(openmetrics),
            str(tsdb),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={tsdb}",
        "--storage.tsdb.retention.time=50y",  # the backfilled night is years old
        # a sample answers only at its own minute (the default 5 min would repeat the last
        # value after a series ends, which the files do not have)
        "--query.lookback-delta=30s",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    (workdir / "prometheus.yml").write_text("global: {}\n")
    with running(cmd, f"{url}/-/ready", workdir / "prometheus.log"):
        yield url


class Recorder:
    """A loopback HTTP server that records every request (and answers ``status``)."""

    def __init__(self, status: int = 200, body: bytes = b"ok") -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        self.body = body
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                recorder.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recorder.body)))
                self.end_headers()
                self.wfile.write(recorder.body)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
