"""Postmortem and customer-update drafts, the words: the JSON form of a
:class:`~whatchanged.engine.postmortem.Postmortem` in a language (English, French, and any
language with a catalogue file).

::

    build_postmortem(con, incident, settings=…)      → Postmortem   (engine.postmortem: the facts)
    postmortem_document(pm, lang=…, tz=…, audience=…) → the JSON form (facts + sentences)

The JSON form is the source of truth: ``facts`` holds every fact as a field and each
sentence lists the fields and the warehouse records it was built from
(:mod:`.document`, :mod:`.customers`).  Markdown and HTML are rendered from it
(:mod:`whatchanged.dashboards.postmortem`).  The strings live in one catalogue per language,
``i18n/<lang>.toml`` (:mod:`.catalogue`).

Modules: ``facts`` (the JSON fields), ``compose``
(sentences from fields), ``document`` and ``reasons`` (the team's sections), ``customers``
(the status-page update), ``catalogue`` (the language files and formats).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from whatchanged.engine.errors import ConfigError
from whatchanged.engine.postmortem.model import Postmortem
from whatchanged.present.postmortem.catalogue import FOLDER, Catalogue, languages
from whatchanged.present.postmortem.compose import Composer
from whatchanged.present.postmortem.customers import customer_facts, customer_sections, statuspage
from whatchanged.present.postmortem.document import team_sections, title
from whatchanged.present.postmortem.facts import facts_json

AUDIENCES = ("team", "customers")

__all__ = ["AUDIENCES", "languages", "postmortem_document"]


def default_link(incident_id: str, lang: str, tz: str) -> str:
    """Where a related incident's postmortem is read: the dashboards' page."""
    return f"/dashboards/incidents/{incident_id}/postmortem?lang={lang}&tz={tz}"


def postmortem_document(
    pm: Postmortem,
    *,
    lang: str,
    tz: str,
    audience: str = "team",
    link: Callable[[str, str, str], str] | None = default_link,
    folder: Path = FOLDER,
) -> dict[str, Any]:
    """The JSON form of ``pm`` in ``lang`` for ``audience`` (``team`` or ``customers``);
    times in ``tz``.  ``link(incident_id, lang, tz)`` gives related incidents' links (None:
    no links).  A ConfigError names an unknown language or audience."""
    if audience not in AUDIENCES:
        raise ConfigError(f"audience: expected one of {', '.join(AUDIENCES)}, found {audience!r}")
    cat = Catalogue.load(lang, folder)
    links = (
        {r.incident.incident_id: link(r.incident.incident_id, lang, tz) for r in pm.related} if link else {}
    )
    facts = facts_json(pm, tz, links=links)
    if audience == "customers":
        facts["customers"] = customer_facts(pm, tz)
    c = Composer(cat, facts, tz)
    heading, subtitle = title(c, audience)
    sections = team_sections(c, pm) if audience == "team" else customer_sections(c, pm)
    doc: dict[str, Any] = {
        "kind": "postmortem",
        "audience": audience,
        "lang": lang,
        "tz": tz,
        "incident_id": pm.incident.incident_id,
        "title": heading,
        "subtitle": subtitle,
        "facts": facts,
        "sections": sections,
    }
    if audience == "customers":
        doc["statuspage"] = statuspage(heading, facts["customers"], sections)
    return doc
