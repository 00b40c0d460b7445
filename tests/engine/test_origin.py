"""The suspected origin (engine/origin.py) on small worlds with a known truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from whatchanged.engine import deviations
from whatchanged.engine.model import Anomaly, Cause
from whatchanged.engine.origin import Graph, attach, load_graph, rank_origins
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

T0 = datetime(2024, 3, 5, 14, 0, tzinfo=UTC)
#: A calls B, B calls C
CHAIN = Graph({"A": frozenset({"B"}), "B": frozenset({"C"})})


def anomaly(service: str, metric: str, minutes: int, z: float, direction: str = "up") -> Anomaly:
    at = T0 + timedelta(minutes=minutes)
    return Anomaly(service, metric, at, at, None, direction, z, 1.0, 3.0)


def test_chain_cpu_saturation_first_at_the_bottom_is_the_origin() -> None:
    world = [
        anomaly("C", "cpu_percent", 0, 12.0),
        anomaly("C", "latency_ms", 1, 9.0),
        anomaly("B", "latency_ms", 2, 15.0),  # bigger, later, inherited
        anomaly("A", "latency_ms", 3, 14.0),
    ]
    origins = rank_origins(world, CHAIN)
    assert [o.component for o in origins] == ["C", "B", "A"]
    c = origins[0]
    assert c.resource_fault
    assert c.features["callees_ok"] == 1.0
    assert c.features["reach"] == 1.0
    assert any("saturated (cpu_percent)" in e for e in c.evidence_for)
    b = origins[1]
    assert not b.resource_fault
    assert b.features["callees_ok"] == 0.0
    assert any("it calls C, which degraded first" in e for e in b.evidence_against)


def test_chain_middle_degrades_first_with_a_healthy_callee() -> None:
    world = [
        anomaly("B", "error_rate", 0, 10.0),
        anomaly("A", "error_rate", 2, 11.0),
        anomaly("A", "latency_ms", 2, 8.0),
    ]
    origins = rank_origins(world, CHAIN)
    assert origins[0].component == "B"
    assert origins[0].features["callees_ok"] == 1.0
    assert any("stayed healthy (C)" in e for e in origins[0].evidence_for)
    assert not origins[0].resource_fault  # errors alone: unknown with a component, not hosting


def test_without_a_graph_onset_and_size_decide_and_say_so() -> None:
    world = [anomaly("C", "cpu_percent", 0, 12.0), anomaly("A", "latency_ms", 5, 12.0)]
    origins = rank_origins(world, Graph({}))
    assert origins[0].component == "C"
    assert any("no call graph known" in e for e in origins[0].evidence_against)


def test_good_news_and_traffic_alone_name_no_origin() -> None:
    world = [anomaly("A", "latency_ms", 0, 9.0, "down"), anomaly("B", "requests_sum", 0, 9.0)]
    assert rank_origins(world, CHAIN) == []


def test_attach_names_the_origin_on_the_unknown_cause_and_keeps_it_below_half() -> None:
    unknown = Cause(1, "unknown", None, None, "unknown cause", None, None, 0.2, ("no candidate fits",))
    release = Cause(2, "application_release", "REL-1", None, "deploy x", T0, None, 0.1)
    world = [anomaly("C", "cpu_percent", 0, 12.0), anomaly("B", "latency_ms", 2, 15.0)]
    causes = attach([unknown, release], rank_origins(world, CHAIN))
    assert [c.rank for c in causes] == [1, 2, 3]
    assert causes[0].component == "C"
    assert causes[0].category == "hosting"
    assert causes[0].score < 0.5
    assert causes[1].component == "B"
    assert causes[1].category == "unknown"
    assert causes[2].change_id == "REL-1"
    # a confident cause on top is left alone
    confident = Cause(1, "external_maintenance", "ovh:1", None, "works", T0, None, 0.9)
    assert attach([confident], rank_origins(world, CHAIN)) == [confident]


def test_graph_from_both_inputs_through_the_commit_path(tmp_path: Path, warehouse: Warehouse) -> None:
    deps = tmp_path / "deps.csv"
    deps.write_text("service,depends_on\nA,B\nB,C\nA,B\n")
    inventory = tmp_path / "services.csv"
    inventory.write_text("service,kind,datacenter,app,depends_on\nC,api,P19,c,db-1;cache-1\n")
    first = ingest(warehouse, [deps, inventory], ReadContext())
    assert first.result is not None
    assert first.result.rows_added["dependencies"] == 4
    again = ingest(warehouse, [deps, inventory], ReadContext())
    assert again.result is not None
    assert again.result.rows_added.get("dependencies", 0) == 0
    with warehouse.snapshot() as con:
        graph = load_graph(con)
        tags = con.execute("SELECT tags FROM services WHERE service = 'C'").fetchone()
    assert graph.callees == {
        "A": frozenset({"B"}),
        "B": frozenset({"C"}),
        "C": frozenset({"db-1", "cache-1"}),
    }
    assert graph.upstream("C") == {"A", "B"}
    assert tags is not None
    assert "depends_on" not in dict(tags[0] or {})


def test_empty_graph_on_a_warehouse_without_the_table(warehouse: Warehouse) -> None:
    (warehouse.home / "_empty" / "dependencies.parquet").unlink()  # initialised before the table existed
    with warehouse.snapshot() as con:
        assert load_graph(con).callees == {}


def _world(tmp_path: Path, faults: dict[tuple[str, str], tuple[int, float]]) -> Path:
    """Two days of 1-minute metrics for A → B → C (seeded noise); ``faults`` maps
    (service, metric) to (minutes after T0 when it starts, factor)."""
    import numpy as np

    rng = np.random.default_rng(12)
    start = T0 - timedelta(days=2)
    minutes = 2 * 24 * 60 + 60
    base = {"cpu_percent": 30.0, "latency_ms": 40.0}
    lines = ["timestamp,service,metric,value"]
    for service in ("A", "B", "C"):
        for metric, level in base.items():
            noise = rng.normal(0.0, level * 0.03, minutes)
            for i in range(minutes):
                ts = start + timedelta(minutes=i)
                value = level + noise[i]
                fault = faults.get((service, metric))
                if fault and ts >= T0 + timedelta(minutes=fault[0]):
                    value *= fault[1]
                lines.append(f"{ts.isoformat()},{service},{metric},{value:.3f}")
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(lines) + "\n")
    deps = tmp_path / "deps.csv"
    deps.write_text("service,depends_on\nA,B\nB,C\n")
    return path


def _explain(tmp_path: Path, warehouse: Warehouse, metrics: Path) -> list[Cause]:
    from whatchanged.engine.explain import explain_at
    from whatchanged.engine.settings import load_settings

    ingest(warehouse, [metrics, tmp_path / "deps.csv"], ReadContext())
    with warehouse.snapshot() as con:
        expl = explain_at(con, T0 + timedelta(minutes=2), settings=load_settings(home=warehouse.home))
    assert expl.incident is not None
    return list(expl.causes)


def test_world_cpu_saturation_at_the_bottom_of_the_chain(tmp_path: Path, warehouse: Warehouse) -> None:
    metrics = _world(
        tmp_path,
        {
            ("C", "cpu_percent"): (0, 3.0),
            ("C", "latency_ms"): (1, 4.0),
            ("B", "latency_ms"): (2, 4.0),
            ("A", "latency_ms"): (3, 4.0),
        },
    )
    causes = _explain(tmp_path, warehouse, metrics)
    top = causes[0]
    assert (top.category, top.component) == ("hosting", "C"), [(c.category, c.component) for c in causes]
    assert top.score < 0.5
    victims = {c.component: c for c in causes[1:] if c.component}
    assert {"A", "B"} <= set(victims)
    assert any("which degraded first" in e for e in victims["B"].evidence_against)


def test_world_middle_of_the_chain_degrades_first(tmp_path: Path, warehouse: Warehouse) -> None:
    metrics = _world(tmp_path, {("B", "latency_ms"): (0, 4.0), ("A", "latency_ms"): (2, 4.0)})
    causes = _explain(tmp_path, warehouse, metrics)
    top = causes[0]
    assert (top.category, top.component) == ("unknown", "B"), [(c.category, c.component) for c in causes]
    assert any("stayed healthy (C)" in e for e in top.evidence_for)


def test_a_fleet_wide_surge_is_no_resource_fault_of_one_component() -> None:
    """Twelve services saturate within four minutes (a traffic surge): the first is named as
    the suspected origin, but not as a fault on itself; one service saturating alone still is."""
    surge = [anomaly(f"api-{i:02d}", "cpu_pct", i % 5, 10.0 + i) for i in range(12)]
    origins = rank_origins(surge, Graph({}))
    assert origins
    assert not any(o.resource_fault for o in origins)
    assert any("a cause they share" in e for e in origins[0].evidence_against)
    alone = [
        anomaly("api-00", "cpu_pct", 0, 12.0),
        *(anomaly(f"web-{i}", "latency_ms", 9, 8.0) for i in range(4)),
    ]
    assert rank_origins(alone, Graph({}))[0].resource_fault


def test_deviations_reads_history_only_for_series_that_can_pass(
    tmp_path: Path, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The short windows pick the series that can deviate; their answer is the one computed
    over every series, and right after the latest minute nothing can (no history read)."""
    metrics = _world(tmp_path, {("B", "latency_ms"): (0, 4.0), ("C", "cpu_percent"): (1, 0.5)})
    at = T0 + timedelta(minutes=1)
    gap = (at - timedelta(minutes=15), at)  # A's cpu unsampled just before: its level is the history's
    kept = [
        line
        for line in metrics.read_text().splitlines()
        if ",A,cpu_percent," not in line or not gap[0] <= datetime.fromisoformat(line.split(",")[0]) < gap[1]
    ]
    metrics.write_text("\n".join(kept) + "\n")
    ingest(warehouse, [metrics], ReadContext())
    with warehouse.snapshot() as con:
        pre0, end = at - timedelta(minutes=15), at + timedelta(minutes=30)
        services, _metrics = deviations._candidates(con, pre0=pre0, cut=at, end=end, min_samples=2)
        assert "A" in services
        restricted = deviations.deviations(con, at)
        every = sorted(con.execute("SELECT DISTINCT service, metric FROM metrics").fetchall())
        monkeypatch.setattr(
            deviations, "_candidates", lambda *_a, **_k: ([s for s, _ in every], [m for _, m in every])
        )
        all_keys = deviations.deviations(con, at)
        monkeypatch.setattr(deviations, "RESTRICT_MAX", 0)
        unrestricted = deviations.deviations(con, at)
        monkeypatch.undo()
        last = con.execute("SELECT max(ts) FROM metrics").fetchone()
        assert last is not None
        live = deviations._candidates(
            con,
            pre0=last[0] - timedelta(minutes=15),
            cut=last[0],
            end=last[0] + timedelta(minutes=30),
            min_samples=2,
        )
        assert deviations.deviations(con, last[0]) == []
    assert {(a.service, a.metric, a.direction) for a in restricted} >= {
        ("B", "latency_ms", "up"),
        ("C", "cpu_percent", "down"),
    }
    assert restricted == all_keys
    assert restricted == unrestricted
    assert live == ([], [])
