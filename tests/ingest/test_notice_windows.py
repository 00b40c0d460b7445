"""The window of a notice as its updates say (``changes_common.window_as_updated``), per reader.

A maintenance announced for 00:00–02:00 UTC, still in progress at 02:05, completed at 02:41.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatchanged.ingest import feed, ical, statuspage
from whatchanged.ingest.changes_common import MAX_OVERRUN, window_as_updated

T0 = datetime(2011, 3, 9, tzinfo=UTC)


def _t(hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return T0 + timedelta(hours=int(h), minutes=int(m))


@pytest.mark.parametrize(
    ("status", "going", "done", "end"),
    [
        ("scheduled", None, None, "02:00"),  # as announced
        ("in_progress", "01:10", None, "02:00"),  # in progress inside the window: nothing known beyond
        ("in_progress", "02:05", None, "02:05"),  # still going after the end: at least until then
        ("completed", None, "02:41", "02:41"),  # overran
        ("completed", None, "01:30", "01:30"),  # finished early
        ("resolved", None, None, "02:00"),  # over, no time given
        ("cancelled", "02:30", "02:30", "02:00"),
    ],
)
def test_window_as_updated(status: str, going: str | None, done: str | None, end: str) -> None:
    got = window_as_updated(
        _t("00:00"),
        _t("02:00"),
        status=status,
        in_progress_at=_t(going) if going else None,
        done_at=_t(done) if done else None,
    )
    assert got == _t(end)


def test_window_as_updated_limits() -> None:
    start, end = _t("00:00"), _t("02:00")
    late = end + MAX_OVERRUN + timedelta(minutes=1)
    assert window_as_updated(start, end, status="completed", done_at=late) == end  # bookkeeping
    assert window_as_updated(start, end, status="in_progress", in_progress_at=late) == end + MAX_OVERRUN
    assert window_as_updated(start, None, status="completed", done_at=_t("01:00")) is None  # a point
    assert window_as_updated(start, end, status="completed", done_at=start - timedelta(hours=1)) == end


def _page(status: str, updates: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "page": {"id": "p", "name": "Upstream", "time_zone": "Europe/Paris"},
        "scheduled_maintenances": [
            {
                "id": "mx1",
                "name": "Switch firmware upgrade",
                "status": status,
                "impact": "maintenance",
                "created_at": "2011-03-07T10:00:00+01:00",
                "updated_at": max(_t(at) for _, at in updates).isoformat(),
                "scheduled_for": "2011-03-09T01:00:00+01:00",  # page-local offsets
                "scheduled_until": "2011-03-09T03:00:00+01:00",
                "incident_updates": [
                    {"status": st, "body": st, "created_at": _t(at).isoformat()} for st, at in updates
                ],
                "components": [{"id": "c", "name": "par2-sw01"}],
                **extra,
            }
        ],
    }


def _window(table: Any) -> tuple[datetime, datetime | None, str | None]:
    (row,) = table.to_pylist()
    return row["start"], row["end"], row["status"]


def test_statuspage_in_progress_after_its_end_then_completed() -> None:
    sp = statuspage.parse_payload
    announced = _page("scheduled", [("scheduled", "00:00")])
    assert _window(sp(announced, source="t", tz="UTC")) == (_t("00:00"), _t("02:00"), "scheduled")
    going = _page("in_progress", [("scheduled", "00:00"), ("in_progress", "00:00"), ("in_progress", "02:05")])
    assert _window(sp(going, source="t", tz="UTC")) == (_t("00:00"), _t("02:05"), "in_progress")
    resolved = _page(
        "completed",
        [("in_progress", "00:00"), ("in_progress", "02:05"), ("completed", "02:41")],
        resolved_at="2011-03-09T03:41:00+01:00",
    )
    assert _window(sp(resolved, source="t", tz="UTC")) == (_t("00:00"), _t("02:41"), "completed")
    # no resolved_at: the completed update says when
    by_update = _page("completed", [("in_progress", "02:05"), ("completed", "02:38")])
    assert _window(sp(by_update, source="t", tz="UTC"))[1] == _t("02:38")


def _vevent(seq: int, status: str, stamp: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Switch firmware upgrade\r\n"
        "DTSTART:20110309T000000Z\r\nDTEND:20110309T020000Z\r\n"
        f"DTSTAMP:{_t(stamp):%Y%m%dT%H%M%SZ}\r\nUID:mx-1@upstream.example\r\nSEQUENCE:{seq}\r\n"
        f"X-MAINTNOTE-MAINTENANCE-ID:MX-1\r\nX-MAINTNOTE-STATUS:{status}\r\n"
        "X-MAINTNOTE-OBJECT-ID:par2-sw01\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.mark.parametrize(
    ("seq", "status", "stamp", "end"),
    [
        (0, "CONFIRMED", "00:00", "02:00"),
        (1, "IN-PROCESS", "02:05", "02:05"),
        (2, "COMPLETED", "02:41", "02:41"),
    ],
)
def test_ical_versions(seq: int, status: str, stamp: str, end: str) -> None:
    table = ical.parse_payload(_vevent(seq, status, stamp), source="t", tz="UTC")
    assert _window(table)[:2] == (_t("00:00"), _t(end))


def _item(body: str, updated: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Upstream</title><id>tag:u,2005:/h</id>
<updated>{_t(updated):%Y-%m-%dT%H:%M:%SZ}</updated>
<entry><id>tag:u,2005:Incident/1</id><title>Switch firmware upgrade</title>
<published>2011-03-07T09:00:00Z</published><updated>{_t(updated):%Y-%m-%dT%H:%M:%SZ}</updated>
<content type="html">{body}</content></entry></feed>""".encode()


def _p(when: str, word: str, text: str) -> str:
    return f"&lt;p&gt;&lt;small&gt;{when}&lt;/small&gt;&lt;br&gt;&lt;strong&gt;{word}&lt;/strong&gt; - {text}&lt;/p&gt;"


def test_feed_dated_updates() -> None:
    scheduled = _p("Mar 9, 00:00 - 02:00 UTC", "Scheduled", "Firmware upgrade.")
    going = _p("Mar 9, 02:05 UTC", "In progress", "Still in progress.") + scheduled
    done = _p("Mar 9, 02:41 UTC", "Completed", "Done.") + going
    assert _window(feed.parse_payload(_item(scheduled, "00:00"), source="t", tz="UTC"))[1] == _t("02:00")
    assert _window(feed.parse_payload(_item(going, "02:05"), source="t", tz="UTC"))[1:] == (
        _t("02:05"),
        "in_progress",
    )
    assert _window(feed.parse_payload(_item(done, "02:50"), source="t", tz="UTC"))[1:] == (
        _t("02:41"),
        "completed",
    )
