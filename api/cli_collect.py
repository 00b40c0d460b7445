"""``collect``: pull the live sources of ``<home>/sources.toml`` (once, or ``--every 60s``)."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, TzOpt, settings_from
from whatchanged.api.output import console, emit, table
from whatchanged.engine.errors import WhatchangedError
from whatchanged.engine.timeparse import parse_duration
from whatchanged.engine.warehouse import Warehouse


def outcome_rows(outcomes: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "source": o.source,
            "kind": o.kind,
            "ok": o.ok,
            "skipped": o.skipped,
            "attempts": o.attempts,
            "commits": o.commits,
            "rows_added": o.rows_added,
            "error": o.error,
        }
        for o in outcomes
    ]


def cmd_collect(
    home: HomeOpt = None,
    tz: TzOpt = None,
    sources: Annotated[
        Path | None, typer.Option("--sources", help="Sources file [default <home>/sources.toml].")
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Pull again every DURATION (60s, 5m) until interrupted; default once."),
    ] = None,
    passes: Annotated[
        int | None, typer.Option("--passes", min=1, help="With --every: stop after N passes.")
    ] = None,
    notify: Annotated[
        bool,
        typer.Option("--notify/--no-notify", help="Post new incidents to the sinks of the sources file."),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Pull Prometheus, Statuspage, feeds and an iCalendar folder into the warehouse.

    Each source resumes from its cursor, committed with the data it covers. A failing source is
    retried with backoff and shown in 'whatchanged status'; the others go on. Once: exit code 1
    when a source failed.
    """
    from whatchanged.ingest.collect import Collector
    from whatchanged.ingest.sources import load_sources

    settings = settings_from(home, tz)
    wh = Warehouse(settings.home)
    config = load_sources(settings.home, sources)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if not config.sources:
        console.print(f"no sources in {sources or settings.home / 'sources.toml'}: nothing to collect")
        return
    collector = Collector(wh, config, tz=settings.tz)
    notifier = None
    if notify and config.sinks:
        from whatchanged.engine.sinks import Notifier
        from whatchanged.present.notify import PRESENTER

        notifier = Notifier(wh, config.sinks, presenter=PRESENTER, settings=settings)

    def report(outcomes: list[Any]) -> None:
        rows = outcome_rows(outcomes)
        _after_pass(wh, outcomes)
        if notifier is not None and any(
            o.rows_added.get(t) for o in outcomes for t in ("metrics", "states", "changes")
        ):
            notifier.check()

        def render(_: object) -> None:
            console.print(
                table(
                    "collect",
                    ["source", "kind", "result", "rows added", "error"],
                    [
                        (
                            r["source"],
                            r["kind"],
                            "waiting (backoff)" if r["skipped"] else ("ok" if r["ok"] else "FAILED"),
                            ", ".join(f"{k} {v}" for k, v in r["rows_added"].items() if v) or "0",
                            r["error"] or "",
                        )
                        for r in rows
                    ],
                )
            )

        emit(rows, as_json=as_json, render=render)

    try:
        if every is None:
            outcomes = collector.run_pass()
            report(outcomes)
            if any(not o.ok for o in outcomes):
                raise typer.Exit(1)
        else:
            collector.run(every=parse_duration(every, option="--every"), passes=passes, on_pass=report)
    finally:
        collector.close()
        if notifier is not None:
            notifier.close()


def _after_pass(wh: Warehouse, outcomes: list[Any]) -> None:
    """After a pass that added metrics or states: the analysis of the new minutes in the
    background (metrics), then a compaction when a day now holds too many files."""
    if any(o.rows_added.get("metrics") for o in outcomes):
        from whatchanged.api import cli_analyze

        cli_analyze.start_background(wh.home)
    if any(o.rows_added.get(t) for o in outcomes for t in ("metrics", "states")):
        from whatchanged.api import cli_compact

        with contextlib.suppress(WhatchangedError):  # an unreadable manifest: doctor's to say
            cli_compact.start_background(wh.home)


