"""The input generators: deterministic files whose raw content carries the stated truth.

Everything here is checked on the generated files directly (CSV, Parquet,
JSON, log lines), never through the engine: these tests pin the inputs the
engine's own end-to-end tests are scored against.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.parquet as pq
import pytest

from whatchanged.data import inputs, scenarios
from whatchanged.data.reference_night import Truth, generate
from whatchanged.data.scenario_kit import CATEGORIES, ScenarioTruth
from whatchanged.data.scenarios import SCENARIOS, truths_of

PARIS = ZoneInfo("Europe/Paris")
ALERT = re.compile(
    r"^\[(\d+)\] (SERVICE ALERT|CURRENT SERVICE STATE): ([^;]+);([^;]+);(\w+);(HARD|SOFT);(\d+);(.*)$"
)


def epoch(text: str, tz: ZoneInfo = PARIS) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp())


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def nagios(path: Path) -> list[tuple[int, str, str, str, str, str]]:
    """(epoch, kind, host, check, state, type) of every line; every line must parse."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = ALERT.match(line)
        assert m, f"{path.name}:{n}: not a Nagios line: {line!r}"
        out.append((int(m[1]), m[2], m[3], m[4], m[5], m[6]))
    assert [r[0] for r in out] == sorted(r[0] for r in out), "log not in time order"
    return out


def services_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        # the optional redundancy_group column follows the nine, when a service has a group
        assert reader.fieldnames in (
            list(inputs.SERVICE_COLUMNS),
            [*inputs.SERVICE_COLUMNS, inputs.GROUP_COLUMN],
        )
        return list(reader)


def works(path: Path) -> list[dict[str, str]]:
    blocks = []
    for block in path.read_text().split("\n---\n"):
        lines = block.strip().splitlines()
        fs, _, title = lines[0].partition(" | ")
        rec = {"id": fs, "title": title}
        for line in lines[1:]:
            key, sep, value = line.partition(": ")
            if sep and key in ("Status", "Start", "End", "Updated", "Datacenter"):
                rec[key] = value
        rec["Description"] = lines[-1]
        blocks.append(rec)
    return blocks


# ------------------------------------------------------------------------------------------------
# the reference night


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    """The full default night (7 days of metrics): what ``whatchanged demo`` ingests."""
    out = tmp_path_factory.mktemp("night")
    return out, generate(out)


def test_reference_night_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, days=1)
    generate(b, days=1)
    fa, fb = files_of(a), files_of(b)
    assert sorted(fa) == sorted(fb)
    assert [name for name in fa if fa[name] != fb[name]] == []


def test_days_override_only_shortens_metrics(tmp_path: Path, night: tuple[Path, Truth]) -> None:
    full, _ = night
    short = tmp_path / "short"
    truth = generate(short, days=2)
    assert truth.metric_rows < 2 * 1440 * truth.metric_series + 1
    for name in (
        "services.csv",
        "deploys.csv",
        "restarts.csv",
        "travaux-ovh.works.txt",
        "pingdom/checks.json",
    ):
        assert (short / name).read_bytes() == (full / name).read_bytes(), name


def test_truth_file_is_hidden_and_matches(night: tuple[Path, Truth]) -> None:
    out, truth = night
    stored = json.loads((out / ".truth.json").read_text())
    assert stored == json.loads(json.dumps(truth.to_dict()))
    assert ".truth.json" not in truth.files
    assert set(truth.files) == set(files_of(out)) - {".truth.json"}


