"""The pages over HTTP from a real uvicorn server (no browser): status codes, headers, caching."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pyarrow as pa

from tests.dashboards import night
from tests.dashboards.conftest import Server, make_app
from whatchanged.dashboards import assets, views
from whatchanged.engine.incidents import get_incident
from whatchanged.engine.settings import Settings, load_settings
from whatchanged.engine.warehouse import Warehouse


def test_unknown_ids_are_html_404(server: Server) -> None:
    for path in ("/dashboards/incidents/inc-20101117T1823Z-000000", "/dashboards/services/no-such-service"):
        r = httpx.get(server.url + path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "NotFoundError" in r.text
    r = httpx.get(server.url + "/dashboards/weekly?week=2010-W99")
    assert r.status_code == 422  # the API's status for a bad parameter (present.status)
    assert "ISO week" in r.text


def test_plotly_js_is_served_locally_with_long_cache(server: Server, night_incident_id: str) -> None:
    page = httpx.get(f"{server.url}/dashboards/incidents/{night_incident_id}", timeout=30).text
    (src,) = re.findall(r'<script defer src="([^"]+)"></script>', page)
    assert src.startswith("/dashboards/static/plotly.min.js?v=")
    r = httpx.get(server.url + src, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age=31536000" in r.headers["cache-control"]
    assert "immutable" in r.headers["cache-control"]
    # the vendored cartesian bundle, at the plotly.js version of the plotly package
    assert r.headers["x-plotly-bundle"] == f"partial {assets.embedded_version()}"
    assert r.text.lstrip().startswith("/**")
    assert "plotly.js (cartesian" in r.text[:200]
    assert int(r.headers["content-length"]) < len(r.content) / 2
    assert r.content == assets.PARTIAL_JS.read_bytes()
    plain = httpx.get(server.url + src, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == r.content
    etag = r.headers["etag"]
    assert etag == plain.headers["etag"]
    assert src.endswith(f"?v={assets.bundle().tag}")
    again = httpx.get(server.url + src, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert '<script type="application/json" class="plotly-figure" data-div="incident-timeline">' in page


def test_pages_name_no_remote_resource(server: Server, night_incident_id: str) -> None:
    """No src/href/url() outside the server, no CDN, no web font (the browser tests also watch requests)."""
    for path in (
        "/dashboards/",
        f"/dashboards/incidents/{night_incident_id}",
        "/dashboards/weekly?week=2010-W46",
        "/dashboards/services/lb-p19-1",
        f"/dashboards/incidents/{night_incident_id}/postmortem?lang=fr",
        f"/dashboards/incidents/{night_incident_id}/postmortem?audience=customers",
    ):
        text = httpx.get(server.url + path, timeout=30).text
        refs = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']*)["']|url\(([^)]*)\)|@import""", text)
        remote = [r for pair in refs for r in pair if r and not r.startswith(("/", "?", "#", "data:"))]
        assert remote == [], path
        assert "cdn.plot.ly" not in text
        assert "fonts.googleapis" not in text
        assert "@font-face" not in text


def test_postmortem_page_its_links_and_its_script(server: Server, night_incident_id: str) -> None:
    base = f"{server.url}/dashboards/incidents/{night_incident_id}"
    incident = httpx.get(base, timeout=30).text
    for lang in ("en", "fr"):  # the incident page offers a draft in each language
        assert f"/dashboards/incidents/{night_incident_id}/postmortem?lang={lang}&amp;tz=" in incident
    page = httpx.get(base + "/postmortem?lang=fr&tz=Europe/Paris", timeout=60)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert '<article class="postmortem" lang="fr">' in text
    assert 'id="pm-markdown"' in text
    assert "Copier le Markdown" in text
    assert text.count('<section data-section="') == 7
    (src,) = re.findall(r'<script defer src="([^"]+)"></script>', text)
    assert src.startswith("/dashboards/static/postmortem.js?v=")
    js = httpx.get(server.url + src)
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "immutable" in js.headers["cache-control"]
    assert "navigator.clipboard" in js.text
    customers = httpx.get(base + "/postmortem?audience=customers", timeout=60).text
    assert "impact_override" in customers  # the Statuspage body, ready to post
    assert httpx.get(base + "/postmortem?lang=tlh", timeout=30).status_code == 422
    assert httpx.get(base + "/postmortem?audience=board", timeout=30).status_code == 422
    unknown = httpx.get(f"{server.url}/dashboards/incidents/inc-20101117T1823Z-000000/postmortem", timeout=30)
    assert unknown.status_code == 404
    assert "NotFoundError" in unknown.text


