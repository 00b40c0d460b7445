"""The builder the scenarios of :mod:`whatchanged.data.scenarios` are written with: a
:class:`Scenario` holds a fleet, its metric effects, check states, changes and probes and
writes them as raw input files with the truth."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import overload

import numpy as np

from whatchanged.data.inputs import (
    ChangeRow,
    IcalNotice,
    MetricBuffer,
    NagiosLog,
    ProbeCheck,
    Service,
    WorksNotice,
    load_shape,
    local_clock,
    local_epoch,
    local_text,
    minute_grid,
    write_deploys,
    write_ical,
    write_pingdom,
    write_services,
    write_works,
)
from whatchanged.data.night_sources import checks_of

TRUTH_FILE = ".truth.json"
CATEGORIES = ("hosting", "application_release", "external_maintenance", "unknown")


@dataclass(frozen=True)
class ScenarioTruth:
    """The expected answer for one incident of a scenario."""

    name: str
    at_local: str  # "YYYY-MM-DD HH:MM", wall time in tz
    tz: str
    category: str  # hosting | application_release | external_maintenance | unknown
    change_id: str | None
    component: str | None  # hosting: the host / switch that failed first
    description: str
    #: when the incident truly began, "YYYY-MM-DD HH:MM" wall time in tz (its first failure;
    #: ``at_local`` unless the question is asked about a later wave of the same incident)
    onset_local: str = ""

    @property
    def onset(self) -> str:
        return self.onset_local or self.at_local


@dataclass
class Effect:
    start: int
    end: int
    factor: float | None = None  # multiply
    value: float | None = None  # replace (with a little noise)
    ramp_to: float | None = None  # factor growing linearly from 1 over [start, end], then held
    hold_until: int | None = None
    gap: bool = False  # no samples


@dataclass
class Scenario:
    """A small world: inventory, series, check failures and changes, written by :meth:`write`."""

    out: Path
    name: str
    seed: int
    day: str  # the incident's day; metrics cover `days` days ending that day
    tz: str = "Europe/Paris"
    days: int = 3
    metrics_format: str = "parquet"  # or "csv"
    services: list[Service] = field(default_factory=list)
    series: list[tuple[str, str, float]] = field(default_factory=list)
    effects: dict[tuple[str, str], list[Effect]] = field(default_factory=dict)
    failing: dict[tuple[str, str], list[tuple[int, int, str]]] = field(default_factory=dict)
    changes: list[ChangeRow] = field(default_factory=list)
    works: list[WorksNotice] = field(default_factory=list)
    icals: list[IcalNotice] = field(default_factory=list)
    probes: list[ProbeCheck] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    # -- time
    def at(self, hhmm: str, day_offset: int = 0) -> int:
        d = (date.fromisoformat(self.day) + timedelta(days=day_offset)).isoformat()
        return local_epoch(d, hhmm, self.tz)

    def truth(
        self,
        hhmm: str,
        category: str,
        change_id: str | None,
        component: str | None,
        text: str,
        *,
        name: str | None = None,
        day_offset: int = 0,
        onset: str | None = None,
    ) -> ScenarioTruth:
        """The answer at ``hhmm``; ``onset``: when the incident began, if earlier (same day)."""
        if category not in CATEGORIES:
            raise ValueError(f"category: expected one of {CATEGORIES}, found {category!r}")
        at = local_text(self.at(hhmm, day_offset), self.tz, seconds=False)
        began = local_text(self.at(onset, day_offset), self.tz, seconds=False) if onset else ""
        return ScenarioTruth(name or self.name, at, self.tz, category, change_id, component, text, began)

    # -- inventory
    def add(
        self,
        service: str,
        kind: str,
        dc: str,
        rack: str,
        switch: str,
        host: str,
        app: str,
        critical: bool = False,
    ) -> None:
        self.services.append(Service(service, kind, dc, rack, switch, host, app, critical))

    def hosts_of(self, host: str) -> list[str]:
        return [s.service for s in self.services if s.host == host and s.service != host]

    def behind(self, switch: str) -> list[str]:
        return [s.service for s in self.services if s.switch == switch and s.service != switch]

    def standard_fleet(self) -> None:
        """~100 services: P19 (4 switches, 8 web hosts, apps, databases), RBX, GRA, SBG."""

        def p19(rack_no: int) -> tuple[str, str]:
            return f"P19-R{rack_no:02d}", f"p19-sw-{(rack_no - 1) // 2 + 1:02d}"

        for i in range(1, 5):
            self.add(f"p19-sw-{i:02d}", "switch", "P19", *p19(2 * i - 1), f"p19-sw-{i:02d}", "network", True)
        for h in range(1, 9):
            self.add(f"p19-web-{h:02d}", "server", "P19", *p19(h), f"p19-web-{h:02d}", "hosting")
        for i in range(1, 41):
            h = (i - 1) // 5 + 1
            self.add(f"www-{i:03d}", "site", "P19", *p19(h), f"p19-web-{h:02d}", "sites", i == 1)
        apps = [("api", 3), ("shop", 3), ("checkout", 4), ("search", 3)]
        k = 0
        for app, count in apps:
            for j in range(1, count + 1):
                k += 1
                rack = (k - 1) % 8 + 1
                self.add(f"{app}-{j:02d}", "app", "P19", *p19(rack), f"p19-app-{k:02d}", app, app != "search")
        for i, rack in ((1, 7), (2, 8), (3, 7)):
            self.add(f"p19-db-{i:02d}", "database", "P19", *p19(rack), f"p19-db-{i:02d}", "database", True)
        self.add("p19-lb-01", "loadbalancer", "P19", *p19(1), "p19-lb-01", "edge", True)
        for i in (1, 2):
            self.add(
                f"rbx-sw-{i:02d}",
                "switch",
                "RBX",
                f"RBX-R{i:02d}",
                f"rbx-sw-{i:02d}",
                f"rbx-sw-{i:02d}",
                "network",
            )
        for i in range(101, 111):
            r = 1 if i <= 105 else 2
            self.add(
                f"www-{i}", "site", "RBX", f"RBX-R{r:02d}", f"rbx-sw-{r:02d}", f"rbx-web-{r:02d}", "sites"
            )
        for i in (1, 2):
            self.add(
                f"mail-{i:02d}",
                "email",
                "RBX",
                f"RBX-R{i:02d}",
                f"rbx-sw-{i:02d}",
                f"rbx-mx-{i:02d}",
                "mail",
                True,
            )
        self.add("dns-01", "app", "RBX", "RBX-R01", "rbx-sw-01", "rbx-dns-01", "dns", True)
        self.add("gra-sw-01", "switch", "GRA", "GRA-R01", "gra-sw-01", "gra-sw-01", "network")
        for i in (1, 2):
            self.add(f"stats-{i:02d}", "app", "GRA", "GRA-R01", "gra-sw-01", f"gra-stats-{i:02d}", "stats")
        self.add("backup-01", "app", "GRA", "GRA-R01", "gra-sw-01", "gra-bk-01", "backup")
        for i in range(201, 207):
            self.add(f"www-{i}", "site", "GRA", "GRA-R01", "gra-sw-01", "gra-web-01", "sites")
        self.add("sbg-sw-01", "switch", "SBG", "SBG-R01", "sbg-sw-01", "sbg-sw-01", "network")
        for i in (1, 2):
            self.add(
                f"storage-{i:02d}",
                "storage",
                "SBG",
                "SBG-R01",
                "sbg-sw-01",
                f"sbg-nas-{i:02d}",
                "storage",
                True,
            )
        for i in range(301, 305):
            self.add(f"www-{i}", "site", "SBG", "SBG-R01", "sbg-sw-01", "sbg-web-01", "sites")

    # -- signals
    def metric(self, service: str, metric: str, level: float) -> None:
        self.series.append((service, metric, level))

    def effect(self, service: str, metric: str, start: int, end: int, **kw: float | int | bool) -> None:
        self.effects.setdefault((service, metric), []).append(Effect(start, end, **kw))  # type: ignore[arg-type]

    def fail(
        self, service: str, start: int, end: int, state: str = "CRITICAL", check: str | None = None
    ) -> None:
        svc = next(s for s in self.services if s.service == service)
        key = (service, check or checks_of(svc)[0])
        self.failing.setdefault(key, []).append((start, end, state))

    def release(
        self,
        change_id: str,
        start: int,
        app: str,
        version: str,
        author: str = "alice",
        description: str | None = None,
    ) -> None:
        end = start + 180
        self.changes.append(
            ChangeRow(
                change_id, start, app, version, author, description or f"release {app} {version}", end=end
            )
        )

    def background_releases(self, count: int, *, avoid: tuple[int, int], first_id: int = 1001) -> None:
        """Releases of the days at working hours on random apps, none within ``avoid``."""
        apps = ["api", "shop", "checkout", "search", "sites", "mail", "stats"]
        made = 0
        while made < count:
            off = -int(self.rng.integers(0, self.days))
            t = self.at(f"{int(self.rng.integers(9, 18)):02d}:{int(self.rng.integers(0, 60)):02d}", off)
            app = apps[int(self.rng.integers(len(apps)))]
            if avoid[0] - 7200 <= t <= avoid[1] + 3600:
                continue
            ver = f"{int(self.rng.integers(1, 9))}.{int(self.rng.integers(0, 30))}.{int(self.rng.integers(0, 5))}"
            self.release(f"REL-{first_id + made}", t, app, ver, author=["bob", "carol", "dan"][made % 3])
            made += 1

    def notice(
        self,
        fs_id: int,
        category: str,
        title: str,
        status: str,
        start: int,
        end: int,
        dc: str,
        text: str,
        *,
        updated: int | None = None,
    ) -> str:
        n = WorksNotice(fs_id, category, title, status, start, end, updated or start - 86400, dc, text)
        self.works.append(n)
        return n.change_id

    # -- writing
    def _metrics(self) -> MetricBuffer:
        first_day = (date.fromisoformat(self.day) - timedelta(days=self.days - 1)).isoformat()
        ts = minute_grid(first_day, self.days, self.tz)
        hours, _, _ = local_clock(ts, self.tz)
        shape = load_shape(hours)
        buf = MetricBuffer()
        for service, metric, level in self.series:
            n = len(ts)
            if metric == "bandwidth_mbps":
                v = level * shape * (1 + self.rng.normal(0, 0.03, n))
            elif metric == "error_rate":
                v = level * (1 + 0.2 * shape) * np.exp(self.rng.normal(0, 0.15, n))
            else:
                v = level * (1 + 0.35 * shape) * np.exp(self.rng.normal(0, 0.06, n))
            for e in self.effects.get((service, metric), []):
                win = (ts >= e.start) & (ts < e.end)
                if e.gap:
                    v[win] = np.nan
                elif e.value is not None:
                    v[win] = e.value * np.exp(self.rng.normal(0, 0.05, int(win.sum())))
                elif e.factor is not None:
                    v[win] *= e.factor
                elif e.ramp_to is not None:
                    v[win] *= 1 + (e.ramp_to - 1) * (ts[win] - e.start) / max(e.end - e.start, 1)
                    held = (ts >= e.end) & (ts < (e.hold_until or e.end))
                    v[held] *= e.ramp_to
            buf.add(service, metric, ts, v)
        return buf

    @overload
    def write(self, truths: ScenarioTruth) -> ScenarioTruth: ...
    @overload
    def write(self, truths: list[ScenarioTruth]) -> list[ScenarioTruth]: ...
    def write(self, truths: ScenarioTruth | list[ScenarioTruth]) -> ScenarioTruth | list[ScenarioTruth]:
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        write_services(out / "services.csv", self.services)
        buf = self._metrics()
        if self.metrics_format == "csv":
            buf.write_csv(out / "metrics.csv", self.tz)
        else:
            buf.write_parquet(out / "metrics.parquet")
        first = self.at("00:00", -(self.days - 1))
        log = NagiosLog(start=first)
        for s in self.services:
            for c in checks_of(s):
                log.current(s.service, c)
        for (service, check), failing in sorted(self.failing.items()):
            log.simulate(service, check, failing, offset_s=failing[0][0] % 60)
        log.write(out / "nagios.log")
        releases = [c for c in self.changes if c.kind != "restart"]
        if releases:
            write_deploys(out / "deploys.csv", releases, self.tz)
        if self.works:
            write_works(out / "provider.works.txt", self.works, self.tz)
        if self.icals:
            write_ical(out / "maintenance.ics", self.icals)
        if self.probes:
            write_pingdom(out / "pingdom", self.probes)
        items = truths if isinstance(truths, list) else [truths]
        doc = [asdict(t) for t in items]
        (out / TRUTH_FILE).write_text(
            json.dumps(doc if isinstance(truths, list) else doc[0], indent=2) + "\n"
        )
        return truths


def new_scenario(out: Path, name: str, seed: int, day: str, **kw: str | int) -> Scenario:
    s = Scenario(out, name, seed, day, **kw)  # type: ignore[arg-type]
    s.standard_fleet()
    return s


def baseline_series(s: Scenario, services: Sequence[str], metric: str = "latency_ms") -> None:
    for name in services:
        lvl = {"latency_ms": float(s.rng.uniform(80, 220)), "error_rate": float(s.rng.uniform(0.2, 0.6))}[
            metric
        ]
        s.metric(name, metric, lvl)
