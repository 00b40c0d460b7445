"""Markdown and HTML of a postmortem, rendered from its JSON form only
(:func:`whatchanged.engine.postmortem.postmortem_document`): the title, then each section's
blocks — a paragraph of sentences, or a list (with its leading sentence) — and a related
incident's link.  Nothing here reads the warehouse or formats a value: every word comes from
the form's ``title``, ``subtitle`` and sentences' ``text``.
"""

from __future__ import annotations

import re
from typing import Any

from whatchanged.dashboards.html import esc

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def md_escape(text: str) -> str:
    """Characters Markdown would read as markup, escaped (``bandwidth\\_mbps``)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_sentence(s: dict[str, Any], base_url: str) -> str:
    text = md_escape(s["text"])
    link = s.get("link")
    if link and link.get("href"):
        text += f" [{md_escape(link['text'])}]({base_url}{link['href']})"
    return text


def markdown(doc: dict[str, Any], *, base_url: str = "") -> str:
    """The document as Markdown (``base_url`` prefixes links: ``http://host:8080``)."""
    lines = [f"# {md_escape(doc['title'])}", "", f"*{md_escape(doc['subtitle'])}*", ""]
    for sec in doc["sections"]:
        lines += [f"## {md_escape(sec['title'])}", ""]
        for b in sec["blocks"]:
            if b.get("intro"):
                lines += [_md_sentence(b["intro"], base_url), ""]
            if b["style"] == "list":
                lines += [f"- {_md_sentence(s, base_url)}" for s in b["sentences"]]
            else:
                lines.append(" ".join(_md_sentence(s, base_url) for s in b["sentences"]))
            lines.append("")
    sp = doc.get("statuspage")
    if sp:
        lines += ["---", "", "```json", _statuspage_json(sp), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _statuspage_json(sp: dict[str, Any]) -> str:
    import json

    return json.dumps(sp["request"], ensure_ascii=False, indent=2)


def _html_sentence(s: dict[str, Any], base_url: str) -> str:
    text = esc(s["text"])
    link = s.get("link")
    if link and link.get("href"):
        text += f' <a href="{esc(base_url + link["href"])}">{esc(link["text"])}</a>'
    return f'<span class="sentence" data-id="{esc(s["id"])}">{text}</span>'


def html_fragment(doc: dict[str, Any], *, base_url: str = "") -> str:
    """The document as an ``<article>`` (escaped; ``lang`` set), for a page or an e-mail."""
    parts = [
        f'<article class="postmortem" lang="{esc(doc["lang"])}">',
        f"<h1>{esc(doc['title'])}</h1>",
        f'<p class="muted">{esc(doc["subtitle"])}</p>',
    ]
    for sec in doc["sections"]:
        parts.append(f'<section data-section="{esc(sec["id"])}"><h2>{esc(sec["title"])}</h2>')
        for b in sec["blocks"]:
            if b.get("intro"):
                parts.append(f"<p>{_html_sentence(b['intro'], base_url)}</p>")
            if b["style"] == "list":
                items = "".join(f"<li>{_html_sentence(s, base_url)}</li>" for s in b["sentences"])
                parts.append(f"<ul>{items}</ul>")
            else:
                parts.append("<p>" + " ".join(_html_sentence(s, base_url) for s in b["sentences"]) + "</p>")
        parts.append("</section>")
    sp = doc.get("statuspage")
    if sp:
        parts.append(f'<pre class="statuspage">{esc(_statuspage_json(sp))}</pre>')
    parts.append("</article>")
    return "".join(parts)


def html_document(doc: dict[str, Any], *, base_url: str = "") -> str:
    """A whole HTML page holding only the document (``--format html``, ``format=html``)."""
    style = (
        "body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}"
        ".muted{color:#666}pre{background:#f5f5f5;padding:.8rem;overflow:auto}"
    )
    return (
        f'<!doctype html>\n<html lang="{esc(doc["lang"])}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(doc['title'])}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"{html_fragment(doc, base_url=base_url)}\n</body>\n</html>\n"
    )
