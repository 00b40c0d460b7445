"""Run a seeded scenario end to end and compare the answer with its truth.

Generate the scenario's raw inputs, ingest them through the real readers into
a fresh warehouse, ask "what changed at T?" for each truth, and report the
rank at which the true cause came out.  Used by ``tests/e2e/test_scenarios.py``
and ``benchmarks/scenarios.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from whatchanged.data.scenario_kit import ScenarioTruth
from whatchanged.data.scenarios import SCENARIOS, truths_of
from whatchanged.engine.explain import explain_at
from whatchanged.engine.model import Cause
from whatchanged.engine.settings import load_settings
from whatchanged.engine.timeparse import parse_when
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest


@dataclass(frozen=True)
class Outcome:
    truth: ScenarioTruth
    causes: tuple[Cause, ...]
    #: the onset of the incident the answer is about (None: no incident found)
    onset: datetime | None = None

    @property
    def onset_error_s(self) -> float | None:
        """Seconds from the true onset to the answer's (negative: the answer is early)."""
        if self.onset is None:
            return None
        truth = parse_when(self.truth.onset, tz=self.truth.tz)
        return (self.onset - truth).total_seconds()

    def matches(self, cause: Cause) -> bool:
        t = self.truth
        if cause.category != t.category:
            return False
        if t.change_id and not (
            cause.change_id == t.change_id or (cause.change_id or "").endswith(":" + t.change_id)
        ):
            return False
        return not (t.component and cause.component != t.component)

    @property
    def rank(self) -> int | None:
        """1-based rank of the true cause, None if absent."""
        return next((i for i, c in enumerate(self.causes, start=1) if self.matches(c)), None)


def evaluate(name: str, workdir: Path) -> list[Outcome]:
    inputs = workdir / "in"
    truths = truths_of(SCENARIOS[name](inputs))
    tz = truths[0].tz
    wh = Warehouse(workdir / "wh")
    ingest(wh, [inputs], ReadContext(tz=tz))
    settings = load_settings(home=wh.home, tz=tz)
    con = wh.snapshot()
    try:
        out = []
        for t in truths:
            e = explain_at(con, parse_when(t.at_local, tz=tz), settings=settings)
            out.append(Outcome(t, e.causes, e.incident.onset if e.incident else None))
        return out
    finally:
        con.close()
