"""The scenario suite: each seeded scenario's raw inputs ingested through the real
readers into a real warehouse, then "what changed at T?" — asserting the truth
the generator wrote (category, and the change id or component; the incident's onset
within 2 minutes of the planted one), not a count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import check
from whatchanged.data.evaluate import evaluate
from whatchanged.data.scenarios import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_top_cause(name: str, tmp_path: Path) -> None:
    outcomes = evaluate(name, tmp_path)
    check(
        f"scenario-{name}",
        [
            {
                "truth": o.truth.name,
                "causes": [
                    {"category": c.category, "id": c.change_id or c.component, "score": c.score}
                    for c in o.causes
                ],
            }
            for o in outcomes
        ],
    )
    for outcome in outcomes:
        ranked = [(c.category, c.change_id or c.component, c.score) for c in outcome.causes[:3]]
        want = outcome.truth.change_id or outcome.truth.component
        assert outcome.rank == 1, (
            f"{outcome.truth.name}: expected {outcome.truth.category} {want}, ranked {ranked}"
        )
        # the incident starts where the planted failure did (ranking starts from the onset)
        err = outcome.onset_error_s
        assert err is not None, f"{outcome.truth.name}: no incident"
        assert abs(err) <= 120, f"{outcome.truth.name}: onset {outcome.onset}, error {err} s"
