"""``whatchanged collect``: pull the sources of ``sources.toml`` into the warehouse, incrementally.

::

    pass ─┬─ prometheus "prom-p19"   query_range [cursor+step, now-delay] in chunks;
          │                          each chunk = ONE commit {metrics, services, cursors}
          ├─ statuspage "provider"   incidents.json + scheduled-maintenances.json → changes
          ├─ feed "works"            RSS/Atom → changes
          └─ ical "notices"          new or changed *.ics files in a folder → changes

Each source has its own cursor, a row of the ``cursors`` table committed in the same warehouse
commit as the rows it covers: a crash (even SIGKILL) between two commits resumes from the last
one, and a crash inside a commit leaves nothing of it visible — no sample is lost or doubled
(re-pulled rows are also dropped by their natural key).

A source that fails (timeout, HTTP error, TLS error, bad JSON, a payload its reader refuses) is
logged, retried within the pass after ``backoff``, ``2 × backoff`` … (``retries`` times), and
then left until its next retry time (``backoff × 2^failures``, at most ``max_backoff``) while
the others go on.  Its health (:mod:`whatchanged.engine.live`) is what ``status`` shows.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from whatchanged.engine.errors import InputError, WhatchangedError
from whatchanged.engine.live import SourceHealth, read_cursors, read_health, write_health
from whatchanged.engine.schema import METRICS, SERVICES, TS
from whatchanged.engine.warehouse import CURSORS, Warehouse
from whatchanged.ingest import feed, ical, statuspage
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.prometheus_json import split_labels
from whatchanged.ingest.sources import (
    FeedSource,
    IcalSource,
    PrometheusSource,
    Source,
    SourcesFile,
    StatuspageSource,
)

log = logging.getLogger("whatchanged.collect")

#: Prometheus refuses a query_range of more than 11 000 points per series.
MAX_POINTS = 10_000


class SourceError(WhatchangedError):
    """One source could not be pulled this time (the message says what and where)."""


@dataclass(frozen=True)
class Chunk:
    """What one commit of a source carries: tables and the cursor after them."""

    tables: dict[str, pa.Table]
    cursor: dict[str, Any]


@dataclass
class Outcome:
    """What one source did in one pass."""

    source: str
    kind: str
    ok: bool
    skipped: bool = False  # waiting for its next retry
    commits: int = 0
    rows_added: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    error: str | None = None
    txids: list[str] = field(default_factory=list)

    @property
    def added_total(self) -> int:
        return sum(self.rows_added.values())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _get(client: httpx.Client, url: str, *, params: dict[str, Any] | None = None) -> httpx.Response:
    """GET ``url``; any transport or HTTP failure becomes one :class:`SourceError` line."""
    try:
        resp = client.get(url, params=params)
    except httpx.TimeoutException as exc:
        raise SourceError(f"timeout from {url} ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        text = str(exc) or type(exc).__name__
        kind = "TLS error" if ("SSL" in text or "CERTIFICATE" in text.upper()) else "connection failed"
        raise SourceError(f"{kind} for {url}: {text[:200]}") from None
    if resp.status_code != 200:
        raise SourceError(f"HTTP {resp.status_code} from {url}: {resp.text[:120]!r}")
    return resp


def _json(resp: httpx.Response) -> Any:
    try:
        return json.loads(resp.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"not valid JSON from {resp.request.url} ({exc}); starts with {resp.content[:40]!r}"
        ) from None


# -- Prometheus ---------------------------------------------------------------------------------


def matrix_table(doc: Any, *, url: str, metric: str | None, ctx: ReadContext) -> pa.Table:
    """A ``query_range`` response → ``metrics`` rows (labels as the ``prometheus_json`` reader)."""
    if not isinstance(doc, dict) or doc.get("status") != "success":
        found = doc.get("error") if isinstance(doc, dict) else type(doc).__name__
        raise SourceError(f"Prometheus error from {url}: {found!r}")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise SourceError(f"expected a matrix from {url}, found {str(data)[:80]!r}")
    ts_parts: list[Any] = []
    value_parts: list[Any] = []
    cols: dict[str, list[Any]] = {k: [] for k in ("service", "metric", "env", "labels")}
    for n, series in enumerate(data.get("result") or []):
        labels = {str(k): str(v) for k, v in (series.get("metric") or {}).items()}
        svc, used, env, rest = split_labels(labels, ctx)
        if svc is None:
            raise SourceError(f"{url}: data.result[{n}] has no label naming the service ({used}): {labels}")
        name = labels.get("__name__") or metric
        if not name:
            raise SourceError(f"{url}: the query aggregated __name__ away: give the query a metric name")
        values = series.get("values") or []
        if not values:
            continue
        try:  # [[t, "v"], …] as one array: numpy parses the numbers (NaN, +Inf included)
            pairs = np.array(values, dtype=object)
            ts_parts.append(np.rint(pairs[:, 0].astype(np.float64) * 1_000_000).astype(np.int64))
            value_parts.append(pairs[:, 1].astype(np.float64))
        except (ValueError, TypeError, IndexError):
            raise SourceError(f'{url}: data.result[{n}].values: expected [[seconds, "number"], …]') from None
        k = len(values)
        cols["service"].extend([svc] * k)
        cols["metric"].extend([name] * k)
        cols["env"].extend([env] * k)
        cols["labels"].extend([rest or None] * k)
    ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0, np.int64)
    value = np.concatenate(value_parts) if value_parts else np.zeros(0, np.float64)
    return pa.Table.from_arrays(
        [
            pa.array(ts, pa.int64()).cast(TS),
            pa.array(cols["service"], pa.string()),
            pa.array(cols["metric"], pa.string()),
            pa.array(value, pa.float64()),
            pa.array(cols["env"], pa.string()),
            pa.array(cols["labels"], METRICS.field("labels").type),
        ],
        schema=METRICS,
    )


def _new_services(metrics: pa.Table, src: PrometheusSource, known: set[str]) -> pa.Table:
    """Services Prometheus names that the inventory does not know yet, placed by their labels."""
    rows: dict[str, dict[str, Any]] = {}
    if src.datacenter_label or src.host_label:
        wanted = {name for name in (src.datacenter_label, src.host_label) if name}
        for svc, labels in zip(
            metrics.column("service").to_pylist(), metrics.column("labels").to_pylist(), strict=True
        ):
            if svc in known or svc in rows:
                continue
            lab = dict(labels or [])
            if not wanted & lab.keys():
                continue
            rows[svc] = {
                "service": svc,
                "datacenter": lab.get(src.datacenter_label or ""),
                "host": lab.get(src.host_label or ""),
            }
    else:
        for svc in pc.unique(metrics.column("service")).to_pylist():
            if svc not in known:
                rows[svc] = {"service": svc}
    return pa.Table.from_pylist(list(rows.values()), schema=SERVICES)


def pull_prometheus(
    src: PrometheusSource, cursor: dict[str, Any] | None, *, client: httpx.Client, now: float, known: set[str]
) -> Iterator[Chunk]:
    """Chunks of ``[cursor + step, now - delay]`` (or the first run's look-back), step-aligned."""
    step = int(src.step.total_seconds())
    hi = now - src.delay.total_seconds()
    if src.until is not None:
        hi = min(hi, src.until.timestamp())
    hi = math.floor(hi / step) * step
    if cursor and isinstance(cursor.get("end"), int | float):
        lo = int(cursor["end"]) + step
    else:
        first = src.start.timestamp() if src.start is not None else now - src.lookback.total_seconds()
        lo = math.ceil(first / step) * step
    width = max(step, min(int(src.chunk.total_seconds()) // step, MAX_POINTS) * step)
    ctx = ReadContext(service_label=src.service_label)
    url = src.url.rstrip("/") + "/api/v1/query_range"
    while lo <= hi:
        end = min(hi, lo + width - step)
        parts = []
        for query in src.queries:
            text, metric = (query, None) if isinstance(query, str) else (query.query, query.metric)
            resp = _get(client, url, params={"query": text, "start": lo, "end": end, "step": step})
            parts.append(matrix_table(_json(resp), url=url, metric=metric, ctx=ctx))
        metrics = pa.concat_tables(parts)
        services = _new_services(metrics, src, known)
        known.update(services.column("service").to_pylist())
        yield Chunk({"metrics": metrics, "services": services}, {"kind": "prometheus", "end": end})
        lo = end + step


# -- change sources -----------------------------------------------------------------------------


def _only_newer(table: pa.Table, cursor: dict[str, Any] | None) -> tuple[pa.Table, dict[str, Any]]:
    """Rows whose ``stamp`` (the source's update time) is past the cursor, and the new cursor."""
    old = cursor.get("stamp") if cursor else None
    stamps = table.column("stamp")
    if old is not None and table.num_rows:
        limit = pa.scalar(datetime.fromisoformat(old), stamps.type)
        keep = pc.or_kleene(pc.is_null(stamps), pc.greater(stamps, limit))
        table = table.filter(keep)
    newest = pc.max(stamps).as_py() if stamps.null_count < len(stamps) else None
    best = max(filter(None, [old, newest.isoformat() if newest else None]), default=None)
    return table, {"stamp": best}


def pull_statuspage(
    src: StatuspageSource, cursor: dict[str, Any] | None, *, client: httpx.Client
) -> Iterator[Chunk]:
    base = src.url.rstrip("/")
    parts = []
    for path in ("/api/v2/incidents.json", "/api/v2/scheduled-maintenances.json"):
        resp = _get(client, base + path)
        try:
            parts.append(statuspage.parse_payload(_json(resp), source=base + path, tz="UTC"))
        except InputError as exc:
            raise SourceError(f"unexpected Statuspage payload: {exc}") from None
    table, new_cursor = _only_newer(pa.concat_tables(parts), cursor)
    yield Chunk({"changes": table}, {"kind": "statuspage", **new_cursor})


def pull_feed(src: FeedSource, cursor: dict[str, Any] | None, *, client: httpx.Client) -> Iterator[Chunk]:
    resp = _get(client, src.url)
    try:
        table = feed.parse_payload(resp.content, source=src.url, tz="UTC")
    except InputError as exc:
        raise SourceError(f"unexpected feed: {exc}") from None
    table, new_cursor = _only_newer(table, cursor)
    yield Chunk({"changes": table}, {"kind": "feed", **new_cursor})


def pull_ical(src: IcalSource, cursor: dict[str, Any] | None, *, home: Path, tz: str) -> Iterator[Chunk]:
    """New or changed ``*.ics`` files; a bad file fails the source (after the good ones are
    committed) and is read again on every pass until fixed or removed."""
    folder = src.folder if src.folder.is_absolute() else home / src.folder
    if not folder.is_dir():
        raise SourceError(f"no such folder {folder}")
    seen: dict[str, list[int]] = dict((cursor or {}).get("files", {}))
    tables, bad = [], []
    for path in sorted(folder.glob("*.ics")):
        st = path.stat()
        sig = [st.st_mtime_ns, st.st_size]
        if seen.get(path.name) == sig:
            continue
        try:
            tables.append(ical.parse_payload(path.read_bytes(), source=str(path), tz=tz))
        except InputError as exc:
            bad.append(str(exc))
            continue
        seen[path.name] = sig
    if tables:
        yield Chunk({"changes": pa.concat_tables(tables)}, {"kind": "ical", "files": seen})
    if bad:
        raise SourceError(f"{len(bad)} unreadable file(s): {bad[0]}")


# -- the collector --------------------------------------------------------------------------------


class Collector:
    """Runs passes over the sources; keeps each source's health between passes.

    ``client``, ``clock`` and ``sleep`` are test seams (an ``httpx`` transport, a fake clock).
    """

    def __init__(
        self,
        warehouse: Warehouse,
        config: SourcesFile,
        *,
        tz: str = "UTC",
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.warehouse = warehouse
        self.config = config
        self.tz = tz
        opts = config.collect
        self.client = client or httpx.Client(timeout=opts.timeout.total_seconds(), follow_redirects=True)
        self.clock = clock
        self.sleep = sleep  # threading.Event.wait fits too: serve stops it at once

    def close(self) -> None:
        self.client.close()

    def _chunks(self, src: Source, cursor: dict[str, Any] | None, known: set[str]) -> Iterator[Chunk]:
        if isinstance(src, PrometheusSource):
            return pull_prometheus(src, cursor, client=self.client, now=self.clock(), known=known)
        if isinstance(src, StatuspageSource):
            return pull_statuspage(src, cursor, client=self.client)
        if isinstance(src, FeedSource):
            return pull_feed(src, cursor, client=self.client)
        return pull_ical(src, cursor, home=self.warehouse.home, tz=self.tz)

    def _attempt(self, src: Source, out: Outcome) -> None:
        """Pull ``src`` from its committed cursor; every chunk is one commit with its cursor."""
        self.warehouse.init()
        con = self.warehouse.snapshot()
        try:
            cursor = read_cursors(con).get(src.name)
            known = {s for (s,) in con.sql("SELECT service FROM services").fetchall()}
        finally:
            con.close()
        for chunk in self._chunks(src, cursor, known):
            if chunk.cursor == cursor and not any(t.num_rows for t in chunk.tables.values()):
                continue  # nothing new, nothing to record
            row = pa.table(
                {
                    "source": [src.name],
                    "cursor": [json.dumps(chunk.cursor, sort_keys=True)],
                    "updated": [datetime.now(UTC)],
                },
                schema=CURSORS,
            )
            result = self.warehouse.commit({**chunk.tables, "cursors": row}, source=f"collect:{src.name}")
            cursor = chunk.cursor
            out.commits += 1
            if result.txid:
                out.txids.append(result.txid)
            for table, n in result.rows_added.items():
                if table != "cursors":
                    out.rows_added[table] = out.rows_added.get(table, 0) + n

    def pull(self, src: Source, health: SourceHealth) -> Outcome:
        """One source, with its retries; updates ``health``."""
        opts = self.config.collect
        out = Outcome(src.name, src.kind, ok=False)
        for attempt in range(opts.retries + 1):
            out.attempts = attempt + 1
            health.last_attempt = _iso(self.clock())
            try:
                self._attempt(src, out)
            except (SourceError, InputError, httpx.HTTPError, OSError) as exc:
                out.error = str(exc)
                log.warning("source %s: attempt %d failed: %s", src.name, attempt + 1, exc)
                if attempt < opts.retries:
                    wait = min(opts.backoff.total_seconds() * 2**attempt, opts.max_backoff.total_seconds())
                    self.sleep(wait)
                continue
            out.ok, out.error = True, None
            break
        if out.ok:
            health.last_success = health.last_attempt
            health.consecutive_failures = 0
            health.last_error = None
            health.next_retry = None
        else:
            health.consecutive_failures += 1
            health.last_error = out.error
            wait = min(
                opts.backoff.total_seconds() * 2**health.consecutive_failures,
                opts.max_backoff.total_seconds(),
            )
            health.next_retry = _iso(self.clock() + wait)
        health.rows_added += out.added_total
        return out

    def run_pass(self, *, respect_backoff: bool = False) -> list[Outcome]:
        """Every source once (a failing one is skipped until its next retry when asked)."""
        self.warehouse.init()
        health = read_health(self.warehouse)
        outcomes = []
        for src in self.config.sources:
            h = health.setdefault(src.name, SourceHealth(source=src.name, kind=src.kind))
            if (
                respect_backoff
                and h.next_retry
                and datetime.fromisoformat(h.next_retry).timestamp() > self.clock()
            ):
                outcomes.append(Outcome(src.name, src.kind, ok=False, skipped=True, error=h.last_error))
                continue
            outcomes.append(self.pull(src, h))
            write_health(self.warehouse, health)
        write_health(self.warehouse, health)
        return outcomes

    def run(
        self,
        *,
        every: timedelta,
        passes: int | None = None,
        on_pass: Callable[[list[Outcome]], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Passes every ``every`` (``passes`` of them, or until ``stop()``)."""
        done = 0
        while not stop() and (passes is None or done < passes):
            started = self.clock()
            outcomes = self.run_pass(respect_backoff=True)
            done += 1
            if on_pass is not None:
                on_pass(outcomes)
            if passes is not None and done >= passes:
                break
            self.sleep(max(0.0, every.total_seconds() - (self.clock() - started)))
