"""``postmortem``: the draft account of an incident, for the team or for customers."""

from __future__ import annotations

from typing import Annotated

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, TzOpt, settings_from
from whatchanged.api.jsonout import to_json
from whatchanged.api.output import err_console
from whatchanged.engine.errors import ConfigError, NotFoundError
from whatchanged.engine.timeparse import incident_onset, parse_when
from whatchanged.engine.warehouse import Warehouse, latest_day

FORMATS = ("md", "html", "json")


def cmd_postmortem(
    incident_id: Annotated[
        str | None, typer.Option("--incident", help="The incident id (whatchanged incidents, the API).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Or the time: the incident explain --at finds (ISO 8601, 'YYYY-MM-DD HH:MM', HH:MM)."
        ),
    ] = None,
    lang: Annotated[
        str, typer.Option("--lang", help="Language of the text: en, fr (one catalogue file each).")
    ] = "en",
    fmt: Annotated[str, typer.Option("--format", help="md, html or json (the source of truth).")] = "md",
    audience: Annotated[
        str, typer.Option("--audience", help="team (the postmortem) or customers (status-page update).")
    ] = "team",
    home: HomeOpt = None,
    tz: TzOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Draft the postmortem of an incident from the data, every figure traced to a field."""
    from whatchanged.dashboards.postmortem import html_document, markdown
    from whatchanged.engine import deviations
    from whatchanged.engine.incidents import get_incident, incidents_at
    from whatchanged.engine.postmortem import build_postmortem
    from whatchanged.present.postmortem import AUDIENCES, languages, postmortem_document

    if (incident_id is None) == (at is None):
        raise ConfigError("postmortem: give exactly one of --incident ID or --at T")
    if as_json:
        fmt = "json"
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, found {fmt!r}")
    if lang not in languages():
        raise ConfigError(f"--lang: expected one of {', '.join(languages())}, found {lang!r}")
    if audience not in AUDIENCES:
        raise ConfigError(f"--audience: expected one of {', '.join(AUDIENCES)}, found {audience!r}")
    settings = settings_from(home, tz)
    wh = Warehouse(settings.home)
    wh.require()
    con = wh.snapshot()
    try:
        with err_console.status("gathering the incident's facts…"):
            if at is not None:
                when = parse_when(at, tz=settings.tz, default_day=latest_day(con, settings.tz), option="--at")
                incident, _ = incidents_at(con, when)
                if incident is None:
                    incident = deviations.incident_from_deviations(con, when)
                if incident is None:
                    raise NotFoundError(f"--at {at}: no incident or outage at that time ({settings.tz})")
            else:
                incident_onset(incident_id or "")  # an id naming no possible time: not found
                incident = get_incident(con, incident_id or "")
            pm = build_postmortem(con, incident, settings=settings)
            doc = postmortem_document(pm, lang=lang, tz=settings.tz, audience=audience)
    finally:
        con.close()
    if fmt == "json":
        print(to_json(doc))
    elif fmt == "html":
        print(html_document(doc), end="")
    else:
        print(markdown(doc), end="")


def register(app: typer.Typer) -> None:
    app.command("postmortem")(cmd_postmortem)
