"""The generated reference night, ingested through the real readers: two incidents, apart.

18:43 — the back office (bo-primary, backoffice, mail-out), over by about 19:13;
19:23 — the general outage: 14 probe outages, 54 minutes down, ~30 CRITICAL, over
around 20:46.  The back office's latency plateau at the 10 s timeout (18:43–19:05)
must neither become its normal level nor tie the two incidents together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from whatchanged.data.reference_night import generate
from whatchanged.engine.incidents import find_incidents, incident_at
from whatchanged.engine.model import Incident
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

TZ = ZoneInfo("Europe/Paris")
MIN = timedelta(minutes=1)


def paris(hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2010, 11, 17, h, m, tzinfo=TZ)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    root: Path = tmp_path_factory.mktemp("refnight")
    generate(root / "in", days=2)  # one previous day is enough history
    wh = Warehouse(root / "wh")
    ingest(wh, [root / "in"], ReadContext(tz="Europe/Paris"))
    return wh


def _at(wh: Warehouse, hhmm: str) -> Incident:
    con = wh.snapshot()
    try:
        inc = incident_at(con, paris(hhmm))
    finally:
        con.close()
    assert inc is not None, f"no incident at {hhmm}"
    return inc


def test_1843_is_the_back_office_alone(night: Warehouse) -> None:
    inc = _at(night, "18:43")
    assert abs(inc.onset - paris("18:43")) <= 2 * MIN
    assert {"bo-primary", "backoffice", "mail-out"} <= set(inc.services_affected)
    assert len(inc.services_affected) <= 6
    assert not any(o.external for o in inc.outages)
    assert inc.end is not None
    assert paris("19:05") <= inc.end <= paris("19:15")


def test_1923_is_the_general_outage(night: Warehouse) -> None:
    inc = _at(night, "19:23")
    assert abs(inc.onset - paris("19:23")) <= 2 * MIN
    assert inc.outage_count == 14
    assert inc.downtime_s == pytest.approx(3240, abs=60)
    assert 25 <= len(inc.critical_services) <= 35
    assert "bo-primary" not in inc.services_affected
    assert "mail-out" not in inc.services_affected
    assert inc.end is not None
    assert paris("20:44") <= inc.end <= paris("21:00")


@pytest.mark.parametrize("online", [True, False])
def test_the_evening_is_exactly_two_incidents(night: Warehouse, online: bool) -> None:
    """Over the whole evening: the plateau leaves no lasting (or late) anomaly."""
    con = night.snapshot()
    try:
        found = find_incidents(con, paris("18:00"), paris("23:59"), online=online)
    finally:
        con.close()
    assert len(found) == 2, [(i.onset, i.end, len(i.services_affected)) for i in found]
    # online onsets only see data up to each detection: a few minutes of slack
    slack = (5 if online else 2) * MIN
    assert abs(found[0].onset - paris("18:43")) <= 2 * MIN
    assert abs(found[1].onset - paris("19:23")) <= slack
    late = [a for i in found for a in i.anomalies if a.service == "backoffice" and a.onset > paris("20:30")]
    assert late == []
