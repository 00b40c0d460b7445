"""The reference night's inputs, one function per source, from its plan (:class:`_Night`): the
metrics, the Nagios log, the Pingdom probes, the deploys, the restarts and the works notices.
:func:`whatchanged.data.reference_night.generate` draws the plan and writes what these return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from whatchanged.data.inputs import (
    ChangeRow,
    MetricBuffer,
    NagiosLog,
    ProbeCheck,
    Service,
    WorksNotice,
    composition,
    load_shape,
    local_clock,
    local_epoch,
    local_text,
    minute_grid,
)

CHECKS_BY_KIND = {
    "site": ("HTTP",),
    "backoffice": ("HTTP", "PING"),
    "email": ("SMTP",),
    "database": ("MYSQL",),
    "loadbalancer": ("HTTP", "PING"),
    "switch": ("SNMP",),
    "app": ("HTTP",),
}


def checks_of(s: Service) -> tuple[str, ...]:
    """The Nagios checks (service descriptions) run against ``s``."""
    if s.service == "mail-out":
        return ("SMTP", "MAILQ")
    if s.service == "bo-standby":
        return ("HTTP", "PING", "HA")
    return CHECKS_BY_KIND.get(s.kind, ("PING",))


#: Front services that go CRITICAL at 19:23; sites spread over the switches complete the count.
FRONT: tuple[str, ...] = ("www-main", "p19-lb-01", "p19-lb-02", "backoffice", "bo-standby", "webmail")
FRONT += ("api-01", "api-02", "api-03", "api-04")


LBS = ("p19-lb-01", "p19-lb-02")


@dataclass
class _Night:
    """Everything the steps of :func:`generate` share."""

    p: dict[str, Any]
    out: Path
    seed: int
    tz: str
    day: str
    days: int
    services: list[Service]
    by_name: dict[str, Service] = field(default_factory=dict)
    outages: list[tuple[int, int]] = field(default_factory=list)  # probe down intervals 19:23-20:46
    critical: list[str] = field(default_factory=list)  # CRITICAL at 19:23
    warn_sites: list[str] = field(default_factory=list)
    crit_window: dict[str, tuple[int, int]] = field(default_factory=dict)

    def stream(self, step: int) -> np.random.Generator:
        """An independent random stream per step, so that ``days`` changes the metrics only."""
        return np.random.default_rng([self.seed, step])

    def at(self, hhmm: str, day_offset: int = 0) -> int:
        d = (date.fromisoformat(self.day) + timedelta(days=day_offset)).isoformat()
        return local_epoch(d, hhmm, self.tz)

    def hm(self, epoch: int) -> str:
        return local_text(epoch, self.tz, seconds=False)

    @property
    def bo(self) -> tuple[int, int, int]:
        b = self.p["backoffice"]
        return self.at(b["fail"]), self.at(b["switchover"]), self.at(b["primary_back"])

    @property
    def window(self) -> tuple[int, int]:
        return self.at(self.p["general"]["start"]), self.at(self.p["general"]["end"])


def _plan_general(n: _Night) -> None:
    """The 14 probe outages, who goes CRITICAL or WARNING, and when."""
    gen = n.p["general"]
    rng = n.stream(2)
    g_start, g_end = n.window
    if int(gen["downtime_s"]) % 60:
        raise ValueError(f"general.downtime_s: expected whole minutes, found {gen['downtime_s']}")
    down_min, n_out = int(gen["downtime_s"]) // 60, int(gen["outages"])
    durations = composition(rng, down_min, n_out)
    gaps = [*composition(rng, (g_end - g_start) // 60 - down_min, n_out - 1), 0]
    t = g_start
    for d, g in zip(durations, gaps, strict=True):
        n.outages.append((t, t + 60 * d))
        t += 60 * (d + g)
    p19_sites = [s.service for s in n.services if s.kind == "site" and s.datacenter == "P19"]
    p19_sites = [s for s in p19_sites if s.startswith("www-0")]
    by_switch: dict[str, list[str]] = {}
    for name in p19_sites:
        by_switch.setdefault(n.by_name[name].switch, []).append(name)
    switches = sorted(by_switch)
    sites: list[str] = []
    while len(sites) < int(gen["critical_services"]) - len(FRONT):
        pool = [s for s in by_switch[switches[len(sites) % len(switches)]] if s not in sites]
        sites.append(pool[int(rng.integers(len(pool)))])
    n.critical = sorted([*FRONT, *sites])
    rest = [s for s in p19_sites if s not in sites]
    n.warn_sites = sorted(rest[i] for i in rng.choice(len(rest), int(gen["warning_services"]), replace=False))
    n.crit_window = {
        s: (g_start + int(rng.integers(0, 150)), g_end + int(rng.integers(0, 300))) for s in n.critical
    }


def _metrics(n: _Night) -> MetricBuffer:
    """bandwidth_mbps on the load balancers and P19 switches, latency_ms on ~100 services."""
    mp = n.p["metrics"]
    first_day = (date.fromisoformat(n.day) - timedelta(days=n.days - 1)).isoformat()
    ts = minute_grid(first_day, n.days, n.tz)
    hours, weekday, dayidx = local_clock(ts, n.tz)
    shape = load_shape(hours)
    rng = n.stream(3)
    g_start, g_end = n.window
    bo_fail, bo_switch, bo_back = n.bo
    fleet = float(mp["bandwidth_at_19h_mbps"]) * shape * rng.normal(1.0, 0.03, n.days)[dayidx]
    fleet *= np.where(weekday >= 5, float(mp["weekend_factor"]), 1.0) * (1 + rng.normal(0, 0.025, len(ts)))
    capped = (ts >= g_start) & (ts < g_end)
    cap = float(mp["cap_mbps"])
    fleet[capped] = np.clip(cap + rng.normal(0, 0.6, int(capped.sum())), cap - 1.5, cap + 1.5)
    rebound = (ts >= g_end) & (ts < g_end + 900)
    fleet[rebound] *= 1 + 0.15 * (1 - (ts[rebound] - g_end) / 900)
    buf = MetricBuffer()
    for lb, share in zip(LBS, (0.51, 0.49), strict=True):
        buf.add(lb, "bandwidth_mbps", ts, fleet * share * (1 + rng.normal(0, 0.01, len(ts))))
    sw_names = [s.service for s in n.services if s.kind == "switch" and s.datacenter == "P19"]
    for w, sw in zip(rng.dirichlet(np.full(len(sw_names), 20.0)), sw_names, strict=True):
        buf.add(sw, "bandwidth_mbps", ts, fleet * w * (1 + rng.normal(0, 0.02, len(ts))))

    fixed = [*n.critical, *n.warn_sites, "bo-primary", "mail-in-01", "editor-01", "editor-02", "editor-03"]
    fixed += ["p19-db-01", "p19-db-02", "p19-db-03", "p19-db-04", "mail-in-02", "billing-01", "stats-01"]
    fixed += ["dns-01", "status", "monitoring"]
    pool = [s.service for s in n.services if s.kind == "site" and s.datacenter == "P19"]
    pool = [s for s in pool if s not in fixed]
    extra = [pool[i] for i in rng.choice(len(pool), int(mp["latency_services"]) - len(fixed), replace=False)]
    latency = sorted({*fixed, *extra})
    spikes = []
    for _ in range(int(mp["noise_spikes"])):
        off = int(rng.integers(0, max(n.days - 1, 1))) - (n.days - 1)
        s0 = n.at(f"{int(rng.integers(1, 17)):02d}:{int(rng.integers(0, 60)):02d}", off)
        spikes.append((latency[int(rng.integers(len(latency)))], s0, s0 + 60 * int(rng.integers(3, 9))))
    for name in latency:
        s = n.by_name[name]
        db = s.kind == "database"
        level = float(rng.uniform(2, 8)) if db else float(rng.uniform(60, 250))
        v = level * (1 + (0.2 if db else 0.35) * shape) * np.exp(rng.normal(0, 0.06, len(ts)))
        for sv, a, b in spikes:
            if sv == name:
                v[(ts >= a) & (ts < b)] *= 2.2
        if name in n.crit_window:
            a, b = n.crit_window[name]
            win = (ts >= a) & (ts < b)
            v[win] = np.minimum(10000.0, 4000 * np.exp(rng.normal(0, 0.35, int(win.sum()))))
        elif name in n.warn_sites:
            v[capped] *= 3.0
        elif s.kind == "site" and s.datacenter == "P19":
            v[capped] *= 1.4  # requests pile up
        if name == "bo-primary":
            v[(ts >= bo_fail) & (ts < bo_back)] = np.nan  # dead: no samples
        elif name == "backoffice":
            v[(ts >= bo_fail) & (ts < bo_switch)] = 10000.0
        buf.add(name, "latency_ms", ts, v)
    # outgoing mail queue: grows while the back office is down, drains after the switchover
    q = 5 + 10 * shape * np.exp(rng.normal(0, 0.2, len(ts)))
    grow = (ts >= bo_fail) & (ts < bo_switch)
    q[grow] += 40 * (ts[grow] - bo_fail) / 60
    drain = (ts >= bo_switch) & (ts < bo_switch + 480)
    q[drain] += 40 * (bo_switch - bo_fail) / 60 * (1 - (ts[drain] - bo_switch) / 480)
    buf.add("mail-out", "queue_len", ts, np.round(q))
    return buf


def _nagios(n: _Night) -> tuple[NagiosLog, set[str], set[str]]:
    """The week's log; returns it with the services CRITICAL at 18:43 and at 19:23."""
    rng = n.stream(4)
    first = n.at("00:00", -(n.days - 1))
    last = n.at("00:00", 1)
    log = NagiosLog(start=first)
    offsets = {}
    for s in n.services:
        for c in checks_of(s):
            offsets[(s.service, c)] = int(rng.integers(0, 60))
            log.current(s.service, c)
    # the week's noise: short blips and one hard problem, never on the night's evening
    for _ in range(40):
        s = n.services[int(rng.integers(len(n.services)))]
        c = checks_of(s)[0]
        t0 = first + int(rng.integers(3600, last - first - 3600))
        if n.at("16:00") <= t0 or s.service.startswith("bo-"):
            continue
        bad = "WARNING" if c in ("HTTP", "PING") and rng.random() < 0.5 else "CRITICAL"
        log.simulate(
            s.service, c, [(t0, t0 + 60 * int(rng.integers(1, 3)), bad)], offset_s=offsets[(s.service, c)]
        )
    if n.days > 1:
        t0 = n.at("03:10", -1)
        log.simulate(
            "rbx-db-02", "MYSQL", [(t0, t0 + 360, "CRITICAL")], offset_s=offsets[("rbx-db-02", "MYSQL")]
        )
    # 18:43: the primary first, then the front, then the outgoing mail queue
    bo_fail, bo_switch, bo_back = n.bo
    bo_crit: set[str] = set()
    bo_checks: list[tuple[str, str, int, list[tuple[int, int, str]]]] = [
        ("bo-primary", "PING", 2, [(bo_fail, bo_back, "CRITICAL")]),
        ("bo-primary", "HTTP", 2, [(bo_fail, bo_back, "CRITICAL")]),
        ("backoffice", "HTTP", 20, [(bo_fail + 15, bo_switch, "CRITICAL")]),
        ("mail-out", "MAILQ", 40, [(bo_fail + 240, bo_fail + 480, "WARNING")]),
        ("bo-standby", "HA", 30, [(bo_fail + 60, bo_switch, "WARNING")]),
    ]
    bo_checks[3][3].append((bo_fail + 480, bo_switch + 240, "CRITICAL"))
    for host, check, off, failing in bo_checks:
        if log.simulate(host, check, failing, offset_s=off):
            bo_crit.add(host)
    # 19:23: www-main flaps with the probe, the others stay down; some sites only slow
    g_start, g_end = n.window
    gen_crit: set[str] = set()
    for name in n.critical:
        if name == "www-main":
            failing = [(a, b, "CRITICAL") for a, b in n.outages]
        else:
            failing = [(*n.crit_window[name], "CRITICAL")]
        for c in checks_of(n.by_name[name]):
            if c == "HTTP" and log.simulate(name, c, failing, offset_s=offsets[(name, c)]):
                gen_crit.add(name)
    for name in n.warn_sites:
        log.simulate(name, "HTTP", [(g_start + 240, g_end, "WARNING")], offset_s=offsets[(name, "HTTP")])
    if gen_crit != set(n.critical):
        raise ValueError(f"expected {len(n.critical)} CRITICAL services at 19:23, simulated {len(gen_crit)}")
    return log, bo_crit, gen_crit


