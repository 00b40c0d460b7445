"""The notifier's rules, with canned explanations and a fake clock: a new incident is posted
once to every sink, again when its top cause changes but never twice within a minute, a
service joining it does not make it new, and a failing sink is retried without holding back
the others."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.servers import Recorder, free_port
from whatchanged.engine.sinks import Notifier, Sink
from whatchanged.engine.warehouse import Warehouse
from whatchanged.present.notify import PRESENTER

EXPL: dict[str, Any] = {
    "at": "2010-11-17T19:23:00+01:00",
    "incident": {
        "id": "inc-1",
        "onset": "2010-11-17T19:23:00+01:00",
        "end": "2010-11-17T20:51:00+01:00",
        "services_affected": 2,
        "critical_services": 1,
        "services": ["www-1", "www-2"],
    },
    "causes": [
        {
            "rank": 1,
            "category": "external_maintenance",
            "change_id": "ovh:FS#4321",
            "component": None,
            "title": "P19 switches maintenance",
            "score": 0.93,
            "evidence_for": ["window 19:00-21:00 covers the onset"],
            "evidence_against": [],
        }
    ],
    "ruled_out": [{"category": "application_release", "reason": "no release touches them"}],
}


class Canned(Notifier):
    answers: list[dict[str, Any]]

    def explanations(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.answers)


def _notifier(tmp_path: Path, sinks: list[Sink], clock: list[float]) -> Canned:
    n = Canned(
        Warehouse(tmp_path / "wh"),
        sinks,
        presenter=PRESENTER,
        clock=lambda: clock[0],
        environ={"TOK": "secret"},
    )
    n.answers = [EXPL]
    return n


def test_posted_once_again_on_a_new_top_cause_at_most_once_a_minute(tmp_path: Path) -> None:
    clock = [1000.0]
    with Recorder() as slack, Recorder() as grafana:
        sinks = [
            Sink(name="chat", kind="slack", url=slack.url),
            Sink(name="graf", kind="grafana", url=grafana.url, token_env="TOK"),
        ]
        n = _notifier(tmp_path, sinks, clock)
        try:
            assert [p.event for p in n.check()] == ["opened", "opened"]
            assert n.check() == []  # nothing new
            # a service joins: the incident's id changes with its members, it is not new
            joined = copy.deepcopy(EXPL)
            joined["incident"] |= {"id": "inc-1b", "services": ["www-1", "www-2", "www-3"]}
            n.answers = [joined]
            assert n.check() == []
            # the top cause changes 30 s later: it waits for the minute
            changed = copy.deepcopy(joined)
            changed["causes"][0] |= {"category": "hosting", "change_id": None, "component": "sw-p19-a"}
            n.answers = [changed]
            clock[0] += 30
            assert n.check() == []
            clock[0] += 31
            assert [p.event for p in n.check()] == ["cause_changed", "cause_changed"]
            assert n.check() == []
            # a restart (a new notifier over the same warehouse) remembers what was posted
            again = _notifier(tmp_path, sinks, clock)
            again.answers = [changed]
            assert again.check() == []
        finally:
            n.close()
        assert len(slack.requests) == 2
        assert len(grafana.requests) == 2
        first = slack.requests[0]["body"]["text"]
        assert "new incident" in first
        assert "ovh:FS#4321" in first
        assert "0.93" in first
        assert "+ window 19:00-21:00 covers the onset" in first
        assert "ruled out application_release" in first
        assert "/dashboards/incidents/inc-1" in first
        assert "top cause changed" in slack.requests[1]["body"]["text"]
        ann = grafana.requests[0]
        assert ann["path"] == "/api/annotations"
        assert ann["headers"]["Authorization"] == "Bearer secret"
        assert ann["body"]["tags"] == ["whatchanged", "external_maintenance", "ovh:FS#4321"]
        assert ann["body"]["timeEnd"] - ann["body"]["time"] == 88 * 60 * 1000


def test_a_failing_sink_is_retried_and_does_not_hold_back_the_others(tmp_path: Path) -> None:
    clock = [0.0]
    with Recorder() as hook, Recorder(status=500) as broken:
        sinks = [
            Sink(name="down", kind="webhook", url=f"http://127.0.0.1:{free_port()}/"),
            Sink(name="err", kind="webhook", url=broken.url),
            Sink(name="nokey", kind="grafana", url=hook.url, token_env="MISSING"),
            Sink(name="ok", kind="webhook", url=hook.url),
        ]
        n = _notifier(tmp_path, sinks, clock)
        try:
            posts = {p.sink: p for p in n.check()}
            assert posts["ok"].ok
            assert not posts["down"].ok
            assert posts["err"].error == "HTTP 500"
            assert posts["nokey"].error == "environment variable MISSING is not set"
            assert {p.sink for p in n.check()} == {"down", "err", "nokey"}  # retried, "ok" not again
        finally:
            n.close()
        assert len(hook.requests) == 1
        body = hook.requests[0]["body"]
        assert body["event"] == "opened"
        assert body["explanation"] == EXPL
        assert body["incident_url"].endswith("/dashboards/incidents/inc-1?tz=UTC")
