"""HTML for the dashboard pages: ``string.Template`` files and small escaped fragments.

Templates live in ``dashboards/templates``; every ``$name`` in them is filled
with an already-escaped fragment.  Everything that comes from data goes
through :func:`esc` (or a helper that calls it) exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from string import Template

from whatchanged.engine.model import Cause, Change, RuledOut
from whatchanged.engine.timeparse import fmt_local

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


@cache
def css() -> str:
    return (TEMPLATES / "style.css").read_text(encoding="utf-8")


def render(name: str, **values: str) -> str:
    """Fill template ``name`` (a KeyError names any ``$field`` left unfilled)."""
    return _template(name).substitute(values)


#: Draws the page's figures (:func:`whatchanged.dashboards.figures.figure_block`).
#: plotly.js is loaded ``defer``: it downloads while the HTML is parsed and runs
#: after it; this runs at ``DOMContentLoaded`` (after the deferred script), lets
#: the text be painted (one frame, at most 100 ms: it would otherwise wait for the
#: graphs when plotly.js comes from the cache) and draws one figure per task, so the browser
#: can paint between them.  Marks for the tests and the benchmark:
#: ``plotly:ready`` (plotly.js has run), ``plot-start:<id>``, ``plotted:<id>``;
#: ``window.__plotsDone`` counts the figures drawn.
PLOT_LOADER = """<script>
document.addEventListener('DOMContentLoaded', function () {
  if (!window.Plotly) { console.error('plotly.js did not load'); return; }
  performance.mark('plotly:ready');
  var blocks = Array.prototype.slice.call(document.querySelectorAll('script.plotly-figure'));
  function next() {
    var block = blocks.shift();
    if (!block) return;
    var id = block.getAttribute('data-div'), fig = JSON.parse(block.textContent);
    performance.mark('plot-start:' + id);
    Plotly.newPlot(id, fig.data, fig.layout, fig.config).then(function () {
      performance.mark('plotted:' + id);
      window.__plotsDone = (window.__plotsDone || 0) + 1;
      setTimeout(next, 0);
    }, function (err) { console.error('plotly.js: ' + id + ': ' + err); });
  }
  var started = false;
  function start() { if (!started) { started = true; setTimeout(next, 0); } }
  requestAnimationFrame(start);  // after the next frame is painted …
  setTimeout(start, 100);  // … or soon anyway (a background tab runs no frames)
});
</script>"""


#: the ``script-src`` source that lets :data:`PLOT_LOADER` (the pages' only inline script) run
#: under a Content-Security-Policy without ``'unsafe-inline'``
PLOT_LOADER_CSP_HASH = "'sha256-{}'".format(
    base64.b64encode(
        hashlib.sha256(PLOT_LOADER.removeprefix("<script>").removesuffix("</script>").encode()).digest()
    ).decode()
)


def page(*, title: str, body: str, root: str, tz: str, plotly_src: str | None) -> str:
    """A whole page: the base template around ``body``; plotly.js only when the page has figures."""
    head = f'<script defer src="{esc(plotly_src)}"></script>{PLOT_LOADER}' if plotly_src else ""
    return render("base.html", title=esc(title), css=css(), head=head, body=body, root=root, tz=esc(tz))


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(ts: datetime | None, tz: str, *, with_date: bool = True) -> str:
    return esc(fmt_local(ts, tz, with_date=with_date)) if ts is not None else "—"


def chip(category: str) -> str:
    return f'<span class="chip {esc(category)}">{esc(category)}</span>'


def link(href: str, text: object) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str, cls: str = "") -> str:
    """A table of pre-escaped cells, or a muted ``empty`` sentence when there are no rows."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    if not body:
        return f'<p class="muted">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def evidence(items: Sequence[str], *, against: bool = False) -> str:
    if not items:
        return '<span class="muted">—</span>'
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f'<ul class="evidence{" against" if against else ""}">{lis}</ul>'


def causes_table(causes: Sequence[Cause], tz: str) -> str:
    """The ranked causes with evidence for and against; the top one marked."""
    if not causes:
        return '<p class="muted">No candidate cause: nothing changed near the onset.</p>'
    rows = []
    for c in causes:
        score = f'<span class="score" style="width:{c.score * 60:.0f}px"></span>{c.score:.2f}'
        window = when(c.start, tz)
        if c.end is not None:
            window += f" → {when(c.end, tz)}"
        ident = esc(c.change_id or c.component or "")
        rows.append(
            f'<tr class="{"top" if c.rank == 1 else ""}" data-change-id="{ident}">'
            f'<td class="num">{c.rank}</td><td>{chip(c.category)}</td>'
            f"<td><b>{esc(c.title)}</b><br><code>{ident}</code><br>"
            f'<span class="muted">{window}</span></td>'
            f'<td class="num">{score}</td>'
            f"<td>{evidence(c.evidence_for)}</td><td>{evidence(c.evidence_against, against=True)}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("#", "class", "cause", "score", "evidence for", "evidence against")
    )
    return f'<table class="causes"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def ruled_out_list(items: Sequence[RuledOut]) -> str:
    if not items:
        return '<p class="muted">No class was ruled out: each has a plausible candidate.</p>'
    lis = "".join(f"<li>{chip(r.category)} {esc(r.reason)}</li>" for r in items)
    return f'<ul class="ruled-out">{lis}</ul>'


def changes_table(changes: Sequence[Change], tz: str, *, empty: str) -> str:
    from whatchanged.dashboards.figures import change_class, scope_text

    rows = [
        (
            f"<code>{esc(c.change_id)}</code>",
            chip(change_class(c.kind)) + f" {esc(c.kind)}",
            esc(c.title or ""),
            when(c.start, tz) + (f" → {when(c.end, tz)}" if c.end else ""),
            esc(scope_text(c)),
            esc(c.source or ""),
        )
        for c in changes
    ]
    return table(("id", "kind", "title", "when", "scope", "source"), rows, empty=empty, cls="changes")
