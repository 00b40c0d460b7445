"""The pages in headless Debian Chromium, served by a real uvicorn on loopback.

Each page: loads without console errors, requests nothing outside
127.0.0.1/localhost, draws its Plotly graphs (``.main-svg``; the trace count
in the browser equals the figure builder's), and leaves a screenshot in
``tests/artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.dashboards.conftest import Server
from whatchanged.dashboards import views
from whatchanged.engine.explain import explain_incident
from whatchanged.engine.incidents import get_incident
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse

pytestmark = pytest.mark.browser
LOOPBACK = {"127.0.0.1", "localhost"}


def wait_plots(page: Any, n: int, timeout_s: float = 30.0) -> None:
    """Wait until the page has drawn ``n`` figures.  Polled with ``page.evaluate`` (the
    DevTools protocol): ``wait_for_function`` compiles its predicate inside the page, which
    the pages' Content-Security-Policy (no ``'unsafe-eval'``) refuses."""
    deadline = time.monotonic() + timeout_s
    while page.evaluate("window.__plotsDone || 0") < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} figures not drawn within {timeout_s} s")
        page.wait_for_timeout(20)


def wait_label(page: Any, div: str, needle: str, timeout_s: float = 5.0) -> str:
    """The text of the hover label in ``#div`` that contains ``needle``, polled as
    :func:`wait_plots` is: a label of an earlier hover can still be attached, so waiting for
    *a* label reads the old one."""
    deadline = time.monotonic() + timeout_s
    while True:
        texts = page.evaluate(
            "div => [...document.querySelectorAll(`#${div} .hovertext`)].map(el => el.textContent || '')", div
        )
        found = [t for t in texts if needle in t]
        if found:
            return str(found[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"no hover label with {needle!r} in #{div} within {timeout_s} s: {texts}")
        page.wait_for_timeout(20)


@dataclass
class Tab:
    """A Playwright page that records every request URL and console error."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, url: str, *, plots: int = 0) -> Any:
        response = self.page.goto(url, wait_until="load")
        if plots:
            wait_plots(self.page, plots)
        return response

    def assert_clean(self) -> None:
        assert self.errors == []
        outside = [
            u for u in self.requests if urlsplit(u).hostname not in LOOPBACK and not u.startswith("data:")
        ]
        assert outside == [], f"requests left loopback: {outside}"
        assert self.requests, "no request recorded"

    def traces(self, div_id: str) -> list[str]:
        return self.page.evaluate(f"document.getElementById('{div_id}').data.map(t => t.name)")

    def assert_bundle_draws_every_trace(self) -> None:
        """Every trace type on the page is in the plotly.js bundle served.

        Checked on the input ``data``: plotly.js draws a type it does not know
        as a ``scatter`` (``_fullData``), silently and without a console error.
        """
        missing = self.page.evaluate(
            """() => {
                const known = Plotly.PlotSchema.get().traces;
                return [...document.querySelectorAll('.js-plotly-plot')]
                    .flatMap(gd => gd.data.map(t => t.type || 'scatter'))
                    .filter(type => !(type in known));
            }"""
        )
        assert missing == []

    def shot(self, artifacts: Path, name: str) -> None:
        path = artifacts / f"dashboards-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    t = Tab(page)
    page.on("request", lambda r: t.requests.append(r.url))
    page.on("console", lambda m: t.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: t.errors.append(str(e)))
    try:
        yield t
    finally:
        context.close()


def _expected_incident_traces(settings: Settings, incident_id: str) -> list[str]:
    con = Warehouse(settings.home).snapshot()
    try:
        expl = explain_incident(con, get_incident(con, incident_id), settings=settings)
        view = views.incident_view(con, expl, settings=settings, tz=settings.tz)
    finally:
        con.close()
    return [t.name for t in view.figure.data]


def test_index_links_incidents_weeks_and_services(
    server: Server, tab: Tab, artifacts: Path, night_incident_id: str
) -> None:
    response = tab.open(f"{server.url}/dashboards/")
    assert response.status == 200
    hrefs = tab.page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert any(night_incident_id in h for h in hrefs)
    assert any("/dashboards/weekly?week=2010-W46" in h for h in hrefs)
    assert any(h.startswith("/dashboards/services/site-") for h in hrefs)
    assert tab.page.locator(".js-plotly-plot").count() == 0  # no figure, no plotly.js
    tab.shot(artifacts, "index")
    tab.assert_clean()


def test_incident_page_draws_the_timeline(
    server: Server, tab: Tab, artifacts: Path, night_incident_id: str, night_settings: Settings
) -> None:
    response = tab.open(f"{server.url}/dashboards/incidents/{night_incident_id}", plots=1)
    assert response.status == 200
    page = tab.page
    assert page.locator("#incident-timeline .main-svg").count() >= 1
    count = page.evaluate("document.querySelector('.js-plotly-plot').data.length")
    names = tab.traces("incident-timeline")
    assert count == len(names) == len(_expected_incident_traces(night_settings, night_incident_id))
    assert names == _expected_incident_traces(night_settings, night_incident_id)
    for name in (
        "probe outages",
        "CRITICAL services",
        "external_maintenance",
        "application_release",
        "reaction",
        "top cause",
    ):
        assert name in names
    assert "bandwidth_mbps · lb-p19-1" in names
    tab.assert_bundle_draws_every_trace()
    # the maintenance window is shaded where the data says (19:00–21:00 Paris)
    shapes = page.evaluate(
        "document.getElementById('incident-timeline').layout.shapes.filter(s => s.name === 'window OVH-P19-SW')"
    )
    assert [(s["x0"][:16].replace("T", " "), s["x1"][:16].replace("T", " ")) for s in shapes] == [
        ("2010-11-17 19:00", "2010-11-17 21:00")
    ]
    # the ranked causes: the maintenance first, highlighted; the other classes ruled out or ranked below
    top = page.locator("table.causes tbody tr").first
    assert "top" in (top.get_attribute("class") or "")
    assert top.get_attribute("data-change-id") == "OVH-P19-SW"
    assert "external_maintenance" in top.inner_text()
    assert page.locator("ul.ruled-out li, table.causes tbody tr").count() >= 3
    tab.shot(artifacts, "incident")
    tab.assert_clean()


def _hover_change(page: Any, div: str, trace: str, change_id: str) -> str:
    """Hover the marker of ``change_id`` in trace ``trace`` with Plotly.Fx.hover; the hover text.

    Waits for a hover label that names ``change_id``: the label of an earlier hover can still be
    attached when the new one is asked for, so waiting for *a* label reads the old one.
    """
    page.evaluate(
        """([div, trace, id]) => {
            const gd = document.getElementById(div);
            Plotly.Fx.unhover(gd);
            const n = gd.data.findIndex(t => t.name === trace);
            const p = gd.data[n].customdata.indexOf(id);
            const t = gd._fullData[n];
            Plotly.Fx.hover(gd, [{curveNumber: n, pointNumber: p}], t.xaxis + t.yaxis);
        }""",
        [div, trace, change_id],
    )
    return wait_label(page, div, change_id)


def test_hovering_a_change_marker_shows_its_id(server: Server, tab: Tab, night_incident_id: str) -> None:
    tab.open(f"{server.url}/dashboards/incidents/{night_incident_id}", plots=1)
    text = _hover_change(tab.page, "incident-timeline", "application_release", "deploy-site-2")
    assert "deploy-site-2" in text
    assert "sites renderer 2.8.2" in text
    assert "apps=sites" in text
    text = _hover_change(tab.page, "incident-timeline", "external_maintenance", "OVH-P19-SW")
    assert "OVH-P19-SW" in text
    assert "switches=" in text
    tab.assert_clean()


def test_hovering_with_the_mouse(server: Server, tab: Tab, night_incident_id: str) -> None:
    """A real mouse over the restart markers shows a restart id."""
    tab.open(f"{server.url}/dashboards/incidents/{night_incident_id}", plots=1)
    box = tab.page.evaluate(
        """() => {
            const gd = document.getElementById('incident-timeline');
            const t = gd._fullData.find(t => t.name === 'reaction');
            const xa = gd._fullLayout[t.xaxis.replace('x', 'xaxis')];
            const ya = gd._fullLayout[t.yaxis.replace('y', 'yaxis')];
            let r = gd.getBoundingClientRect();
            window.scrollBy(0, r.top + ya._offset + ya.d2p(t.y[3]) - window.innerHeight / 2);
            r = gd.getBoundingClientRect();
            return {x: r.left + xa._offset + xa.d2p(t.x[3]), y: r.top + ya._offset + ya.d2p(t.y[3])};
        }"""
    )
    tab.page.mouse.move(box["x"], box["y"])
    # wait for the label's content, not for an element: an empty label is attached first
    assert "restart-" in wait_label(tab.page, "incident-timeline", "restart-")
    tab.assert_clean()


def test_explain_page_finds_the_same_incident(
    server: Server, tab: Tab, artifacts: Path, night_incident_id: str
) -> None:
    response = tab.open(f"{server.url}/dashboards/explain?at=19:30&tz=Europe/Paris", plots=1)
    assert response.status == 200
    assert night_incident_id in tab.page.locator("h1").inner_text()
    assert tab.page.locator("table.causes tbody tr").first.get_attribute("data-change-id") == "OVH-P19-SW"
    tab.shot(artifacts, "explain")
    tab.assert_clean()


def test_weekly_review(server: Server, tab: Tab, artifacts: Path, night_incident_id: str) -> None:
    response = tab.open(f"{server.url}/dashboards/weekly?week=2010-W46", plots=3)
    assert response.status == 200
    page = tab.page
    assert page.locator(".main-svg").count() >= 3
    assert page.evaluate("document.getElementById('weekly-attribution').data.length") == 4
    assert tab.traces("weekly-attribution") == [
        "hosting",
        "application_release",
        "external_maintenance",
        "unknown",
    ]
    assert page.evaluate("document.getElementById('weekly-attribution').data[0].x") == [
        "2010-W42",
        "2010-W43",
        "2010-W44",
        "2010-W45",
        "2010-W46",
    ]
    assert "external_maintenance" in tab.traces("weekly-incidents")
    tab.assert_bundle_draws_every_trace()
    assert night_incident_id in page.locator("table.incidents").inner_text()
    assert "OVH-P19-SW" in page.locator("table.top-changes").inner_text()
    assert page.locator("table.availability tbody tr").count() >= 2
    assert page.locator("a[rel=prev]").get_attribute("href").endswith("week=2010-W45&tz=Europe/Paris")
    assert page.locator("a[rel=next]").get_attribute("href").endswith("week=2010-W47&tz=Europe/Paris")
    tab.shot(artifacts, "weekly")
    page.locator("a[rel=prev]").click()
    wait_plots(page, 3)
    assert "2010-W45" in page.locator("h1").inner_text()
    tab.assert_clean()


def test_service_page(server: Server, tab: Tab, artifacts: Path) -> None:
    response = tab.open(f"{server.url}/dashboards/services/lb-p19-1", plots=1)
    assert response.status == 200
    names = tab.traces("service-timeline")
    assert "bandwidth_mbps · lb-p19-1" in names
    assert "bandwidth_mbps band" in names
    assert "reaction" in names
    assert "external_maintenance" in names
    assert tab.page.locator("#service-timeline .main-svg").count() >= 1
    tab.assert_bundle_draws_every_trace()
    text = tab.page.locator("table.changes").inner_text()
    assert "restart-01" in text
    assert "OVH-P19-SW" in text
    assert "deploy-bo-1" not in text  # the back-office release does not touch the load balancer
    tab.shot(artifacts, "service")
    tab.assert_clean()


def test_service_page_checks(server: Server, tab: Tab) -> None:
    tab.open(
        f"{server.url}/dashboards/services/site-0001?start=2010-11-17 18:00&end=2010-11-17 22:00&tz=Europe/Paris",
        plots=1,
    )
    assert "check: CRITICAL" in tab.traces("service-timeline")
    assert "CRITICAL" in tab.page.locator("main").inner_text()
    tab.assert_clean()


def test_postmortem_page_copies_its_markdown(
    server: Server, tab: Tab, artifacts: Path, night_incident_id: str
) -> None:
    """The draft renders, in French, with nothing requested off the machine; the button puts the
    Markdown of the text area on the clipboard."""
    tab.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    url = f"{server.url}/dashboards/incidents/{night_incident_id}/postmortem?lang=fr&tz=Europe/Paris"
    response = tab.open(url)
    assert response.status == 200
    page = tab.page
    article = page.locator("article.postmortem")
    assert article.get_attribute("lang") == "fr"
    assert article.locator("h1").inner_text().startswith("Rapport d'incident")
    assert article.locator("section").count() == 7
    assert "Chronologie" in article.inner_text()
    markdown = page.locator("#pm-markdown").input_value()
    assert markdown.startswith("# Rapport d'incident")
    assert "## Ce qui aurait aidé" in markdown
    page.locator("#pm-copy").click()
    deadline = time.monotonic() + 10
    while page.locator("#pm-copy-status").get_attribute("data-copied") is None:
        if time.monotonic() > deadline:
            raise AssertionError("the copy button did not answer within 10 s")
        page.wait_for_timeout(20)
    assert page.locator("#pm-copy-status").get_attribute("data-copied") == "yes"
    assert page.locator("#pm-copy-status").inner_text() == "Copié."
    assert page.evaluate("navigator.clipboard.readText()") == markdown
    assert any(u.split("?")[0].endswith("/dashboards/static/postmortem.js") for u in tab.requests)
    tab.shot(artifacts, "postmortem")
    tab.assert_clean()
