"""The real provider notices in ``tests/data`` ingest with the windows and ids they state.

* ``maintenance-ical/``: every ``.ics`` is read; where ``<name>.expected.json``
  exists (circuit-maintenance-parser's expected output) every maintenance in
  it must come out with the same window, stamp, sequence, status, objects,
  impact, summary and ids.  The ``ical_ical_no_<field>`` files lack a field
  and have no expected output: :data:`REQUIRED` says which missing fields
  make a notice unusable (rejected with an error naming the field, nothing
  written) — the rest are accepted, as documented in ``ingest/ical.py`` and
  ``docs/changes.md``.
* ``github-status/``: every one of the Statuspage incident files kept there
  (a sample of the full set covering each status, impact and year) is read and
  its window and id checked against the rule documented in
  ``ingest/statuspage.py``.

The files are iterated at test time; none is special-cased.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DATASETS
from whatchanged.engine.errors import InputError
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest, read_all
from whatchanged.ingest.registry import detect

ICAL = DATASETS / "maintenance-ical"
STATUS = DATASETS / "github-status" / "incidents"

#: missing field (from ``ical_ical_no_<field>``) → the iCalendar property an
#: error must name.  Only a start is required: without it a notice cannot be
#: placed in time.  (Identity is required too — MAINTENANCE-ID or UID — but
#: no dataset file lacks both.)
REQUIRED = {"start": "DTSTART"}
#: CMP status → our normalised status
STATUS_MAP = {
    "TENTATIVE": "scheduled",
    "CONFIRMED": "scheduled",
    "RE-SCHEDULED": "scheduled",
    "IN-PROCESS": "in_progress",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
}
IMPACT_ORDER = ["NO-IMPACT", "REDUCED-REDUNDANCY", "DEGRADED", "OUTAGE"]
NO_FIELD = re.compile(r"^ical_ical_no_(\w+)$")


def _ics_files() -> list[Path]:
    return sorted(ICAL.glob("*.ics"))


def _read(path: Path) -> list[dict[str, Any]]:
    tables, _ = read_all([path], ReadContext())
    return [r for t in tables["changes"] for r in t.to_pylist()]


def _epoch(ts: datetime | None) -> int | None:
    return None if ts is None else int(ts.timestamp())


def test_datasets_are_there() -> None:
    assert len(_ics_files()) >= 10, f"maintenance-ical dataset missing under {ICAL}"
    assert (ICAL / "LICENSE").is_file()
    assert len(list(STATUS.glob("*.json"))) >= 100, f"github-status dataset missing under {STATUS}"


@pytest.mark.parametrize("path", _ics_files(), ids=lambda p: p.name)
def test_ical_notice(path: Path, tmp_path: Path) -> None:
    assert detect(path).name == "ical"
    expected_file = path.with_name(path.stem + ".expected.json")
    missing = NO_FIELD.match(path.stem)
    if expected_file.exists():
        _check_expected(path, json.loads(expected_file.read_text()))
    elif missing and missing.group(1) in REQUIRED:
        wh = Warehouse(tmp_path / "wh")
        wh.init()
        with pytest.raises(InputError) as err:
            ingest(wh, [path], ReadContext())
        message = str(err.value)
        assert path.name in message
        assert f"field '{REQUIRED[missing.group(1)]}'" in message
        assert "\n" not in message
        assert wh.manifests() == []
    else:
        rows = _read(path)
        assert rows, f"{path.name}: accepted but produced no change"
        for row in rows:
            assert row["kind"] == "maintenance"
            assert row["start"] is not None
        if missing:
            _check_missing(missing.group(1), rows)


def _check_missing(field: str, rows: list[dict[str, Any]]) -> None:
    """What an accepted notice without ``field`` looks like (documented fallbacks)."""
    (row,) = rows
    if field == "end":
        assert row["end"] is None  # RFC 5545: a date-time event without end is a point
    elif field == "stamp":
        assert row["stamp"] is None
        assert row["sequence"] is not None
    elif field == "maintenance_id":
        assert row["change_id"].endswith(":42")  # falls back to the UID
    elif field == "provider":
        assert row["change_id"].startswith("example.com:")  # from the ORGANIZER's domain
    elif field == "object_id":
        assert row["scope"]["services"] == []


def _check_expected(path: Path, expected: list[dict[str, Any]]) -> None:
    rows = _read(path)
    assert len(rows) == len(expected), f"{path.name}: {len(rows)} changes for {len(expected)} maintenances"
    for exp in expected:
        mid = exp["maintenance_id"]
        found = [r for r in rows if r["change_id"].endswith(":" + mid) or mid in (r["title"] or "")]
        assert len(found) == 1, (
            f"{path.name}: maintenance {mid} not found once in {[r['change_id'] for r in rows]}"
        )
        row = found[0]
        assert _epoch(row["start"]) == exp["start"], (path.name, "start")
        assert _epoch(row["end"]) == exp["end"], (path.name, "end")
        assert _epoch(row["stamp"]) == exp["stamp"], (path.name, "stamp")
        assert row["sequence"] == exp["sequence"]
        assert row["status"] == STATUS_MAP[exp["status"]]
        # CMP's provider parsers shorten SUMMARY (Colt); we keep it whole
        assert exp["summary"] in row["title"]
        circuits = exp.get("circuits", [])
        assert row["scope"]["services"] == [c["circuit_id"] for c in circuits]
        if circuits:
            worst = max((c["impact"] for c in circuits), key=IMPACT_ORDER.index)
            assert row["impact"] == ("none" if worst == "NO-IMPACT" else worst.lower().replace("-", "_"))
        if "provider" in exp:
            assert row["change_id"] == f"{exp['provider']}:{mid}"
        if "organizer" in exp:
            assert row["author"] == exp["organizer"].removeprefix("mailto:")
        for key in ("uid", "account"):
            if key in exp:
                assert exp[key] in json.loads(row["raw"])["vevent"], (path.name, key)
        assert row["kind"] == "maintenance"
        assert row["source"].startswith("ical")


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.slow
def test_statuspage_incidents_keep_their_windows_and_ids() -> None:
    files = sorted(STATUS.glob("*.json"))
    assert files
    for path in files:
        doc = json.loads(path.read_text())
        inc = doc["incident"]
        assert detect(path).name == "statuspage", path.name
        (row,) = _read(path)
        fs = re.search(r"\bFS#\s?(\d+)\b", inc["name"])
        assert row["change_id"] == (f"ovh:FS#{fs.group(1)}" if fs else f"statuspage:{inc['id']}")
        scheduled = inc.get("scheduled_for")
        if scheduled:
            assert row["kind"] == "maintenance"
            assert row["start"] == _iso(scheduled)
        else:
            assert row["kind"] == "provider_incident"
            assert row["start"] == min(_iso(inc["created_at"]), _iso(inc["started_at"])), path.name
            assert row["end"] == (_iso(inc["resolved_at"]) if inc["resolved_at"] else None), path.name
        assert row["end"] is None or row["end"] >= row["start"]
        assert row["stamp"] == _iso(inc["updated_at"])
        assert row["title"] == inc["name"]
        assert row["status"] == {"resolved": "resolved", "postmortem": "resolved"}.get(
            inc["status"], row["status"]
        )
        assert {c["name"] for c in inc["components"]} <= set(row["scope"]["services"])
        assert row["source"] == f"statuspage:{doc['page']['name']}"


@pytest.mark.slow
def test_statuspage_dataset_ingests_in_one_commit(tmp_path: Path) -> None:
    files = sorted(STATUS.glob("*.json"))
    wh = Warehouse(tmp_path / "wh")
    summary = ingest(wh, [STATUS], ReadContext())
    assert summary.result is not None
    assert summary.result.rows_added["changes"] == len(files)
    con = wh.snapshot()
    try:
        (n, kinds) = con.sql("SELECT count(DISTINCT change_id), list(DISTINCT kind) FROM changes").fetchall()[
            0
        ]
    finally:
        con.close()
    assert n == len(files)
    assert kinds == ["provider_incident"]