def start_in_background(settings: Any, *, public_url: str) -> threading.Event | None:
    """What ``serve`` runs when ``<home>/sources.toml`` has sources: ``collect --every`` on a
    daemon thread (new incidents go to the sinks).  Returns the event that stops it, or None."""
    from whatchanged.engine.sinks import Notifier
    from whatchanged.ingest.collect import Collector
    from whatchanged.ingest.sources import load_sources
    from whatchanged.present.notify import PRESENTER

    config = load_sources(settings.home)
    if not config.sources:
        return None
    stop = threading.Event()
    wh = Warehouse(settings.home)

    def run() -> None:
        collector = Collector(wh, config, tz=settings.tz, sleep=stop.wait)
        notifier = Notifier(wh, config.sinks, presenter=PRESENTER, settings=settings, public_url=public_url)

        def after(outcomes: list[Any]) -> None:
            _after_pass(wh, outcomes)
            if any(o.rows_added.get(t) for o in outcomes for t in ("metrics", "states", "changes")):
                notifier.check()

        try:
            collector.run(every=config.collect.every, on_pass=after, stop=stop.is_set)
        except Exception:  # the server keeps serving; the health file says what failed last
            logging.getLogger("whatchanged.collect").exception("the collector thread stopped")
        finally:
            collector.close()
            notifier.close()

    threading.Thread(target=run, name="whatchanged-collect", daemon=True).start()
    console.print(f"collecting {len(config.sources)} source(s) every {config.collect.every}")
    return stop


def cmd_silences(
    home: HomeOpt = None,
    apply_plan: Annotated[bool, typer.Option("--apply", help="Send the plan to Alertmanager.")] = False,
    alertmanager: Annotated[
        str | None,
        typer.Option("--alertmanager", help="Alertmanager URL [default: [silences] in sources.toml]."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Alertmanager silences for maintenance notices upcoming or in progress.

    Creates the missing ones, updates rescheduled ones, expires those of cancelled notices.
    Without --apply, prints what it would do.
    """
    from datetime import UTC, datetime

    import httpx

    from whatchanged.engine import silences
    from whatchanged.engine.errors import ConfigError
    from whatchanged.ingest.sources import load_sources

    settings = settings_from(home)
    config = load_sources(settings.home).silences
    base = (alertmanager or config.alertmanager or "").rstrip("/")
    if not base:
        raise ConfigError(
            "no Alertmanager: give --alertmanager URL or [silences] alertmanager in sources.toml"
        )
    wh = Warehouse(settings.home)
    wh.require()
    con = wh.snapshot()
    try:
        want = silences.wanted(con, datetime.now(UTC), config.labels)
    finally:
        con.close()
    with httpx.Client(timeout=10.0) as client:
        try:
            actions = silences.plan(want, silences.existing(client, base))
            if apply_plan:
                silences.apply(client, base, actions)
        except httpx.HTTPError as exc:
            raise ConfigError(f"Alertmanager at {base}: {exc}") from None
    rows = [
        {
            "action": a.action if apply_plan else f"would {a.action}",
            "change_id": a.change_id,
            "matchers": ", ".join(f'{n}=~"{v}"' for n, v in a.matchers),
            "starts_at": a.starts_at,
            "ends_at": a.ends_at,
            "silence_id": a.silence_id,
        }
        for a in actions
    ]

    def render(_: object) -> None:
        if not rows:
            console.print("silences are up to date")
            return
        console.print(
            table(
                f"silences at {base}",
                ["action", "notice", "matchers", "from", "to"],
                [(r["action"], r["change_id"], r["matchers"], r["starts_at"], r["ends_at"]) for r in rows],
            )
        )

    emit(rows, as_json=as_json, render=render)


def register(app: typer.Typer) -> None:
    app.command("collect")(cmd_collect)
    app.command("silences")(cmd_silences)
