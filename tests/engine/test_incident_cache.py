"""The on-disk incident cache: a new process asking the same question about the same
data reads the answer back; new monitoring data is a miss; new changes are not."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from whatchanged.data.scenarios import SCENARIOS, truths_of
from whatchanged.engine import incidents
from whatchanged.engine.schema import CHANGES, METRICS
from whatchanged.engine.timeparse import parse_when
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest


def test_disk_cache_hit_miss_and_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = truths_of(SCENARIOS["host_failure_no_change"](tmp_path / "in"))[0]
    wh = Warehouse(tmp_path / "wh")
    ingest(wh, [tmp_path / "in"], ReadContext(tz=truth.tz))
    at = parse_when(truth.at_local, tz=truth.tz)
    cache = tmp_path / "wh" / "_cache"
    first = incidents.incident_at(wh.snapshot(), at)
    assert first is not None
    assert len(list(cache.glob("incidents-*.json"))) == 1

    def no_detection(*_args: object, **_kw: object) -> list[incidents.Incident]:
        raise AssertionError("detection ran although the answer was cached")

    incidents.clear_cache()  # as in a new process
    monkeypatch.setattr(incidents, "_find_incidents", no_detection)
    assert incidents.incident_at(wh.snapshot(), at) == first

    # a deploy posted later changes nothing detection depends on: still a hit
    deploy = pa.Table.from_pylist(
        [{"change_id": "late", "kind": "deploy", "start": at, "scope": {"services": ["x"]}}], schema=CHANGES
    )
    wh.commit({"changes": deploy})
    incidents.clear_cache()
    assert incidents.incident_at(wh.snapshot(), at) == first

    # new monitoring data is a new question: detection runs again
    sample = pa.Table.from_pylist(
        [{"ts": at, "service": "zz-new", "metric": "m", "value": 1.0}], schema=METRICS
    )
    wh.commit({"metrics": sample})
    incidents.clear_cache()
    with pytest.raises(AssertionError, match="detection ran"):
        incidents.incident_at(wh.snapshot(), at)
