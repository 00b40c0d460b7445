"""PetShop issues end to end: real readers → warehouse → explain names the injected component.

Five issues of the PetShop dataset (``tests/data/petshop``, CC-BY-4.0): metrics only
(latency, requests, availability every 5 minutes), no change, no hard failure.  The
truth is read from each issue's ``target.json`` (``root_cause.node``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from whatchanged.data.petshop import components, read_target, write_history
from whatchanged.engine.explain import explain_at
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

DATA = Path(__file__).resolve().parents[1] / "data" / "petshop" / "low_traffic"
ISSUES = sorted(p.name for p in DATA.glob("*_issue_*"))


@pytest.mark.parametrize("issue", ISSUES)
def test_injected_component_in_top3_with_and_without_graph(issue: str, tmp_path: Path) -> None:
    folder = DATA / issue
    target = read_target(folder)
    truth, at = target.component, target.at
    wh = Warehouse(tmp_path / "wh")
    history = write_history(DATA / "history.csv", tmp_path / "history.csv", before=folder / "metrics.csv")
    summary = ingest(wh, [history, folder / "metrics.csv"], ReadContext())
    assert {reader for _, reader in summary.files} == {"metrics_stacked"}
    settings = load_settings(home=wh.home, tz="UTC")
    with wh.snapshot() as con:
        expl = explain_at(con, at, settings=settings)
    assert expl.incident is not None
    top = expl.causes[0]
    assert top.category == "unknown"
    assert top.component is not None
    assert top.score < 0.5
    assert any("no call graph known" in e for e in top.evidence_against)
    assert truth in components(expl.causes)[:3], components(expl.causes)

    ingest(wh, [DATA / "dependencies.csv"], ReadContext())
    with wh.snapshot() as con:
        expl = explain_at(con, at, settings=settings)
    named = components(expl.causes)
    assert truth in named[:3], named
    best = expl.causes[0]
    assert best.evidence_for
    assert best.evidence_against is not None
    assert "callees_ok" in best.features
    assert "reach" in best.features
