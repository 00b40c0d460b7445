"""Alertmanager webhook payloads (version 4) → check states."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from whatchanged.engine.errors import InputError
from whatchanged.ingest.alertmanager import parse_payload


def _alert(status: str, **labels: str) -> dict[str, object]:
    return {
        "status": status,
        "labels": {"alertname": "SiteDown", **labels},
        "annotations": {"summary": "no answer"},
        "startsAt": "2010-11-17T18:23:00.123456789Z",
        "endsAt": "2010-11-17T19:46:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": "c0ffee",
    }


def test_firing_and_resolved_become_states() -> None:
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            _alert("firing", service="www-1"),
            _alert("firing", job="mail", severity="warning"),
            _alert("resolved", instance="db-1:9100"),
        ],
    }
    rows = parse_payload(payload).to_pylist()
    assert [(r["service"], r["check"], r["state"]) for r in rows] == [
        ("www-1", "SiteDown", "CRITICAL"),
        ("mail", "SiteDown", "WARNING"),
        ("db-1:9100", "SiteDown", "OK"),
    ]
    assert rows[0]["ts"] == datetime(2010, 11, 17, 18, 23, 0, 123456, tzinfo=UTC)
    assert rows[2]["ts"] == datetime(2010, 11, 17, 19, 46, tzinfo=UTC)  # resolved: at endsAt
    assert {r["source"] for r in rows} == {"alertmanager"}
    assert rows[0]["message"] == "no answer"


def test_the_service_label_is_configurable() -> None:
    payload = {"version": "4", "status": "firing", "alerts": [_alert("firing", app="shop", job="x")]}
    assert parse_payload(payload, service_labels=("app",)).column("service").to_pylist() == ["shop"]
    with pytest.raises(InputError, match=r"alerts\[0\]\.labels.*'team'"):
        parse_payload(payload, service_labels=("team",))