def _random_downs(n: _Night, rng: np.random.Generator, minutes: Sequence[int]) -> list[tuple[int, int]]:
    """Short outages of ``minutes`` on distinct random days of the year before November."""
    year = date.fromisoformat(n.day).year
    picked = sorted(rng.choice(np.arange(4, 300), len(minutes), replace=False).tolist())
    downs = []
    for d, m in zip(picked, minutes, strict=True):
        dd = (date(year, 1, 1) + timedelta(days=int(d))).isoformat()
        a = local_epoch(dd, f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}", n.tz)
        downs.append((a, a + 60 * int(m)))
    return downs


def _pingdom(n: _Night) -> tuple[ProbeCheck, ProbeCheck]:
    """The main-site probe (year to date: earlier short outages + the night's 14) and a status probe."""
    pp = n.p["pingdom"]
    rng = n.stream(5)
    ytd_from = local_epoch(str(pp["year_start"]), "00:00", n.tz)
    ytd_to = n.at("00:00", 1)
    other = composition(rng, int(pp["other_downtime_s"]) // 60, int(pp["other_outages"]), minimum=2)
    main = ProbeCheck(
        check_id=int(pp["check_id"]),
        name="Main site www",
        hostname="www.sitebuilder.example",
        service="www-main",
        created=local_epoch("2008-03-12", "10:41", n.tz),
        history_from=ytd_from,
        history_to=ytd_to,
        downs=tuple(_random_downs(n, rng, other) + n.outages),
    )
    status = ProbeCheck(
        check_id=int(pp["status_check_id"]),
        name="Status page",
        hostname="status.sitebuilder.example",
        service="status",
        created=local_epoch("2009-06-02", "15:20", n.tz),
        history_from=ytd_from,
        history_to=ytd_to,
        downs=tuple(_random_downs(n, rng, [int(rng.integers(1, 4)) for _ in range(3)])),
    )
    return main, status


def _deploys(n: _Night) -> tuple[list[ChangeRow], str]:
    """The week's releases (the night's day exactly as in the parameters); returns the 18:13 id."""
    dp = n.p["deploys"]
    rng = n.stream(6)
    apps = ["api", "sites", "editor", "backoffice", "billing", "stats", "dns", "webmail", "monitoring"]
    authors = ["claire", "marc", "sophie", "julien", "nadia"]
    plan: list[tuple[int, str, str, str]] = [
        (n.at(hm), app, v, who) for hm, app, v, who in dp["day_releases"]
    ]
    for off in range(-6, 0):
        weekend = (date.fromisoformat(n.day) + timedelta(days=off)).weekday() >= 5
        count = int(dp["per_weekend_day"] if weekend else dp["per_weekday"])
        for m in sorted(rng.choice(np.arange(9 * 60, 18 * 60), count, replace=False).tolist()):
            app = apps[int(rng.integers(len(apps)))]
            ver = f"{int(rng.integers(1, 9))}.{int(rng.integers(0, 40))}.{int(rng.integers(0, 5))}"
            who = authors[int(rng.integers(len(authors)))]
            plan.append((n.at(f"{m // 60:02d}:{m % 60:02d}", off), app, ver, who))
    rows = []
    last = n.at(dp["day_releases"][-1][0])
    unrelated = ""
    for i, (t0, app, ver, who) in enumerate(sorted(plan)):
        cid = f"REL-{int(dp['first_id']) + i}"
        end = t0 + 60 * int(rng.integers(2, 7))
        rows.append(ChangeRow(cid, t0, app, ver, who, f"release {app} {ver}", end=end))
        unrelated = cid if t0 == last else unrelated
    return rows, unrelated


def _restarts(n: _Night) -> list[ChangeRow]:
    """One operator restart in each probe outage, halfway through it (at least 30 s in)."""
    targets = ["sites", "backoffice", "p19-lb-01", "api", "sites", "p19-lb-02", "backoffice"]
    ops = ["sophie", "julien", "marc", "claire", "nadia"]
    out = []
    for i, (a, b) in enumerate(n.outages[: int(n.p["general"]["restarts"])]):
        cid = f"RST-{n.day.replace('-', '')}-{i + 1:02d}"
        t0 = a + max(30, (b - a) // 2)
        out.append(ChangeRow(cid, t0, targets[i % 7], "", ops[i % 5], "restart of the stack", kind="restart"))
    return out


def _works(n: _Night) -> list[WorksNotice]:
    wk = n.p["works"]
    provider = str(wk["provider"])
    notices = [
        WorksNotice(
            int(wk["fs_id"]),
            "Network",
            "P19 switches maintenance",
            "Scheduled",
            n.at(wk["start"]),
            n.at(wk["end"]),
            n.at(wk["updated"]),
            "P19",
            "We will reload the switches of room Paris 19 (p19-sw-01 to p19-sw-08). "
            "Short interruptions expected.",
            provider,
        )
    ]
    for fs, cat, title, status, d0, t0, d1, t1, du, tu, dc, text in wk["others"]:
        start, end, upd = n.at(t0, d0), n.at(t1, d1), n.at(tu, du)
        notices.append(WorksNotice(int(fs), cat, title, status, start, end, upd, dc, text, provider))
    return notices
