"""How every dashboard page is answered: its URL root, its zone, the page cache, the error page.

A page route hands :func:`respond` a ``build(source, tz) -> body``; :func:`respond` runs it
through the :class:`~whatchanged.dashboards.page_cache.PageCache` on a
:class:`~whatchanged.dashboards.wiring.Source` of its own, wraps the body in the page, and turns
a domain error into an HTML error page with the status of ``present.status``, without the
server's paths.  Used by :mod:`~whatchanged.dashboards.pages` and
:mod:`~whatchanged.dashboards.postmortem_page`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from whatchanged.dashboards import assets, html
from whatchanged.dashboards.stale import STALE_HEADER, wants_fresh
from whatchanged.dashboards.wiring import Source, Wiring, source
from whatchanged.engine.errors import WhatchangedError
from whatchanged.engine.settings import Settings
from whatchanged.engine.store import commit_probe
from whatchanged.engine.timeparse import zone
from whatchanged.present.status import status_of

#: where the pages' routers are mounted
PREFIX = "/dashboards"

TzQuery = Annotated[str | None, Query(description="IANA time zone for display; default the configured one")]

STALE_NOTE = (
    '<p class="muted stale">A commit landed since this page was built; the updated page is '
    "being prepared: reload in a moment.</p>"
)


def root_of(request: Request) -> str:
    """The pages' root URL path, behind whatever ``root_path`` the app is served under."""
    return str(request.scope.get("root_path", "")).rstrip("/") + PREFIX


def _plotly_src(request: Request) -> str:
    return f"{root_of(request)}/static/plotly.min.js?v={assets.bundle().tag}"


def _tz(tz: str | None, settings: Settings) -> str:
    name = tz or settings.tz
    zone(name)  # ConfigError naming a bad zone
    return name


def _hide_paths(text: str, settings: Settings) -> str:
    """``text`` without the warehouse's absolute path (pages are shown to anonymous readers)."""
    home = Path(settings.home)
    for path in sorted({str(home.resolve()), str(home.absolute())}, key=len, reverse=True):
        text = text.replace(path, "<warehouse>")
    return text


def error_body(exc: WhatchangedError, settings: Settings, root: str) -> tuple[str, int]:
    """The error page's body for a domain error, and its status (``present.status``)."""
    body = html.render(
        "error.html",
        heading=html.esc(type(exc).__name__),
        message=html.esc(_hide_paths(str(exc), settings)),
        root=root,
    )
    return body, status_of(exc).code


def respond(
    request: Request,
    wiring: Wiring,
    tz: str | None,
    *,
    title: str,
    build: Callable[[Source, str], str],
    figures: bool = True,
) -> HTMLResponse:
    """Run ``build(source, tz)`` and wrap its body in the page, through the page cache;
    domain errors become an error page."""
    root = root_of(request)
    settings = wiring.settings
    url = (str(settings.home), root, request.url.path, request.url.query)
    state = commit_probe(settings.home)
    pages = wiring.pages
    if figures:
        assets.warm()  # gzip plotly.js while the page is computed, not when the browser asks for it
    plotly_src = _plotly_src(request) if figures else None

    def render() -> tuple[str, int]:
        tzname = settings.tz
        shown_title, with_figures = title, figures
        try:
            tzname = _tz(tz, settings)
            with source(wiring) as src:
                body = build(src, tzname)
            status = 200
        except WhatchangedError as exc:
            body, status = error_body(exc, settings, root)
            shown_title, with_figures = "error", False
        page = html.page(
            title=shown_title,
            body=body,
            root=root,
            tz=tzname,
            plotly_src=plotly_src if with_figures else None,
        )
        return page, status

    page, status, stale = pages.serve(
        url, state, render, fresh=wants_fresh(request.headers.get("cache-control", ""))
    )
    if stale:
        page = page.replace("<main>", "<main>" + STALE_NOTE, 1)
        return HTMLResponse(page, status_code=status, headers={STALE_HEADER: "1"})
    return HTMLResponse(page, status_code=status)


def incident_href(root: str, incident_id: str, tz: str) -> str:
    return f"{root}/incidents/{incident_id}?tz={tz}"


def service_links(root: str, names: tuple[str, ...], limit: int = 120) -> str:
    shown = " ".join(html.link(f"{root}/services/{s}", s) for s in names[:limit])
    more = f' <span class="muted">and {len(names) - limit} more</span>' if len(names) > limit else ""
    return f'<p class="services">{shown}{more}</p>' if names else '<p class="muted">none</p>'
