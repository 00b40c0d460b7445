"""The postmortem page: ``/dashboards/incidents/{incident_id}/postmortem?lang=&audience=&tz=``.

The draft rendered from its JSON form (:mod:`whatchanged.dashboards.postmortem`), the
Markdown beside it in a text area, and a button that copies it (``static/postmortem.js``,
served from this origin: the pages' Content-Security-Policy allows no inline handler).
Links switch the language (one per catalogue file) and the audience.  Built through the
pages' cache like every page (:func:`whatchanged.dashboards.respond.respond`); its :data:`router` is mounted beside
:data:`whatchanged.dashboards.pages.router`.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from whatchanged.dashboards import html
from whatchanged.dashboards.postmortem import html_fragment, markdown
from whatchanged.dashboards.respond import PREFIX, TzQuery, incident_href, respond, root_of
from whatchanged.dashboards.wiring import SettingsDep, Source, WiringDep
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.incidents import get_incident
from whatchanged.engine.postmortem import build_postmortem
from whatchanged.engine.timeparse import incident_onset
from whatchanged.present.postmortem import AUDIENCES, languages, postmortem_document
from whatchanged.present.postmortem.catalogue import Catalogue

router = APIRouter(prefix=PREFIX, tags=["dashboards"], include_in_schema=False)

SCRIPT = Path(__file__).resolve().parent / "static" / "postmortem.js"


@cache
def _script() -> tuple[bytes, str]:
    data = SCRIPT.read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


@router.get("/static/postmortem.js", name="dashboards_postmortem_js")
def postmortem_js() -> Response:
    """The copy button's script; the URL carries its digest, so it is cached a year."""
    data, digest = _script()
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{digest}"'}
    return Response(data, media_type="text/javascript", headers=headers)


def _href(root: str, incident_id: str, **query: str) -> str:
    return f"{root}/incidents/{incident_id}/postmortem?{urlencode(query)}"


@router.get("/incidents/{incident_id}/postmortem", response_class=HTMLResponse, name="dashboards_postmortem")
def postmortem_page(
    request: Request,
    incident_id: str,
    settings: SettingsDep,
    wiring: WiringDep,
    lang: Annotated[str, Query(description="en, fr: one catalogue file each")] = "en",
    audience: Annotated[str, Query(description="team or customers")] = "team",
    tz: TzQuery = None,
) -> HTMLResponse:
    root = root_of(request)

    def build(src: Source, tzname: str) -> str:
        if lang not in languages():
            raise ConfigError(f"lang: expected one of {', '.join(languages())}, found {lang!r}")
        if audience not in AUDIENCES:
            raise ConfigError(f"audience: expected one of {', '.join(AUDIENCES)}, found {audience!r}")
        incident_onset(incident_id)  # an id naming no possible time: the 404 page
        con = src.con
        local = settings.model_copy(update={"tz": tzname})
        doc = postmortem_document(
            build_postmortem(con, get_incident(con, incident_id), settings=local),
            lang=lang,
            tz=tzname,
            audience=audience,
            link=lambda i, lg, z: f"{root}/incidents/{i}/postmortem?{urlencode({'lang': lg, 'tz': z})}",
        )
        cat = Catalogue.load(lang)
        md = markdown(doc)
        langs = " · ".join(
            f"<b>{html.esc(lg)}</b>"
            if lg == lang
            else html.link(_href(root, incident_id, lang=lg, audience=audience, tz=tzname), lg)
            for lg in languages()
        )
        auds = " · ".join(
            f"<b>{html.esc(cat.text(f'page.audience_{a}'))}</b>"
            if a == audience
            else html.link(
                _href(root, incident_id, lang=lang, audience=a, tz=tzname), cat.text(f"page.audience_{a}")
            )
            for a in AUDIENCES
        )
        api = f"/api/v1/incidents/{incident_id}/postmortem?" + urlencode(
            {"lang": lang, "audience": audience, "tz": tzname}
        )
        _, digest = _script()
        return (
            f"<h1>{html.esc(cat.text('page.heading'))}</h1>"
            f'<p class="muted">{html.link(incident_href(root, incident_id, tzname), cat.text("page.back"))}'
            f" · {langs} · {auds} · "
            f"{html.link(api, 'JSON')} · {html.link(api + '&format=md', 'Markdown')}</p>"
            '<div class="pm-bar">'
            f'<button type="button" id="pm-copy" data-copy="pm-markdown" data-status="pm-copy-status" '
            f'data-done="{html.esc(cat.text("page.copied"))}" data-failed="{html.esc(cat.text("page.copy_failed"))}">'
            f"{html.esc(cat.text('page.copy'))}</button>"
            '<span id="pm-copy-status" role="status" aria-live="polite"></span></div>'
            '<div class="postmortem-page">'
            f"<div><h2>{html.esc(cat.text('page.rendered'))}</h2>{html_fragment(doc)}</div>"
            f"<div><h2>{html.esc(cat.text('page.markdown'))}</h2>"
            f'<textarea id="pm-markdown" class="markdown" readonly spellcheck="false" lang="{html.esc(lang)}">'
            f"{html.esc(md)}</textarea></div>"
            "</div>"
            f'<script defer src="{root}/static/postmortem.js?v={digest}"></script>'
        )

    return respond(request, wiring, tz, title=f"postmortem {incident_id}", build=build, figures=False)
