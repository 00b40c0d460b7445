"""How the posts of the sinks read (``engine/sinks.py`` decides when to post and where).

- ``slack``: a Slack-compatible message (Mattermost too): the incident, its top cause with the
  evidence for and against, the next two causes, the ruled-out classes and a link;
- ``grafana``: an annotation over the incident's window, tagged with the top cause;
- ``webhook``: the explanation's JSON as :func:`whatchanged.present.explanation.explanation`
  gives it.

:data:`PRESENTER` bundles them for :class:`whatchanged.engine.sinks.Notifier`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from whatchanged.engine.model import Explanation
from whatchanged.engine.sinks import Presenter
from whatchanged.present.explanation import explanation


def _explanation(expl: Explanation, tz: str) -> dict[str, Any]:
    return explanation(expl, tz=tz)


def _hm(iso: str | None) -> str:
    return iso[11:16] if iso else "?"


def slack_text(expl: dict[str, Any], link: str, event: str) -> str:
    inc = expl["incident"]
    head = "new incident" if event == "opened" else "top cause changed"
    lines = [
        f"*whatchanged: {head}* {inc['id']} onset {_hm(inc['onset'])}, "
        f"{inc['services_affected']} services affected ({inc['critical_services']} critical)"
    ]
    causes = expl.get("causes") or []
    if causes:
        top = causes[0]
        ident = top.get("change_id") or top.get("component") or ""
        lines.append(f"*#1 {top['category']}* {ident} {top.get('title') or ''} — score {top['score']:.2f}")
        lines += [f"+ {e}" for e in top.get("evidence_for", [])[:4]]
        lines += [f"- {e}" for e in top.get("evidence_against", [])[:3]]
        for c in causes[1:3]:
            lines.append(
                f"#{c['rank']} {c['category']} {c.get('change_id') or c.get('component') or ''} {c['score']:.2f}"
            )
    else:
        lines.append("no candidate cause")
    for r in expl.get("ruled_out") or []:
        lines.append(f"ruled out {r['category']}: {r['reason']}")
    lines.append(f"<{link}|open the incident>")
    return "\n".join(lines)


def grafana_body(expl: dict[str, Any], link: str) -> dict[str, Any]:
    inc = expl["incident"]
    causes = expl.get("causes") or []
    top = causes[0] if causes else None
    tags = ["whatchanged"]
    if top:
        tags += [top["category"], str(top.get("change_id") or top.get("component") or "")]
    text = (
        f"{inc['id']}: #1 {top['category']} {top.get('change_id') or top.get('component') or ''} "
        f"({top['score']:.2f}) {top.get('title') or ''}"
        if top
        else f"{inc['id']}: no candidate cause"
    )

    def ms(iso: str) -> int:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)

    body: dict[str, Any] = {
        "time": ms(inc["onset"]),
        "tags": [t for t in tags if t],
        "text": f'{text} <a href="{link}">open</a>',
    }
    if inc.get("end"):  # an incident still open is a point annotation
        body["timeEnd"] = ms(inc["end"])
    return body


#: what the notifier of the live server posts
PRESENTER = Presenter(explanation=_explanation, slack_text=slack_text, grafana_body=grafana_body)
