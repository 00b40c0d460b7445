"""The reference night: raw monitoring inputs of Wednesday 2010-11-17 with known truth.

A website-builder host monitors 1002 services, most of them in the provider
datacenter P19 behind switches ``p19-sw-01`` … ``p19-sw-08``.  That evening:

* 18:43 — the back-office primary ``bo-primary`` fails, the standby does not
  take over; back office and outgoing mail are down until a manual switchover
  at 19:05 (cause class *hosting*, component ``bo-primary``);
* 19:23 → 20:46 — the provider reloads the P19 switches (works notice
  ``FS#4321``): outbound bandwidth is capped near 50 Mbit/s, the main-site
  probe records 14 outages cumulating 54 minutes, 30 services go CRITICAL,
  the team restarts the stack 14 times (cause class *external maintenance*).

:func:`generate` writes the inputs in the formats the readers accept, plus
``.truth.json`` (hidden, so that ``whatchanged ingest OUT_DIR`` skips it)::

    services.csv                 inventory
    metrics.parquet              1-minute metrics, long format (timestamp UTC)
    nagios.log                   Nagios SERVICE ALERT / CURRENT SERVICE STATE lines
    pingdom/checks.json          GET /checks
    pingdom/summary.outage.<id>.json   year to date
    deploys.csv                  the week's releases (local time, no offset)
    restarts.csv                 the 14 operator restarts (kind=restart)
    travaux-ovh.works.txt        the provider's works notices of the week

The writers below (``write_*``, :class:`NagiosLog`) are shared with
:mod:`whatchanged.data.scenarios`.  Only stdlib, numpy, pyarrow and pyyaml are
used: the generator knows nothing of the engine or the readers.

Command line: ``python -m whatchanged.data.reference_night OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from whatchanged.data.inputs import (
    Service,
    write_deploys,
    write_pingdom,
    write_services,
    write_works,
)
from whatchanged.data.night_sources import (
    LBS,
    _deploys,
    _metrics,
    _nagios,
    _Night,
    _pingdom,
    _plan_general,
    _restarts,
    _works,
)

DEFAULT_PARAMS = Path(__file__).with_name("reference_night.yaml")
TRUTH_FILE = ".truth.json"

# --------------------------------------------------------------------------------------------
# the truth


@dataclass(frozen=True)
class IncidentTruth:
    """What ``whatchanged explain --at <at_local>`` must answer for one incident."""

    at_local: str  # "2010-11-17 19:23", wall time in Truth.tz
    category: str  # hosting | application_release | external_maintenance | unknown
    change_id: str | None
    component: str | None  # hosting: the service that failed first
    component_host: str | None
    onset_local: str
    end_local: str
    critical_count: int
    critical_services: tuple[str, ...]
    outage_count: int  # external probe outages
    downtime_s: int  # their cumulated duration
    must_rank_below: tuple[str, ...]  # change ids that must rank below the truth
    reactions: tuple[str, ...]  # change ids of the operators' reactions (restarts)


@dataclass(frozen=True)
class Truth:
    """Expected answers of the reference night (also written as ``.truth.json``)."""

    seed: int
    tz: str
    day: str
    services: int
    general: IncidentTruth  # 19:23
    backoffice: IncidentTruth  # 18:43
    restart_ids: tuple[str, ...]
    unrelated_release_id: str
    probe_check_id: int
    probe_service: str
    ytd_from_utc: str
    ytd_to_utc: str
    ytd_period_s: int
    ytd_downtime_s: int
    ytd_outages: int
    ytd_availability_pct: float  # exact
    ytd_availability_display: str  # "99.98%"
    bandwidth_metric: str
    bandwidth_services: tuple[str, ...]  # the fleet total is the sum over these
    bandwidth_normal_19h_mbps: float
    bandwidth_cap_mbps: float
    metric_series: int
    metric_rows: int
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# the night


def load_params(params_path: Path | None = None) -> dict[str, Any]:
    with open(params_path or DEFAULT_PARAMS, encoding="utf-8") as fh:
        params: dict[str, Any] = yaml.safe_load(fh)
    return params


def build_inventory(p: dict[str, Any], rng: np.random.Generator) -> list[Service]:
    """The named services of the parameters, then shared-hosting sites up to the exact count."""
    inv = p["inventory"]
    out = []
    for name, kind, dc, rack, sw, host, app, crit, tags in inv["named"]:
        pairs = tuple(tuple(t.split("=", 1)) for t in str(tags).split(";") if t)
        out.append(Service(name, kind, dc, rack, sw, host, app, bool(crit), pairs))  # type: ignore[arg-type]
    n_sites = int(inv["services"]) - len(out)
    n_rbx, n_hosts, n_sw = int(inv["rbx_sites"]), int(inv["p19_web_hosts"]), int(inv["p19_switches"])
    for i in range(1, n_sites + 1):
        if i <= n_sites - n_rbx:
            h = int(rng.integers(1, n_hosts + 1))
            rack_no = (h - 1) % (2 * n_sw) + 1
            plan = "pro" if rng.random() < 0.15 else "std"
            rack, sw, host = f"P19-R{rack_no:02d}", f"p19-sw-{(rack_no - 1) // 2 + 1:02d}", f"p19-web-{h:02d}"
            out.append(
                Service(f"www-{i:04d}", "site", "P19", rack, sw, host, "sites", False, (("plan", plan),))
            )
        else:
            host = f"rbx-web-{int(rng.integers(1, 3)):02d}"
            out.append(Service(f"www-{i:04d}", "site", "RBX", "RBX-R04", "rbx-sw-01", host, "sites", False))
    if len(out) != int(inv["services"]):
        raise ValueError(f"inventory has {len(out)} services, expected {inv['services']}")
    groups = {m: str(g) for g, members in (inv.get("redundancy_groups") or {}).items() for m in members}
    unknown = sorted(set(groups) - {s.service for s in out})
    if unknown:
        raise ValueError(f"inventory.redundancy_groups: expected named services, found {unknown}")
    return [replace(s, redundancy_group=groups[s.service]) if s.service in groups else s for s in out]


def generate(out_dir: Path, *, params_path: Path | None = None, days: int | None = None) -> Truth:
    """Write the reference night's inputs into ``out_dir`` and return the truth.

    ``days`` overrides the number of days of metrics (tests use 2 for speed).
    """
    p = load_params(params_path)
    seed = int(p["seed"])
    services = build_inventory(p, np.random.default_rng([seed, 1]))
    n = _Night(
        p=p,
        out=out_dir,
        seed=seed,
        tz=str(p["tz"]),
        day=str(p["day"]),
        days=int(days if days is not None else p["days"]),
        services=services,
        by_name={s.service: s for s in services},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_services(out_dir / "services.csv", services)
    _plan_general(n)
    buf = _metrics(n)
    buf.write_parquet(out_dir / "metrics.parquet")
    log, bo_crit, gen_crit = _nagios(n)
    log.write(out_dir / "nagios.log")
    main, status = _pingdom(n)
    write_pingdom(out_dir / "pingdom", [main, status])
    releases, unrelated = _deploys(n)
    write_deploys(out_dir / "deploys.csv", releases, n.tz)
    restarts = _restarts(n)
    write_deploys(out_dir / "restarts.csv", restarts, n.tz, kind_column=True)
    notices = _works(n)
    write_works(out_dir / "travaux-ovh.works.txt", notices, n.tz)

    g_start, g_end = n.window
    bo_fail, bo_switch, _ = n.bo
    key = notices[0]
    general = IncidentTruth(
        at_local=n.hm(g_start),
        category="external_maintenance",
        change_id=key.change_id,
        component=None,
        component_host=None,
        onset_local=n.hm(g_start),
        end_local=n.hm(g_end),
        critical_count=len(gen_crit),
        critical_services=tuple(sorted(gen_crit)),
        outage_count=len(n.outages),
        downtime_s=sum(b - a for a, b in n.outages),
        must_rank_below=(
            *(r.change_id for r in releases if n.at("00:00") <= r.start < g_start),
            *(x.change_id for x in notices[1:]),
        ),
        reactions=tuple(r.change_id for r in restarts),
    )
    backoffice = IncidentTruth(
        at_local=n.hm(bo_fail),
        category="hosting",
        change_id=None,
        component="bo-primary",
        component_host=n.by_name["bo-primary"].host,
        onset_local=n.hm(bo_fail),
        end_local=n.hm(bo_switch),
        critical_count=len(bo_crit),
        critical_services=tuple(sorted(bo_crit)),
        outage_count=0,
        downtime_s=0,
        must_rank_below=(unrelated,),
        reactions=(),
    )
    ytd_down = sum(b - a for a, b in main.downs)
    ytd_period = main.history_to - main.history_from
    files = sorted(
        str(f.relative_to(out_dir)) for f in out_dir.rglob("*") if f.is_file() and f.name != TRUTH_FILE
    )
    truth = Truth(
        seed=seed,
        tz=n.tz,
        day=n.day,
        services=len(services),
        general=general,
        backoffice=backoffice,
        restart_ids=general.reactions,
        unrelated_release_id=unrelated,
        probe_check_id=main.check_id,
        probe_service=main.service,
        ytd_from_utc=datetime.fromtimestamp(main.history_from, UTC).isoformat(),
        ytd_to_utc=datetime.fromtimestamp(main.history_to, UTC).isoformat(),
        ytd_period_s=ytd_period,
        ytd_downtime_s=ytd_down,
        ytd_outages=len(main.downs),
        ytd_availability_pct=100 * (1 - ytd_down / ytd_period),
        ytd_availability_display=f"{100 * (1 - ytd_down / ytd_period):.2f}%",
        bandwidth_metric="bandwidth_mbps",
        bandwidth_services=LBS,
        bandwidth_normal_19h_mbps=float(p["metrics"]["bandwidth_at_19h_mbps"]),
        bandwidth_cap_mbps=float(p["metrics"]["cap_mbps"]),
        metric_series=len(buf.parts),
        metric_rows=buf.rows,
        files=tuple(files),
    )
    (out_dir / TRUTH_FILE).write_text(json.dumps(truth.to_dict(), indent=2, sort_keys=True) + "\n")
    return truth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m whatchanged.data.reference_night",
        description="Write the reference night's raw inputs (and .truth.json) into OUT_DIR.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument(
        "--params", type=Path, default=None, help="parameters YAML [default: the packaged one]"
    )
    parser.add_argument("--days", type=int, default=None, help="days of metrics (overrides the parameters)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    truth = generate(args.out_dir, params_path=args.params, days=args.days)
    took = time.perf_counter() - started
    size = sum(f.stat().st_size for f in args.out_dir.rglob("*") if f.is_file())
    print(
        f"wrote {len(truth.files)} files ({size / 1e6:.1f} MB, {truth.metric_rows} metric rows) "
        f"to {args.out_dir} in {took:.1f} s"
    )
    print(f"then: whatchanged ingest {args.out_dir} --tz {truth.tz}")
    print(f"      whatchanged explain --at {truth.general.at_local[-5:]} --tz {truth.tz}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
