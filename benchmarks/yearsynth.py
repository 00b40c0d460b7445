"""A year of synthetic history: 365 days × 1002 services × 3 metrics at 1-minute steps
(1.58 billion points), with incidents spread over the year.

Built once through ``Warehouse.commit`` one day at a time (memory stays that of a day)
and cached under ``benchmarks/out/warehouse-year``; an interrupted build resumes at the
first day not committed yet.  The year is 2010; 17 November carries the reference
night of :mod:`synth` (the 19:23 switch maintenance, 14 probe outages).  Every two
weeks from 8 January another incident, in turn:

* a P19 switch maintenance (announced window, 30 services of the switch capped near
  50 Mbit/s for an hour, Nagios CRITICAL on them, two short probe outages);
* a release of the ``editor`` app followed by errors and latency on 40 of its services;
* a host failure (its four services slow and starved, CRITICAL), no change at all;

and a routine ``sites`` release every day at 10:00 UTC that breaks nothing.  The probe's
downtime adds up to 90 minutes: 99.98 % available over the year.

Run alone: ``python benchmarks/yearsynth.py`` (prints the path and size).  A helper of
``benchmarks/year.py``.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth

from whatchanged.engine.schema import CHANGES, STATES
from whatchanged.engine.warehouse import Warehouse

HOME = synth.OUT / "warehouse-year"
FIRST_DAY = datetime(2010, 1, 1, tzinfo=UTC)
DAYS = 365
SEED = 11
NIGHT_DAY = synth.END_DAY  # 2010-11-17


def incident_days() -> list[tuple[datetime, int]]:
    """(day, kind) of the fortnightly incidents: 0 maintenance, 1 release, 2 host failure."""
    out = []
    for k in range(26):
        day = FIRST_DAY + timedelta(days=7 + 14 * k)
        if day != NIGHT_DAY:
            out.append((day, k % 3))
    return out


def _maintenance_rows(k: int) -> tuple[int, ...]:
    return tuple(i for i in range(960) if i % 8 == k % 8)[:30]


def shocks_and_events(day: datetime, kind: int, k: int) -> tuple[synth.Shock, pa.Table, pa.Table]:
    """The shock on the metrics of an incident day, and its check states and changes."""
    st: dict[str, list[object]] = {c: [] for c in STATES.names}
    ch: dict[str, list[object]] = {c: [] for c in CHANGES.names}

    def state(ts: datetime, service: str, check: str, value: str, source: str) -> None:
        for c, v in zip(
            ("ts", "service", "check", "state", "state_type", "source", "message"),
            (ts, service, check, value, "HARD" if source == "nagios" else None, source, None),
            strict=True,
        ):
            st[c].append(v)

    def change(
        cid: str, kind_: str, start: datetime, end: datetime | None, title: str, scope: dict[str, list[str]]
    ) -> None:
        for c in CHANGES.names:
            ch[c].append(None)
        ch["change_id"][-1], ch["kind"][-1], ch["start"][-1], ch["end"][-1] = cid, kind_, start, end
        ch["title"][-1], ch["source"][-1] = title, "yearsynth"
        ch["scope"][-1] = {
            key: scope.get(key, [])
            for key in ("services", "apps", "datacenters", "racks", "switches", "hosts")
        }

    hour = 1 + k % 5  # 01:00 … 05:00 UTC, the quiet hours
    onset = day + timedelta(hours=hour, minutes=17)
    tag = f"{day:%Y%m%d}"
    if kind == 0:
        rows = _maintenance_rows(k)
        switch = f"p19-sw-{k % 8 + 1:02d}"
        shock = synth.Shock(rows, hour * 60 + 17, 60)
        change(
            f"ovh:FS#{tag}",
            "maintenance",
            onset - timedelta(minutes=17),
            onset + timedelta(minutes=73),
            f"Network:: {switch} maintenance",
            {"switches": [switch]},
        )
        for r in rows:
            state(onset, f"svc-{r:04d}", "HTTP", "CRITICAL", "nagios")
            state(onset + timedelta(minutes=60), f"svc-{r:04d}", "HTTP", "OK", "nagios")
        for m in (5, 25):  # two probe outages of two minutes
            state(onset + timedelta(minutes=m), "svc-0000", "www probe", "down", "pingdom")
            state(onset + timedelta(minutes=m + 2), "svc-0000", "www probe", "up", "pingdom")
    elif kind == 1:
        rows = tuple(i for i in range(1002) if i % 6 == 5)[:40]
        shock = synth.Shock(rows, hour * 60 + 17, 45, cap_mbps=None, latency_ms=300.0, error_rate=0.05)
        change(
            f"rel-editor-{tag}",
            "deploy",
            onset - timedelta(minutes=4),
            None,
            f"editor {tag}",
            {"apps": ["editor"]},
        )
    else:
        host = 10 + k
        rows = tuple(range(host * 4, host * 4 + 4))
        shock = synth.Shock(rows, hour * 60 + 17, 30, cap_mbps=5.0, latency_ms=2000.0)
        for r in rows:
            state(onset, f"svc-{r:04d}", "HTTP", "CRITICAL", "nagios")
            state(onset + timedelta(minutes=30), f"svc-{r:04d}", "HTTP", "OK", "nagios")
    return shock, pa.Table.from_pydict(st, schema=STATES), pa.Table.from_pydict(ch, schema=CHANGES)


def routine_releases() -> pa.Table:
    ch: dict[str, list[object]] = {c: [] for c in CHANGES.names}
    for d in range(DAYS):
        day = FIRST_DAY + timedelta(days=d)
        for c in CHANGES.names:
            ch[c].append(None)
        ch["change_id"][-1], ch["kind"][-1] = f"rel-sites-{day:%Y%m%d}", "deploy"
        ch["start"][-1], ch["title"][-1], ch["source"][-1] = (
            day + timedelta(hours=10),
            "sites release",
            "yearsynth",
        )
        ch["scope"][-1] = {
            key: (["sites"] if key == "apps" else [])
            for key in ("services", "apps", "datacenters", "racks", "switches", "hosts")
        }
    return pa.Table.from_pydict(ch, schema=CHANGES)


def build(*, quiet: bool = False) -> Path:
    """The cached year warehouse (built, or its build resumed, on first use)."""
    done = HOME / "SYNTH_DONE"
    meta = {"days": DAYS, "seed": SEED, "first": FIRST_DAY.date().isoformat()}
    if synth.cached(done, **meta):
        return HOME
    if HOME.exists() and done.exists():  # built by another version of the generator
        shutil.rmtree(HOME)
    wh = Warehouse(HOME)
    wh.init()
    committed = {m.get("source", "") for m in wh.manifests()}
    started = time.perf_counter()
    plan = {d: (kind, k) for k, (d, kind) in enumerate(incident_days())}
    if "yearsynth events" not in committed:
        states, changes = synth.night_events()
        parts_s, parts_c = [states], [changes, routine_releases()]
        for day, (kind, k) in plan.items():
            _shock, s, c = shocks_and_events(day, kind, k)
            parts_s.append(s)
            parts_c.append(c)
        wh.commit(
            {
                "services": synth.inventory(),
                "states": pa.concat_tables(parts_s),
                "changes": pa.concat_tables(parts_c),
            },
            source="yearsynth events",
        )
    for d in range(DAYS):
        day = FIRST_DAY + timedelta(days=d)
        source = f"yearsynth {day:%Y-%m-%d}"
        if source in committed:
            continue
        rng = np.random.default_rng([SEED, d])  # per day: a resumed build writes the same values
        shocks = [shocks_and_events(day, *plan[day])[0]] if day in plan else []
        table = synth.day_metrics(day, rng, incident=day == NIGHT_DAY, shocks=shocks)
        wh.commit({"metrics": table}, source=source)
        if not quiet:
            print(f"  day {d + 1}/{DAYS} written ({time.perf_counter() - started:.0f} s)", flush=True)
    synth.mark_built(done, **meta)
    return HOME


if __name__ == "__main__":
    path = build()
    size = sum(p.stat().st_size for p in path.rglob("*.parquet"))
    print(f"{path}: {size / 1e6:.0f} MB")
