"""The scenario suite: each seeded scenario's raw inputs ingested through the real
readers into a real warehouse, then "what changed at T?" — asserting the truth
the generator wrote (category, and the change id or component), not a count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from whatchanged.data.scenarios import SCENARIOS, ScenarioTruth, truths_of
from whatchanged.engine.explain import explain_at
from whatchanged.engine.settings import load_settings
from whatchanged.engine.timeparse import parse_when
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest


def _ids_match(truth_id: str, got: str | None) -> bool:
    return got is not None and (got == truth_id or got.endswith(":" + truth_id))


def answer(
    tmp: Path, name: str
) -> list[tuple[ScenarioTruth, list[tuple[str, str | None, str | None, float]]]]:
    inputs = tmp / "in"
    truths = truths_of(SCENARIOS[name](inputs))
    home = tmp / "wh"
    wh = Warehouse(home)
    tz = truths[0].tz
    ingest(wh, [inputs], ReadContext(tz=tz))
    settings = load_settings(home=home, tz=tz)
    con = wh.connect()
    out = []
    for truth in truths:
        at = parse_when(truth.at_local, tz=tz)
        expl = explain_at(con, at, settings=settings)
        out.append((truth, [(c.category, c.change_id, c.component, c.score) for c in expl.causes]))
    con.close()
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_top_cause(name: str, tmp_path: Path) -> None:
    for truth, causes in answer(tmp_path, name):
        assert causes, f"{truth.name}: no cause at all"
        category, change_id, component, _ = causes[0]
        assert category == truth.category, f"{truth.name}: ranked {causes[:3]}"
        if truth.change_id:
            assert _ids_match(truth.change_id, change_id), f"{truth.name}: ranked {causes[:3]}"
        if truth.component:
            assert component == truth.component, f"{truth.name}: ranked {causes[:3]}"
