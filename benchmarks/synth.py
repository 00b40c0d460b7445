"""A large synthetic warehouse for benchmarks: N days × 1002 services × 3 metrics at 1-minute steps.

Written straight through ``Warehouse.commit`` one day at a time (the readers
are benchmarked separately in ``ingest.py``), cached under
``benchmarks/out/warehouse-<days>d`` so that several benchmarks share it.

The last day carries a reference-night-shaped incident at 19:23 Paris
(18:23 UTC): bandwidth of 30 P19 services capped near 50, Nagios CRITICAL on
them, 14 probe outages, the P19 switch maintenance, ten releases and 14
restarts — so ``explain`` has real work to do.

Run alone: ``python benchmarks/synth.py [DAYS]`` (prints the path and size).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from whatchanged.engine.schema import CHANGES, METRICS, SERVICES, STATES
from whatchanged.engine.warehouse import Warehouse

OUT = Path(__file__).resolve().parent / "out"
N_SERVICES = 1002
METRIC_NAMES = ("bandwidth_mbps", "latency_ms", "http_error_rate")
END_DAY = datetime(2010, 11, 17, tzinfo=UTC)
INCIDENT = datetime(2010, 11, 17, 18, 23, tzinfo=UTC)
#: bumped when the generator's output changes: cached warehouses built by another version are
#: rebuilt (:func:`cached`).  2: each service keeps its traffic level from one day to the next
#: (version 1 drew it again every day, a step at every midnight on every series)
GENERATOR = 2


def bytecode(compile_now: bool) -> bool:
    """Whether the package's modules have bytecode (``__pycache__``) for a new process to load;
    ``compile_now``: compile them first, as ``pip install`` does.  An editable install run with
    ``PYTHONDONTWRITEBYTECODE=1`` (this machine) has none, and every new process compiles the
    modules it imports (0.1–0.2 s of a cold ``explain``)."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    packages = [root / p for p in ("engine", "api", "ingest", "present", "dashboards", "data")]
    if compile_now:
        for p in packages:
            compileall.compile_dir(p, quiet=1)
    return all((p / "__pycache__").is_dir() for p in packages[:2])


def cached(done: Path, **meta: object) -> bool:
    """Whether the warehouse marked by ``done`` was built with ``meta`` by this generator."""
    try:
        found = json.loads(done.read_text())
    except (OSError, ValueError):
        return False
    return bool(found == {**meta, "generator": GENERATOR})


def mark_built(done: Path, **meta: object) -> None:
    done.write_text(json.dumps({**meta, "generator": GENERATOR}))


def levels() -> np.ndarray:
    """Each service's traffic level (Mbit/s at the daily peak), the same every day."""
    return np.random.default_rng(N_SERVICES).uniform(80, 220, size=(N_SERVICES, 1))


def inventory() -> pa.Table:
    rows: dict[str, list[object]] = {c: [] for c in SERVICES.names}
    for i in range(N_SERVICES):
        dc = "P19" if i < 960 else ("RBX" if i < 985 else "GRA")
        rows["service"].append(f"svc-{i:04d}")
        rows["kind"].append(("site", "backoffice", "email", "database", "loadbalancer")[i % 5])
        rows["datacenter"].append(dc)
        rows["rack"].append(f"{dc}-R{i % 24:02d}")
        rows["switch"].append(f"{dc.lower()}-sw-{i % 8 + 1:02d}")
        rows["host"].append(f"{dc.lower()}-h{i // 4:03d}")
        rows["app"].append(("sites", "backoffice", "mail", "db", "edge", "editor")[i % 6])
        rows["critical"].append(i % 50 == 0)
        rows["tags"].append([])
        rows["redundancy_group"].append(None)
    return pa.Table.from_pydict(rows, schema=SERVICES)


@dataclass(frozen=True)
class Shock:
    """An incident's effect on one day's metrics: from minute ``start`` of the day (UTC) for
    ``minutes``, the ``rows`` (service numbers) have their bandwidth capped near ``cap_mbps``
    (None: untouched), ``latency_ms`` added, and their error rate raised by ``error_rate``."""

    rows: tuple[int, ...]
    start: int
    minutes: int
    cap_mbps: float | None = 50.0
    latency_ms: float = 900.0
    error_rate: float = 0.0


