"""The sources file, ``<home>/sources.toml``: what ``whatchanged collect`` pulls, and where the
answers go.

::

    [collect]
    every = "60s"          # --every default
    timeout = "10s"        # per HTTP request
    retries = 2            # further attempts within one pass, after backoff, 2 × backoff …
    backoff = "5s"
    max_backoff = "10m"    # between passes, a failing source waits backoff × 2^failures, capped

    [[prometheus]]
    name = "prom-p19"
    url = "http://127.0.0.1:9090"
    queries = ["bandwidth_mbps", "latency_ms"]
    service_label = "service"
    datacenter_label = "datacenter"
    host_label = "host"
    step = "60s"
    lookback = "6h"

    [[statuspage]]
    name = "provider-status"
    url = "https://status.example.net"

    [[feed]]
    name = "provider-works"
    url = "https://works.example.net/rss.xml"

    [[ical]]
    name = "notices"
    folder = "notices"     # relative to the warehouse

    [alertmanager]
    service_labels = ["service", "job", "instance"]

    [[sinks]]              # kind: slack | webhook | grafana (see whatchanged.engine.sinks)
    name = "oncall"
    kind = "slack"
    url = "https://chat.example.net/hooks/xyz"

Durations are ``90s``, ``30m``, ``2h``, ``1d``.  Unknown keys are refused with the key's name;
names must be unique across sources (each has its own cursor).  The file is read with
:mod:`tomllib`; :func:`load_sources` turns a bad file into one :class:`ConfigError` line.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from whatchanged.engine.errors import ConfigError
from whatchanged.engine.silences import DEFAULT_LABELS
from whatchanged.engine.sinks import Sink
from whatchanged.engine.timeparse import parse_duration

SOURCES_FILE = "sources.toml"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 30s, 5m or 2h, found {value!r}")
    try:
        return parse_duration(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CollectOptions(_Strict):
    every: timedelta = Field(default=timedelta(seconds=60), description="Pause between passes.")
    timeout: timedelta = Field(default=timedelta(seconds=10), description="Per HTTP request.")
    retries: int = Field(default=2, ge=0, le=10, description="Further attempts within one pass.")
    backoff: timedelta = Field(default=timedelta(seconds=5), description="First retry delay (doubles).")
    max_backoff: timedelta = Field(default=timedelta(minutes=10), description="Longest wait.")

    _d = field_validator("every", "timeout", "backoff", "max_backoff", mode="before")(
        classmethod(lambda _cls, v: _duration(v))
    )


class _Source(_Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")


class Query(_Strict):
    """A PromQL query whose result has no ``__name__`` (it aggregated), stored as ``metric``."""

    metric: str = Field(min_length=1)
    query: str = Field(min_length=1)


class PrometheusSource(_Source):
    kind: Literal["prometheus"] = "prometheus"
    url: str
    queries: list[str | Query] = Field(min_length=1)
    service_label: str | None = None  # default: service, then job, then instance
    datacenter_label: str | None = None
    host_label: str | None = None
    step: timedelta = timedelta(seconds=60)
    lookback: timedelta = timedelta(hours=6)
    start: datetime | None = None  # first pull starts here instead of now - lookback
    until: datetime | None = None  # never pull past this (replaying a past window)
    chunk: timedelta = timedelta(hours=6)  # one commit per chunk of time
    delay: timedelta = timedelta(seconds=0)  # leave the newest samples for the next pass

    _d = field_validator("step", "lookback", "chunk", "delay", mode="before")(
        classmethod(lambda _cls, v: _duration(v))
    )

    @field_validator("start", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expected a time with an offset, e.g. 2011-04-12T00:00:00Z")
        return value.astimezone(UTC) if value is not None else None

    @field_validator("step")
    @classmethod
    def _whole_seconds(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1 or value.total_seconds() != int(value.total_seconds()):
            raise ValueError(f"expected whole seconds (at least 1s), found {value}")
        return value


class StatuspageSource(_Source):
    kind: Literal["statuspage"] = "statuspage"
    url: str  # the page's base URL; /api/v2/… is appended


class FeedSource(_Source):
    kind: Literal["feed"] = "feed"
    url: str


class IcalSource(_Source):
    kind: Literal["ical"] = "ical"
    folder: Path  # relative to the warehouse when not absolute


class AlertmanagerOptions(_Strict):
    #: labels naming the service, tried in order
    service_labels: list[str] = Field(default_factory=lambda: ["service", "job", "instance"])


class SilencesOptions(_Strict):
    """``whatchanged silences``: where Alertmanager is, and which label each scope dimension is."""

    alertmanager: str | None = None
    labels: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LABELS))


Source = PrometheusSource | StatuspageSource | FeedSource | IcalSource


class SourcesFile(_Strict):
    collect: CollectOptions = CollectOptions()
    prometheus: list[PrometheusSource] = []
    statuspage: list[StatuspageSource] = []
    feed: list[FeedSource] = []
    ical: list[IcalSource] = []
    alertmanager: AlertmanagerOptions = AlertmanagerOptions()
    sinks: list[Sink] = []
    silences: SilencesOptions = SilencesOptions()

    @property
    def sources(self) -> list[Source]:
        return [*self.prometheus, *self.statuspage, *self.feed, *self.ical]


def load_sources(home: Path, path: Path | None = None) -> SourcesFile:
    """Read ``path`` (default ``<home>/sources.toml``); an absent default file is no sources."""
    file = path or home / SOURCES_FILE
    if not file.is_file():
        if path is not None:
            raise ConfigError(f"{file}: no such sources file")
        return SourcesFile()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    try:
        parsed = SourcesFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        found = err.get("input")
        raise ConfigError(f"{file}: {where}: {err['msg']} (found {found!r})") from None
    names = [s.name for s in parsed.sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{file}: source names must be unique, found {dupes} more than once")
    return parsed
