"""Issue #12, classes 3 and 4: notices whose window or scope is not in their first announcement.

Each test writes a small world in the real formats (services CSV, metrics CSV,
Nagios log; Statuspage JSON, iCalendar or Atom notices), ingests it into a
temporary warehouse through the real readers and asks ``explain_at`` — the
call behind ``whatchanged explain`` and ``GET /api/v1/explain``.

* an **overrunning maintenance**: announced for a window that ends before the
  onset, updated "still in progress" after its scheduled end, completed later.
  The update may arrive after the question was first asked: re-asking gives
  the updated answer;
* a **notice that names its datacenter only in its text** (no component): the
  datacenter degrading softly while the notice's window covers the onset is
  the notice's effect, not a datacenter failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.notice_worlds import (
    World,
    atom_notice,
    explain,
    ical_notice,
    load,
    score_of,
    statuspage_maintenance,
    waves,
)
from whatchanged.engine.model import Explanation


@dataclass(frozen=True)
class Overrun:
    """A maintenance of ``switches`` from ``start`` to ``until`` (local), still in progress at
    ``update``, completed at ``done``; the services behind them fail at ``onset``."""

    tz: str
    page_tz: str
    day: date
    dc: str
    prefix: str
    switches: int
    sites: int
    failing: int  # switches in the notice's scope, whose sites fail
    start: str
    until: str
    update: str
    onset: str
    done: str
    down_min: int


OVERRUNS = {
    "paris-two-switches": Overrun(
        tz="Europe/Paris",
        page_tz="Europe/Paris",
        day=date(2011, 3, 9),
        dc="PAR2",
        prefix="par2",
        switches=3,
        sites=6,
        failing=2,
        start="00:00",
        until="02:00",
        update="02:05",
        onset="02:20",
        done="02:41",
        down_min=18,
    ),
    "tokyo-three-switches-utc-page": Overrun(
        tz="Asia/Tokyo",
        page_tz="UTC",
        day=date(2013, 10, 2),
        dc="TYO-1",
        prefix="tyo1",
        switches=4,
        sites=5,
        failing=3,
        start="01:00",
        until="03:00",
        update="03:04",
        onset="03:35",
        done="03:52",
        down_min=12,
    ),
}


def _overrun_world(case: Overrun, seed: int, folder: Path) -> tuple[World, list[str], Path]:
    w = World(seed=seed, tz=case.tz, day=case.day)
    w.datacenter(case.dc, switches=case.switches, sites_per_switch=case.sites, prefix=case.prefix)
    w.datacenter("OTHER9", switches=2, sites_per_switch=4, prefix="oth9")
    scope = [f"{case.prefix}-sw{k:02d}" for k in range(1, case.failing + 1)]
    hit = [s for sw in scope for s in w.behind(sw)]
    onset = w.local(case.onset)
    w.fail(hit, [(onset, onset + timedelta(minutes=case.down_min))])
    return w, scope, w.write(folder)


def _top(exp: Explanation) -> tuple[str, str | None]:
    c = exp.causes[0]
    return c.category, c.change_id or c.component


def _assert_incident(exp: Explanation, onset: datetime, outages: int, affected: int) -> None:
    assert exp.incident is not None
    assert exp.incident.onset == onset
    assert exp.incident.outage_count == outages
    assert len(exp.incident.services_affected) == affected


@pytest.mark.parametrize("name", sorted(OVERRUNS))
def test_statuspage_maintenance_that_overran(name: str, tmp_path: Path) -> None:
    case = OVERRUNS[name]
    w, scope, inputs = _overrun_world(case, 11, tmp_path / "in")
    onset, n_hit = w.local(case.onset), case.failing * case.sites
    home, notices = tmp_path / "wh", tmp_path / "notices"
    notices.mkdir()
    ident = f"mx{case.prefix}"
    title = f"Firmware upgrade of {len(scope)} access switches"
    first = ("scheduled", w.local("10:00", -3), "We will upgrade the switch firmware. Short interruptions.")

    def page(version: str, status: str, updates: list[tuple[str, datetime, str]], **kw: datetime) -> Path:
        return statuspage_maintenance(
            notices / f"{version}.json",
            ident=ident,
            name=title,
            start=w.local(case.start),
            until=w.local(case.until),
            status=status,
            updates=updates,
            components=scope,
            page_tz=case.page_tz,
            **kw,
        )

    load(home, [inputs, page("v1", "scheduled", [first])], case.tz)
    before = explain(home, onset, case.tz)
    _assert_incident(before, onset, 1, n_hit)
    # announced only: its window ended before the onset, the switches failing look like the cause
    assert _top(before)[0] == "hosting"

    started = ("in_progress", w.local(case.start), "The maintenance is in progress.")
    extended = ("in_progress", w.local(case.update), "Still in progress: the work takes longer than planned.")
    load(home, [page("v2", "in_progress", [first, started, extended])], case.tz)
    during = explain(home, onset, case.tz)  # the update came after the onset: asking again
    _assert_incident(during, onset, 1, n_hit)
    assert _top(during) == ("external_maintenance", f"statuspage:{ident}")
    cause = during.causes[0]
    assert cause.features["time"] == 1.0
    assert cause.features["recall"] == 1.0
    assert any("still in progress" in e and "covers the onset" in e for e in cause.evidence_for)
    hosting = next(c for c in during.causes if c.category == "hosting")
    assert (
        f"it sits in the scope of statuspage:{ident}, whose window covers the onset"
        in hosting.evidence_against
    )
    assert hosting.score < cause.score

    done = ("completed", w.local(case.done), "The maintenance is completed.")
    load(
        home,
        [page("v3", "completed", [first, started, extended, done], resolved=w.local(case.done))],
        case.tz,
    )
    after = explain(home, onset, case.tz)
    _assert_incident(after, onset, 1, n_hit)
    assert _top(after) == ("external_maintenance", f"statuspage:{ident}")
    assert after.causes[0].end == w.local(case.done)
    assert score_of(after, "external_maintenance") > score_of(after, "hosting") + 0.2


@pytest.mark.parametrize("name", sorted(OVERRUNS))
def test_ical_maintenance_overrun_by_a_higher_sequence(name: str, tmp_path: Path) -> None:
    case = OVERRUNS[name]
    w, scope, inputs = _overrun_world(case, 23, tmp_path / "in")
    onset, n_hit = w.local(case.onset), case.failing * case.sites
    home, notices = tmp_path / "wh", tmp_path / "notices"
    notices.mkdir()
    maint = f"CHG-{case.prefix.upper()}-0917"

    def notice(seq: int, status: str, stamp: datetime) -> Path:
        return ical_notice(
            notices / f"seq{seq}.ics",
            maint_id=maint,
            summary="Access switch firmware upgrade",
            start=w.local(case.start),
            end=w.local(case.until),
            stamp=stamp,
            sequence=seq,
            status=status,
            objects=scope,
        )

    load(home, [inputs, notice(0, "CONFIRMED", w.local("09:30", -5))], case.tz)
    assert _top(explain(home, onset, case.tz))[0] == "hosting"
    load(home, [notice(1, "IN-PROCESS", w.local(case.update))], case.tz)
    during = explain(home, onset, case.tz)
    _assert_incident(during, onset, 1, n_hit)
    assert _top(during) == ("external_maintenance", f"upstream.example:{maint}")
    load(home, [notice(2, "COMPLETED", w.local(case.done))], case.tz)
    after = explain(home, onset, case.tz)
    assert _top(after) == ("external_maintenance", f"upstream.example:{maint}")
    assert after.causes[0].end == w.local(case.done)
    hosting = next(c for c in after.causes if c.category == "hosting")
    assert hosting.features["covered"] == 1.0
    # a late copy of the first announcement does not undo the updates
    load(home, [notice(0, "CONFIRMED", w.local("09:30", -5))], case.tz)
    assert explain(home, onset, case.tz).causes[0].end == w.local(case.done)


@dataclass(frozen=True)
class TextScope:
    """A datacenter ``dc`` degrading softly while a notice naming it only in its text is open."""

    tz: str
    day: date
    dc: str
    prefix: str
    switches: int
    sites: int
    onset: str
    window: tuple[str, str]
    fmt: str  # atom | statuspage | ical
    title: str
    body: str
    aliases: str = ""


TEXT_SCOPES = {
    "atom-dc2": TextScope(
        tz="America/Chicago",
        day=date(2012, 5, 22),
        dc="DC2",
        prefix="dc2",
        switches=5,
        sites=6,
        onset="21:40",
        window=("21:00", "23:30"),
        fmt="atom",
        title="Core router replacement — DC2",
        body="We will replace the core routers. Reduced capacity expected.",
    ),
    "statuspage-ams-7": TextScope(
        tz="Europe/Amsterdam",
        day=date(2014, 1, 15),
        dc="AMS-7",
        prefix="a7",
        switches=4,
        sites=7,
        onset="23:12",
        window=("22:30", "01:00"),
        fmt="statuspage",
        title="Network capacity upgrade",
        body="Traffic through ams-7 will be rerouted during the upgrade.",
    ),
    "ical-alias-zurich": TextScope(
        tz="Europe/Zurich",
        day=date(2015, 6, 3),
        dc="ZRH1",
        prefix="z1",
        switches=6,
        sites=4,
        onset="05:05",
        window=("04:00", "06:00"),
        fmt="ical",
        title="Cooling works, Zurich Glattbrugg hall",
        body="Reduced capacity during the works.",
        aliases="datacenters:\n  Zurich Glattbrugg: ZRH1\n",
    ),
}


def _text_notice(case: TextScope, w: World, folder: Path) -> tuple[Path, str]:
    folder.mkdir()
    a = w.local(case.window[0])
    b = w.local(case.window[1], 1 if case.window[1] < case.window[0] else 0)
    announced = w.local("09:00", -2)
    if case.fmt == "atom":
        entry = f"tag:status.upstream.example,2005:Incident/{case.prefix}42"
        path = atom_notice(
            folder / "history.atom",
            entry_id=entry,
            title=case.title,
            start=a,
            end=b,
            published=announced,
            body=case.body,
        )
        return path, f"feed:{entry}"
    if case.fmt == "statuspage":
        path = statuspage_maintenance(
            folder / "scheduled-maintenances.json",
            ident=f"sp{case.prefix}",
            name=case.title,
            start=a,
            until=b,
            status="scheduled",
            updates=[("scheduled", announced, case.body)],
            components=[],
            page_tz="UTC",
        )
        return path, f"statuspage:sp{case.prefix}"
    path = ical_notice(
        folder / "notice.ics",
        maint_id="W-77",
        summary=case.title,
        start=a,
        end=b,
        stamp=announced,
        sequence=0,
        status="CONFIRMED",
        objects=[],
    )
    return path, "upstream.example:W-77"


@pytest.mark.parametrize("name", sorted(TEXT_SCOPES))
def test_notice_naming_its_datacenter_in_text_beats_the_datacenter(name: str, tmp_path: Path) -> None:
    case = TEXT_SCOPES[name]
    w = World(seed=7, tz=case.tz, day=case.day)
    w.datacenter(case.dc, switches=case.switches, sites_per_switch=case.sites, prefix=case.prefix)
    w.datacenter("DC9", switches=2, sites_per_switch=5, prefix="dc9")
    onset = w.local(case.onset)
    hit = w.in_dc(case.dc)[:-2]  # nearly every site, across every switch: no single component
    pattern = [(4, 3), (5, 2), (3, 3), (4, 0)]
    w.fail(hit, waves(onset, pattern), latency=2.5)
    w.capacity_drop(f"{case.prefix}-lb01", onset, onset + timedelta(minutes=40), 0.4)
    inputs = w.write(tmp_path / "in")
    notice, change_id = _text_notice(case, w, tmp_path / "notices")
    home = tmp_path / "wh"
    if case.aliases:
        home.mkdir()
        (home / "aliases.yaml").write_text(case.aliases)
    load(home, [inputs, notice], case.tz)

    exp = explain(home, onset, case.tz)
    _assert_incident(exp, onset, len(pattern), len(hit) + 1)  # the sites and the capped edge LB
    assert _top(exp) == ("external_maintenance", change_id)
    top = exp.causes[0]
    assert top.features["recall"] == 1.0
    assert any("sit in its scope" in e for e in top.evidence_for), top.evidence_for
    hosting = next(c for c in exp.causes if c.category == "hosting")
    assert (hosting.component, hosting.title) == (case.dc, f"datacenter {case.dc} failed")
    assert f"it sits in the scope of {change_id}, whose window covers the onset" in hosting.evidence_against
    assert hosting.score < 0.5 < top.score