def test_inventory_has_1002_services_mostly_in_p19(night: tuple[Path, Truth]) -> None:
    out, truth = night
    rows = services_csv(out / "services.csv")
    names = [r["service"] for r in rows]
    assert len(rows) == truth.services == 1002
    assert len(set(names)) == 1002
    by = {r["service"]: r for r in rows}
    dcs = [r["datacenter"] for r in rows]
    assert dcs.count("P19") > 900
    assert {"RBX", "SBG", "GRA"} <= set(dcs)
    assert {r["switch"] for r in rows if r["datacenter"] == "P19"} == {f"p19-sw-{i:02d}" for i in range(1, 9)}
    assert {r["kind"] for r in rows} >= {"site", "backoffice", "email", "database", "loadbalancer", "switch"}
    assert by["bo-primary"]["host"] != by["bo-standby"]["host"]
    assert by["bo-primary"]["switch"] != by["bo-standby"]["switch"]
    # primary and standby are one redundancy group, in one datacenter (``whatchanged fate``)
    assert by["bo-primary"]["redundancy_group"] == by["bo-standby"]["redundancy_group"] != ""
    assert by["bo-primary"]["datacenter"] == by["bo-standby"]["datacenter"]
    assert by["mail-out"]["app"] == by["bo-primary"]["app"] == "backoffice"
    assert all(r["critical"] in ("true", "false") for r in rows)
    assert all(all("=" in t for t in r["tags"].split(";")) for r in rows if r["tags"])


def test_probe_records_14_outages_54_minutes_and_9998_year_to_date(night: tuple[Path, Truth]) -> None:
    out, truth = night
    checks = json.loads((out / "pingdom" / "checks.json").read_text())
    main = next(c for c in checks["checks"] if {"name": "svc-www-main", "type": "u", "count": 1} in c["tags"])
    assert main["id"] == truth.probe_check_id
    states = json.loads((out / "pingdom" / f"summary.outage.{main['id']}.json").read_text())["summary"][
        "states"
    ]
    for prev, nxt in itertools.pairwise(states):
        assert prev["timeto"] == nxt["timefrom"]
        assert prev["status"] != nxt["status"]
    a, b = epoch("2010-11-17 19:23"), epoch("2010-11-17 20:46")
    night_downs = [s for s in states if s["status"] == "down" and a <= s["timefrom"] and s["timeto"] <= b]
    assert len(night_downs) == 14 == truth.general.outage_count
    assert sum(s["timeto"] - s["timefrom"] for s in night_downs) == 3240 == truth.general.downtime_s
    assert night_downs[0]["timefrom"] == a
    assert night_downs[-1]["timeto"] == b
    assert states[0]["timefrom"] == epoch("2010-01-01 00:00")
    assert states[-1]["timeto"] == epoch("2010-11-18 00:00")
    period = states[-1]["timeto"] - states[0]["timefrom"]
    down = sum(s["timeto"] - s["timefrom"] for s in states if s["status"] == "down")
    assert (period, down) == (truth.ytd_period_s, truth.ytd_downtime_s) == (27_734_400, 5_520)
    assert round(100 * (1 - down / period), 2) == 99.98
    assert truth.ytd_availability_display == "99.98%"
    # no probe outage at 18:43: the public site stayed up
    bo = epoch("2010-11-17 18:43")
    assert not [s for s in states if s["status"] == "down" and bo - 3600 <= s["timefrom"] < a]


def test_nagios_tells_both_incidents(night: tuple[Path, Truth]) -> None:
    out, truth = night
    dc = {r["service"]: r["datacenter"] for r in services_csv(out / "services.csv")}
    lines = nagios(out / "nagios.log")
    current = [r for r in lines if r[1] == "CURRENT SERVICE STATE"]
    assert {r[2] for r in current} == set(dc)
    assert lines[: len(current)] == current
    a, b = epoch("2010-11-17 19:23"), epoch("2010-11-17 20:46")
    crit = {r[2] for r in lines if r[1] == "SERVICE ALERT" and r[4] == "CRITICAL" and a <= r[0] <= b}
    assert len(crit) == truth.general.critical_count == 30
    assert crit == set(truth.general.critical_services)
    assert {dc[s] for s in crit} == {"P19"}
    # 18:43: bo-primary goes first, then the back office and the outgoing mail
    f0, f1 = epoch("2010-11-17 18:43"), epoch("2010-11-17 19:05")
    first = [r for r in lines if r[1] == "SERVICE ALERT" and r[4] == "CRITICAL" and f0 <= r[0] < f1]
    assert first[0][2] == truth.backoffice.component == "bo-primary"
    assert {r[2] for r in first} == {"bo-primary", "backoffice", "mail-out"}
    recovered = [r for r in lines if r[2] == "backoffice" and r[4] == "OK" and f0 < r[0] <= f1 + 60]
    assert recovered, "the back office recovers at the switchover"


