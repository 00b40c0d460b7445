"""Answers out: post a new incident's explanation where responders are.

::

    Notifier.check()  ── incidents near the latest data (find_incidents) ──┐
                         for each: explain → top cause                     │
                         new incident, or top cause changed and the last   │
                         post is ≥ min_interval old?  ──► every sink:      ▼
          slack    Slack-compatible incoming webhook (Mattermost too): {"text": …}
          webhook  generic JSON: {"event", "incident_url", "explanation": <GET /explain body>}
          grafana  POST <url>/api/annotations {time, timeEnd, tags, text}, Bearer <$token_env>

What was posted (incident → top cause, time, per sink) is kept in ``<home>/_collect/notified.json``
so that a restart does not post again.  A sink that fails is logged and retried at the next check;
the others are not held back.  "New" is judged against the latest data, not the wall clock, so a
replayed night notifies as it would have live.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from whatchanged.engine.model import Explanation
from whatchanged.engine.settings import Settings
from whatchanged.engine.storage import write_atomic
from whatchanged.engine.timeparse import parse_duration
from whatchanged.engine.warehouse import Warehouse

log = logging.getLogger("whatchanged.sinks")

NOTIFIED_FILE = ("_collect", "notified.json")
#: incidents whose onset is this close to the latest data are "opening now"
RECENT = timedelta(hours=2)
#: two incidents with onsets this close that share a service are the same one, notified once
SAME_ONSET_S = 600


class Sink(BaseModel):
    """One ``[[sinks]]`` entry of ``sources.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["slack", "webhook", "grafana"]
    url: str
    #: environment variable holding a bearer token (Grafana service account) — never the token itself
    token_env: str | None = None
    #: base URL people open (link to the incident page), e.g. http://whatchanged.example:8080
    public_url: str | None = None
    min_interval: timedelta = timedelta(minutes=1)

    @field_validator("min_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Presenter:
    """How the posts look, given by the presentation layer (``whatchanged.present.notify.PRESENTER``):
    the engine finds and explains incidents, the caller says how they read."""

    #: an explanation as JSON (the body of ``GET /api/v1/explain``), in a zone
    explanation: Callable[[Explanation, str], dict[str, Any]]
    #: the Slack-compatible message: (explanation JSON, link, event) → text
    slack_text: Callable[[dict[str, Any], str, str], str]
    #: the Grafana annotation: (explanation JSON, link) → body
    grafana_body: Callable[[dict[str, Any], str], dict[str, Any]]


@dataclass(frozen=True)
class Post:
    """One delivery attempt."""

    sink: str
    incident_id: str
    event: str  # opened | cause_changed
    ok: bool
    error: str | None = None


def _same_incident(state: dict[str, Any], inc: dict[str, Any]) -> dict[str, Any]:
    """The record of ``inc`` in ``state``: by id, else an incident already notified with the same
    onset (± 10 min) sharing a service — an incident's id follows its members, and a service
    joining an open incident must not make it "new"."""
    if inc["id"] in state:
        record: dict[str, Any] = state[inc["id"]]
        return record
    onset = datetime.fromisoformat(inc["onset"]).timestamp()
    members = set(inc["services"])
    for record in state.values():
        if abs(record.get("onset", -1e18) - onset) <= SAME_ONSET_S and members & set(
            record.get("services", [])
        ):
            return record
    new: dict[str, Any] = {"onset": onset, "services": sorted(members), "sinks": {}}
    state[inc["id"]] = new
    return new


class Notifier:
    """Checks for new incidents and posts them; safe to call from several threads."""

    def __init__(
        self,
        warehouse: Warehouse,
        sinks: list[Sink],
        *,
        presenter: Presenter,
        settings: Settings | None = None,
        tz: str = "UTC",
        public_url: str = "http://127.0.0.1:8080",
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.sinks = sinks
        self.presenter = presenter
        self.settings = settings or Settings(home=warehouse.home, tz=tz)
        self.tz = self.settings.tz
        self.public_url = public_url
        self.client = client or httpx.Client(timeout=10.0)
        self.clock = clock
        self.environ = dict(os.environ) if environ is None else environ
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # -- state ---------------------------------------------------------------------------------------
    def _state_path(self) -> Any:
        return self.warehouse.home.joinpath(*NOTIFIED_FILE)

    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._state_path().read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        path = self._state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(state, indent=1, sort_keys=True))

    # -- the check -----------------------------------------------------------------------------------
    def explanations(self) -> list[dict[str, Any]]:
        """The explanation of every incident opening near the latest data."""
        from whatchanged.engine.explain import explain_incident
        from whatchanged.engine.extent import last_data_ts
        from whatchanged.engine.incidents import find_incidents

        con = self.warehouse.snapshot()
        try:
            last = last_data_ts(con)
            if last is None:
                return []
            found = find_incidents(con, last - RECENT - timedelta(hours=6), last + timedelta(minutes=1))
            out = []
            for inc in found:
                if inc.onset < last - RECENT:
                    continue
                expl = explain_incident(con, inc, settings=self.settings, at=inc.onset)
                out.append(self.presenter.explanation(expl, self.tz))
            return out
        finally:
            con.close()

    def check(self) -> list[Post]:
        """Post what is new; return every delivery attempted."""
        if not self.sinks:
            return []
        with self._lock:
            state = self._load()
            posts: list[Post] = []
            now = self.clock()
            for expl in self.explanations():
                inc = expl["incident"]
                causes = expl.get("causes") or []
                top = causes[0] if causes else None
                key = f"{top['category']}:{top.get('change_id') or top.get('component')}" if top else "none"
                record = _same_incident(state, inc)
                record["services"] = sorted(set(record.get("services", [])) | set(inc["services"]))
                sent = record.setdefault("sinks", {})
                for sink in self.sinks:
                    seen = sent.get(sink.name)
                    if seen and seen["top"] == key:
                        continue
                    if seen and now - seen["at"] < sink.min_interval.total_seconds():
                        continue  # at most once per incident per min_interval: the change waits
                    event = "cause_changed" if seen else "opened"
                    try:
                        post = self._post(sink, expl, event)
                    except Exception as exc:  # one sink's bug must not hold the others back
                        log.exception("sink %s failed", sink.name)
                        post = Post(sink.name, inc["id"], event, False, f"{type(exc).__name__}: {exc}"[:200])
                    posts.append(post)
                    if post.ok:
                        sent[sink.name] = {"top": key, "at": now}
            self._save(state)
            return posts

    def check_in_background(self) -> threading.Thread:
        """:meth:`check` on a thread (a webhook answers at once); errors are logged."""

        def run() -> None:
            try:
                self.check()
            except Exception:  # a notification must never take a request or a collector down
                log.exception("checking for new incidents failed")

        thread = threading.Thread(target=run, name="whatchanged-notify", daemon=True)
        thread.start()
        return thread

    def _post(self, sink: Sink, expl: dict[str, Any], event: str) -> Post:
        inc_id = expl["incident"]["id"]
        base = (sink.public_url or self.public_url).rstrip("/")
        link = f"{base}/dashboards/incidents/{inc_id}?tz={self.tz}"
        headers = {}
        if sink.token_env:
            token = self.environ.get(sink.token_env)
            if not token:
                return Post(
                    sink.name, inc_id, event, False, f"environment variable {sink.token_env} is not set"
                )
            headers["Authorization"] = f"Bearer {token}"
        if sink.kind == "slack":
            body: dict[str, Any] = {
                "text": self.presenter.slack_text(expl, link, event),
                "username": "whatchanged",
            }
            url = sink.url
        elif sink.kind == "grafana":
            body = self.presenter.grafana_body(expl, link)
            url = sink.url.rstrip("/") + "/api/annotations"
        else:
            body = {"event": event, "incident_url": link, "explanation": expl}
            url = sink.url
        try:
            resp = self.client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("sink %s: %s", sink.name, exc)
            return Post(sink.name, inc_id, event, False, f"{type(exc).__name__}: {exc}"[:200])
        if resp.status_code >= 300:
            log.warning("sink %s: HTTP %s", sink.name, resp.status_code)
            return Post(sink.name, inc_id, event, False, f"HTTP {resp.status_code}")
        log.info("sink %s: posted %s %s at %s", sink.name, event, inc_id, datetime.now(UTC).isoformat())
        return Post(sink.name, inc_id, event, True)
