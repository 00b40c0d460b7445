"""The step-at-the-question fallback (engine/deviations.incident_from_deviations) on 5-minute
metrics: a step that began before the question starts the incident where it began."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from whatchanged.engine.deviations import incident_from_deviations
from whatchanged.engine.schema import METRICS
from whatchanged.engine.warehouse import Warehouse

DAY0 = datetime(2026, 2, 16, 4, tzinfo=UTC)
STEP = DAY0 + timedelta(hours=5, minutes=45)


def _warehouse(home: Path) -> Warehouse:
    rng = np.random.default_rng(3)
    minutes = np.arange(0, 7 * 60, 5)  # 5-minute samples: the detector's 1-minute grid sees no run
    rows: dict[str, list[object]] = {"ts": [], "service": [], "metric": [], "value": []}
    step = int((STEP - DAY0).total_seconds() // 60)
    for svc in ("rank-01", "rank-02", "rank-03", "shop-01"):
        x = 0.4 + rng.normal(0, 0.05, minutes.size)
        if svc.startswith("rank"):
            x[minutes >= step] = 3.2 + rng.normal(0, 0.05, int((minutes >= step).sum()))
        for m, v in zip(minutes.tolist(), x.tolist(), strict=True):
            rows["ts"].append(DAY0 + timedelta(minutes=m))
            rows["service"].append(svc)
            rows["metric"].append("http_5xx_rate")
            rows["value"].append(float(v))
    wh = Warehouse(home)
    wh.init()
    wh.commit({"metrics": pa.table(rows).cast(pa.schema([METRICS.field(n) for n in rows]))})
    return wh


def test_question_minutes_into_a_step_gets_the_step_start(tmp_path: Path) -> None:
    con = _warehouse(tmp_path).snapshot()
    # (asked 7 minutes in or later, two of the three samples just before the question are already
    # on the new level: the level "just before" is the new one and nothing deviates at all)
    for late in (0, 2, 5):
        inc = incident_from_deviations(con, STEP + timedelta(minutes=late))
        assert inc is not None
        assert inc.services_affected == ("rank-01", "rank-02", "rank-03")
        assert inc.onset == STEP, late


def test_no_step_before_the_question_keeps_the_first_deviating_sample(tmp_path: Path) -> None:
    con = _warehouse(tmp_path).snapshot()
    inc = incident_from_deviations(con, STEP - timedelta(minutes=2))
    assert inc is not None
    assert inc.onset == STEP
