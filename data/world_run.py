"""Running a world of :mod:`whatchanged.data.worlds` end to end: ingest its files, ask
``whatchanged explain`` about each truth, and compare."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from whatchanged.data.world_kit import Truth, Webhook, seed_of
from whatchanged.data.worlds import build

MIN = timedelta(minutes=1)


# --------------------------------------------------------------------------- running a world


@dataclass(frozen=True)
class Answer:
    """What ``whatchanged explain --at T --json`` said about one truth."""

    truth: Truth
    causes: tuple[tuple[str, str | None, float], ...]  # (category, change id or component, score)
    onset: datetime | None
    outages: int | None
    error: str | None = None

    @property
    def top(self) -> tuple[str, str | None, float] | None:
        return self.causes[0] if self.causes else None

    @property
    def rank(self) -> int | None:
        """1-based rank of the true cause (category and id/component), None when absent."""
        for n, (cat, ident, _) in enumerate(self.causes, 1):
            if cat == self.truth.category and (self.truth.cause is None or self.truth.accepts(ident)):
                return n
        return None

    @property
    def onset_ok(self) -> bool:
        return self.onset is not None and abs((self.onset - self.truth.onset).total_seconds()) <= 120

    @property
    def correct(self) -> bool:
        return self.rank == 1 and self.onset_ok and self.outages == self.truth.outages


def _cli(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "whatchanged"
    env = {**os.environ, "WHATCHANGED_HOME": str(home), "WHATCHANGED_NO_ANALYZE": "1"}
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _post_webhooks(home: Path, hooks: Sequence[Webhook], tz: str) -> None:
    """Start ``whatchanged serve`` on loopback, POST each body to ``/api/v1/changes``, stop it."""
    token = "worlds-" + format(seed_of(str(home)), "08x")
    port = _free_port()
    exe = Path(sys.executable).parent / "whatchanged"
    env = {
        **os.environ,
        "WHATCHANGED_HOME": str(home),
        "WHATCHANGED_API_TOKENS": token,
        "WHATCHANGED_NO_ANALYZE": "1",
        "WHATCHANGED_WARM": "0",
    }
    proc = subprocess.Popen(
        [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"whatchanged serve did not start: {err[-2000:]}")
            time.sleep(0.2)
        for hook in hooks:
            req = urllib.request.Request(
                f"{base}/changes?format={hook.format}&tz={urllib.parse.quote(tz)}",
                data=json.dumps(hook.body).encode(),
                method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                if r.status not in (200, 201):  # pragma: no cover - urlopen raises on errors
                    raise RuntimeError(f"POST {hook.format}: {r.status}")
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.communicate()


def run_world(name: str, workdir: Path) -> list[Answer]:
    """Write the world, ingest it with the real CLI (webhooks through the real API), ask each truth."""
    w = build(name)
    home = workdir / "home"
    paths = w.write(workdir / "inputs")
    done = _cli("ingest", *map(str, paths), "--tz", w.tz, "--json", home=home)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: ingest failed: {done.stderr or done.stdout}")
    if w.webhooks:
        _post_webhooks(home, w.webhooks, w.tz)
    answers = []
    for t in w.truths:
        done = _cli("explain", "--at", t.at_local, "--tz", t.tz, "--json", home=home)
        if done.returncode != 0:
            answers.append(Answer(t, (), None, None, error=(done.stderr or done.stdout).strip()[-500:]))
            continue
        body = json.loads(done.stdout)
        inc = body.get("incident") or {}
        causes = tuple(
            (c["category"], c.get("change_id") or c.get("component"), float(c.get("score") or 0.0))
            for c in body.get("causes") or []
        )
        onset = datetime.fromisoformat(inc["onset"]).astimezone(UTC) if inc.get("onset") else None
        answers.append(Answer(t, causes, onset, inc.get("outage_count")))
    return answers


def describe(a: Answer) -> str:
    """One line: truth, answer, and what differs."""
    t = a.truth
    want = f"{t.category} {t.cause or ''}".strip()
    if a.error:
        return f"{t.name:48} truth {want:48} ERROR {a.error.splitlines()[-1] if a.error else ''}"
    top = a.top
    got = f"{top[0]} {top[1] or ''} ({top[2]:.2f})" if top else "-"
    onset = a.onset.astimezone(ZoneInfo(t.tz)).strftime("%H:%M") if a.onset else "-"
    want_onset = t.onset.astimezone(ZoneInfo(t.tz)).strftime("%H:%M")
    return (
        f"{t.name:48} truth {want:48} rank {a.rank or '-':>2}  top {got:52} "
        f"onset {onset}/{want_onset} outages {a.outages}/{t.outages}"
    )