def test_changes_of_the_day(night: tuple[Path, Truth]) -> None:
    out, truth = night
    with open(out / "deploys.csv", newline="") as fh:
        deploys = list(csv.DictReader(fh))
    assert list(deploys[0]) == [
        "id",
        "timestamp",
        "service",
        "version",
        "author",
        "description",
        "end",
        "environment",
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", d["timestamp"]) for d in deploys)
    day = [d for d in deploys if d["timestamp"].startswith("2010-11-17")]
    assert len(day) == 10
    editor = next(d for d in day if d["id"] == truth.unrelated_release_id)
    assert (editor["timestamp"], editor["service"]) == ("2010-11-17 18:13:00", "editor")
    assert not [d for d in day if "18:14" <= d["timestamp"][11:] <= "23:59"]
    with open(out / "restarts.csv", newline="") as fh:
        restarts = list(csv.DictReader(fh))
    assert list(restarts[0]) == ["id", "timestamp", "service", "version", "author", "description", "kind"]
    assert len(restarts) == 14
    assert {r["kind"] for r in restarts} == {"restart"}
    assert tuple(r["id"] for r in restarts) == truth.restart_ids == truth.general.reactions
    assert all("2010-11-17 19:23" < r["timestamp"] < "2010-11-17 20:46" for r in restarts)
    notices = works(out / "travaux-ovh.works.txt")
    p19 = next(n for n in notices if n["id"] == "FS#4321")
    assert truth.general.change_id == "ovh:FS#4321"
    assert (p19["Start"], p19["End"], p19["Datacenter"]) == ("2010-11-17 19:00", "2010-11-17 21:00", "P19")
    assert "p19-sw-01 to p19-sw-08" in p19["Description"]
    assert [n["Status"] for n in notices].count("Cancelled") == 1
    assert {n["Datacenter"] for n in notices} >= {"P19", "RBX", "GRA", "SBG"}
    assert all(n["Status"] in ("Scheduled", "In progress", "Closed", "Cancelled") for n in notices)


def test_metrics_capped_near_50_from_1923_to_2046(night: tuple[Path, Truth]) -> None:
    out, truth = night
    table = pq.read_table(out / "metrics.parquet")
    assert table.column_names == ["timestamp", "service", "metric", "value"]
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert table.num_rows == truth.metric_rows
    ts = table.column("timestamp").cast("int64").to_numpy() // 1_000_000
    assert ts.min() == epoch("2010-11-11 00:00")
    assert ts.max() == epoch("2010-11-17 23:59")
    svc = table.column("service").to_numpy(zero_copy_only=False)
    metric = table.column("metric").to_numpy(zero_copy_only=False)
    value = table.column("value").to_numpy()
    bw = (metric == "bandwidth_mbps") & np.isin(svc, list(truth.bandwidth_services))
    bw_ts, bw_value = ts[bw], value[bw]

    def fleet_at(text: str) -> float:
        return float(bw_value[bw_ts == epoch(text)].sum())

    assert 180 < fleet_at("2010-11-17 19:00") < 220
    assert 180 < fleet_at("2010-11-16 19:00") < 225
    capped = [fleet_at(f"2010-11-17 {h:02d}:{m:02d}") for h in (19, 20) for m in range(60)]
    capped = capped[23 : 60 + 46]
    assert len(capped) == 83
    assert all(48 <= v <= 52 for v in capped)
    assert fleet_at("2010-11-17 19:22") > 150
    assert fleet_at("2010-11-17 20:46") > 150
    lat = set(svc[metric == "latency_ms"].tolist())
    assert 90 <= len(lat) <= 110
    assert set(truth.general.critical_services) <= lat


# ------------------------------------------------------------------------------------------------
# the scenarios


def test_at_least_twelve_scenarios() -> None:
    assert len(SCENARIOS) >= 12


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_writes_inputs_and_a_consistent_truth(name: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    truths = truths_of(SCENARIOS[name](a))
    SCENARIOS[name](b)
    assert files_of(a) == files_of(b), "not deterministic"
    stored = json.loads((a / ".truth.json").read_text())
    stored = stored if isinstance(stored, list) else [stored]
    assert [ScenarioTruth(**t) for t in stored] == truths
    inventory = {r["service"]: r for r in services_csv(a / "services.csv")}
    assert 50 <= len(inventory) <= 600
    lines = nagios(a / "nagios.log")
    assert {r[2] for r in lines} <= set(inventory)
    metrics = a / "metrics.parquet" if (a / "metrics.parquet").exists() else a / "metrics.csv"
    assert metrics.exists()
    if metrics.suffix == ".csv":
        head = metrics.read_text().splitlines()[:2]
        assert head[0] == "timestamp,service,metric,value"
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d,", head[1])
    else:
        assert pq.read_schema(metrics).names == ["timestamp", "service", "metric", "value"]
    deploys = (a / "deploys.csv").read_text() if (a / "deploys.csv").exists() else ""
    notices = "".join(p.read_text() for p in a.glob("*.works.txt")) + "".join(
        p.read_text() for p in a.glob("*.ics")
    )
    for t in truths:
        assert t.category in CATEGORIES
        assert t.tz == "Europe/Paris"
        zone = ZoneInfo(t.tz)
        at = epoch(t.at_local, zone)
        if t.category == "application_release":
            assert t.change_id
            assert t.component is None
            row = next(r for r in deploys.splitlines() if r.startswith(t.change_id + ","))
            start = epoch(row.split(",")[1], zone)
            assert start <= at <= start + 3600
        elif t.category == "external_maintenance":
            assert t.change_id
            assert t.component is None
            raw_id = t.change_id.split(":", 1)[-1]
            assert raw_id in notices
        elif t.category == "hosting":
            assert t.change_id is None
            assert t.component in inventory
            # the component is the first of its host / switch to go CRITICAL
            mates = {s for s, r in inventory.items() if t.component in (r["host"], r["switch"], s)}
            crit = [r for r in lines if r[4] == "CRITICAL" and r[2] in mates and at <= r[0] < at + 600]
            assert crit
            assert crit[0][2] == t.component
        else:
            assert t.change_id is None
            assert t.component is None
        # something visibly goes wrong at the stated time
        bad = [r for r in lines if r[1] == "SERVICE ALERT" and r[4] != "OK" and at - 60 <= r[0] <= at + 600]
        probe = list((a / "pingdom").glob("summary.outage.*.json")) if (a / "pingdom").exists() else []
        assert bad or probe, f"{t.name}: nothing fails near {t.at_local}"


def test_utc_notice_is_written_in_utc(tmp_path: Path) -> None:
    truth = truths_of(scenarios.utc_notice_local_deploys(tmp_path))[0]
    ics = (tmp_path / "maintenance.ics").read_text()
    provider, _, mid = str(truth.change_id).partition(":")
    assert "DTSTART:20110823T120000Z" in ics
    assert f"X-MAINTNOTE-MAINTENANCE-ID:{mid}" in ics
    assert f"X-MAINTNOTE-PROVIDER:{provider}" in ics
    assert epoch("2011-08-23 14:00") <= epoch(truth.at_local) <= epoch("2011-08-23 16:00")
    assert "2011-08-23 12:10:00,storage" in (tmp_path / "deploys.csv").read_text()


def test_overrun_happens_after_the_announced_end(tmp_path: Path) -> None:
    truth = truths_of(scenarios.maintenance_overrun(tmp_path))[0]
    notice = works(tmp_path / "provider.works.txt")[0]
    assert "ovh:" + notice["id"] == truth.change_id
    assert epoch(notice["End"]) < epoch(truth.at_local)


def test_cancelled_notice_is_not_the_truth(tmp_path: Path) -> None:
    truth = truths_of(scenarios.cancelled_maintenance(tmp_path))[0]
    notice = works(tmp_path / "provider.works.txt")[0]
    assert notice["Status"] == "Cancelled"
    assert epoch(notice["Start"]) <= epoch(truth.at_local) <= epoch(notice["End"])
    assert truth.category == "application_release"