def test_window_defaults_cover_the_night(night_settings: Settings, night_incident_id: str) -> None:
    con = Warehouse(night_settings.home).snapshot()
    try:
        inc = get_incident(con, night_incident_id)
    finally:
        con.close()
    start, end = views.incident_window(inc.onset, inc, ())
    assert start <= inc.onset - timedelta(hours=1)
    assert end >= night.END


def test_tz_changes_the_displayed_times(server: Server, night_incident_id: str) -> None:
    paris = httpx.get(f"{server.url}/dashboards/incidents/{night_incident_id}", timeout=30).text
    utc = httpx.get(f"{server.url}/dashboards/incidents/{night_incident_id}?tz=UTC", timeout=30).text
    assert "2010-11-17 19:23 → 2010-11-17 20:46 · times in Europe/Paris" in paris
    assert "2010-11-17 18:23 → 2010-11-17 19:46 · times in UTC" in utc
    bad = httpx.get(f"{server.url}/dashboards/incidents/{night_incident_id}?tz=Mars/Olympus", timeout=30)
    assert bad.status_code == 422
    assert "Mars/Olympus" in bad.text


def test_pages_are_cached_until_the_warehouse_changes(tmp_path, night_home) -> None:
    import shutil

    home = tmp_path / "warehouse"
    shutil.copytree(night_home, home)
    settings = load_settings(home=home, tz=night.TZ)
    app = make_app(settings)
    with Server(app) as srv:
        url = f"{srv.url}/dashboards/services/bo-p19-1?start=2010-11-17 18:00&end=2010-11-17 22:00"
        first = httpx.get(url, timeout=30).text
        assert httpx.get(url, timeout=30).text == first
        assert app.state.dashboards.pages.hits == 1
        assert "deploy-bo-2" not in first
        change = night.changes().slice(0, 1).to_pylist()[0]
        change.update(
            change_id="deploy-bo-2",
            kind="deploy",
            title="backoffice 4.12.1",
            end=None,
            start=night.ONSET,
            scope={"apps": ["backoffice"]},
        )
        Warehouse(home).commit({"changes": pa.Table.from_pylist([change], schema=night.changes().schema)})
        # a link followed: the new page if built within PAGE_FRESH_WAIT_S, else the old one, marked
        followed = httpx.get(url, timeout=30)
        if followed.headers.get("x-whatchanged-stale") == "1":
            assert "deploy-bo-2" not in followed.text
            assert "being prepared" in followed.text
        else:
            assert "deploy-bo-2" in followed.text
        # a reload (what a browser sends) always waits for the page of the latest commit
        again = httpx.get(url, timeout=30, headers={"Cache-Control": "max-age=0"})
        assert "deploy-bo-2" in again.text
        assert "x-whatchanged-stale" not in again.headers
        assert app.state.dashboards.pages.hits in (1, 2)  # the reload may find the page just built


def test_page_cache_builds_once_and_serves_the_previous_page_while_rebuilding() -> None:
    import threading
    import time

    from whatchanged.dashboards.page_cache import PageCache

    cache = PageCache(fresh_wait_s=0.05)
    url = ("home", "", "/dashboards/weekly", "")
    builds: list[str] = []
    gate = threading.Event()

    def render(text: str, *, slow: bool = False) -> tuple[str, int]:
        builds.append(text)
        if slow:
            gate.wait(10)
        return text, 200

    assert cache.serve(url, "1:a", lambda: render("page-a"), fresh=False) == ("page-a", 200, False)
    assert cache.serve(url, "1:a", lambda: render("again"), fresh=False) == ("page-a", 200, False)
    # a commit: the rebuild is slow, readers get the previous page marked stale, one build runs
    answers = [cache.serve(url, "2:b", lambda: render("page-b", slow=True), fresh=False) for _ in range(5)]
    assert answers == [("page-a", 200, True)] * 5
    assert builds == ["page-a", "page-b"]
    # a reader asking for a fresh page waits for the build of the current state
    got: list[tuple[str, int, bool]] = []
    waiter = threading.Thread(
        target=lambda: got.append(cache.serve(url, "2:b", lambda: render("x"), fresh=True))
    )
    waiter.start()
    time.sleep(0.1)
    assert not got
    gate.set()
    waiter.join(10)
    assert got
    assert got[0][0] in ("page-b", "x")
    assert got[0][2] is False
    deadline = time.monotonic() + 5
    while cache.get(url, "2:b") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.serve(url, "2:b", lambda: render("y"), fresh=False)[2] is False
    # an error page is never kept, nor served stale
    assert cache.serve(("e",), "1:a", lambda: ("oops", 503), fresh=False) == ("oops", 503, False)
    assert cache.get(("e",), "1:a") is None