def night_shock(day: datetime) -> Shock:
    """The reference night's shock on ``day`` (its last day)."""
    return Shock(tuple(range(0, 960, 32))[:30], (INCIDENT - day).seconds // 60, 83)


def day_metrics(
    day: datetime, rng: np.random.Generator, *, incident: bool, shocks: Sequence[Shock] = ()
) -> pa.Table:
    minutes = 1440
    ts = np.arange(minutes, dtype=np.int64) * 60_000_000 + int(day.timestamp() * 1e6)
    hour = (np.arange(minutes) / 60.0 + 1.0) % 24  # Paris local hour
    season = 0.55 + 0.45 * np.sin((hour - 13.0) / 24.0 * 2 * np.pi) ** 2
    n = N_SERVICES
    base = levels()
    bw = np.round(base * season[None, :] * rng.normal(1, 0.04, size=(n, minutes)), 1)
    lat = np.round(40 + 30 * (1 - season[None, :]) + rng.gamma(2.0, 4.0, size=(n, minutes)))
    err = np.round(np.abs(rng.normal(0.002, 0.001, size=(n, minutes))), 4)
    for shock in [*([night_shock(day)] if incident else []), *shocks]:
        hit = np.array(shock.rows)
        span = np.arange(shock.start, min(minutes, shock.start + shock.minutes))
        if shock.cap_mbps is not None:
            bw[np.ix_(hit, span)] = np.round(rng.normal(shock.cap_mbps, 0.5, size=(hit.size, span.size)), 1)
        lat[np.ix_(hit, span)] += shock.latency_ms
        err[np.ix_(hit, span)] += shock.error_rate
    cols = []
    for name, values in zip(METRIC_NAMES, (bw, lat, err), strict=True):
        cols.append(
            pa.table(
                {
                    "ts": pa.array(np.tile(ts, n), pa.timestamp("us", tz="UTC")),
                    "service": pa.array(np.repeat([f"svc-{i:04d}" for i in range(n)], minutes)),
                    "metric": pa.array([name] * (n * minutes)),
                    "value": pa.array(values.reshape(-1)),
                }
            )
        )
    table = pa.concat_tables(cols)
    return table.append_column("env", pa.nulls(table.num_rows, pa.string())).append_column(
        "labels", pa.nulls(table.num_rows, METRICS.field("labels").type)
    )


def night_events() -> tuple[pa.Table, pa.Table]:
    hit = [f"svc-{i:04d}" for i in range(0, 960, 32)][:30]
    st: dict[str, list[object]] = {c: [] for c in STATES.names}

    def state(ts: datetime, service: str, check: str, value: str, source: str) -> None:
        st["ts"].append(ts)
        st["service"].append(service)
        st["check"].append(check)
        st["state"].append(value)
        st["state_type"].append("HARD" if source == "nagios" else None)
        st["source"].append(source)
        st["message"].append(None)

    for s in hit:
        state(INCIDENT, s, "HTTP", "CRITICAL", "nagios")
        state(INCIDENT + timedelta(minutes=83), s, "HTTP", "OK", "nagios")
    t = INCIDENT
    for k in range(14):  # 14 outages, 54 min in all
        down = 240 if k < 12 else 180
        state(t, "svc-0000", "www probe", "down", "pingdom")
        state(t + timedelta(seconds=down), "svc-0000", "www probe", "up", "pingdom")
        t += timedelta(seconds=down + 120)
    ch: dict[str, list[object]] = {c: [] for c in CHANGES.names}

    def change(
        cid: str, kind: str, start: datetime, end: datetime | None, title: str, scope: dict[str, list[str]]
    ) -> None:
        for c in CHANGES.names:
            ch[c].append(None)
        ch["change_id"][-1], ch["kind"][-1], ch["start"][-1], ch["end"][-1] = cid, kind, start, end
        ch["title"][-1], ch["source"][-1] = title, "synth"
        ch["scope"][-1] = {
            k: scope.get(k, []) for k in ("services", "apps", "datacenters", "racks", "switches", "hosts")
        }

    change(
        "ovh:FS#4321",
        "maintenance",
        INCIDENT - timedelta(minutes=23),
        INCIDENT + timedelta(minutes=97),
        "Network:: P19 switches maintenance",
        {"datacenters": ["P19"]},
    )
    for k in range(10):
        change(
            f"rel-{k}",
            "deploy",
            INCIDENT - timedelta(hours=10 - k * 0.8),
            None,
            f"editor 4.{k}",
            {"apps": ["editor"]},
        )
    for k in range(14):
        change(
            f"restart-{k}",
            "restart",
            INCIDENT + timedelta(minutes=3 + 5 * k),
            None,
            "restart of the stack",
            {"apps": ["sites"]},
        )
    return pa.Table.from_pydict(st, schema=STATES), pa.Table.from_pydict(ch, schema=CHANGES)


def build(days: int = 30, *, seed: int = 7, quiet: bool = False) -> Path:
    """The cached warehouse of ``days`` days (built on first use)."""
    home = OUT / f"warehouse-{days}d"
    done = home / "SYNTH_DONE"
    if cached(done, days=days, seed=seed):
        return home
    if home.exists():
        import shutil

        shutil.rmtree(home)
    wh = Warehouse(home)
    wh.init()
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    states, changes = night_events()
    wh.commit({"services": inventory(), "states": states, "changes": changes}, source="synth")
    for d in range(days):
        day = END_DAY - timedelta(days=days - 1 - d)
        wh.commit(
            {"metrics": day_metrics(day, rng, incident=(d == days - 1))}, source=f"synth {day:%Y-%m-%d}"
        )
        if not quiet:
            print(f"  day {d + 1}/{days} written ({time.perf_counter() - started:.0f} s)", flush=True)
    mark_built(done, days=days, seed=seed)
    return home


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    path = build(n)
    size = sum(p.stat().st_size for p in path.rglob("*.parquet"))
    print(f"{path}: {size / 1e6:.0f} MB")


def run_measured(argv: list[str]) -> tuple[float, int, str]:
    """Run ``argv`` in a new process: wall seconds, peak RSS (MB, the child's and its
    waited-for descendants') and stdout; its stderr's end when it fails."""
    import os
    import subprocess
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(argv)} failed:\n{errors[-3000:]}")
    return seconds, round(usage.ru_maxrss / 1024), text


def add_bytecode_option(ap: Any) -> None:
    """The ``--bytecode`` option of the new-process benchmarks (see :func:`bytecode`)."""
    ap.add_argument(
        "--bytecode",
        action="store_true",
        help="compile the package first, as an installed one is (synth.bytecode)",
    )
