"""plotly.js bundle choice (partial cartesian bundle, else the plotly package's) and the figure blocks."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import plotly.graph_objects as go
import pytest

from whatchanged.dashboards import assets, figure_parts, html
from whatchanged.dashboards import figures as F

#: the figures' source: the figures and the traces they are made of
FIGURES_SRC = "".join(Path(m.__file__).read_text(encoding="utf-8") for m in (F, figure_parts))


def test_the_vendored_partial_bundle_matches_the_plotly_package() -> None:
    """The vendored file is the cartesian bundle of the plotly.js the Python package writes figures for."""
    assert assets.PARTIAL_JS.is_file(), "dashboards/static/plotly-cartesian.min.js is missing"
    assert (assets.STATIC / "plotly-cartesian.LICENSE").read_text().startswith("MIT License")
    assert assets.header_version(assets.PARTIAL_JS) == ("cartesian", assets.embedded_version())
    assert assets.header_version(assets.FULL_JS) == ("full", assets.embedded_version())
    chosen = assets._choose("partial")
    assert (chosen.kind, chosen.path) == ("partial", assets.PARTIAL_JS)


def test_every_trace_type_the_figures_use_is_in_the_partial_bundle() -> None:
    used = {t.lower() for t in re.findall(r"\bgo\.([A-Z]\w*)\(", FIGURES_SRC)} - {"figure"}
    assert used == {"scatter", "bar", "heatmap"}
    assert used <= assets.PARTIAL_TRACES


@pytest.mark.parametrize("case", ["missing", "other version", "forced full"])
def test_falls_back_to_the_full_bundle(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if case == "missing":
        monkeypatch.setattr(assets, "PARTIAL_JS", tmp_path / "plotly-cartesian.min.js")
    elif case == "other version":
        old = tmp_path / "plotly-cartesian.min.js"
        old.write_text("/**\n* plotly.js (cartesian - minified) v3.0.0\n*/\nwindow.Plotly = {};\n")
        monkeypatch.setattr(assets, "PARTIAL_JS", old)
    chosen = assets._choose("full" if case == "forced full" else "partial")
    assert (chosen.kind, chosen.path) == ("full", assets.FULL_JS)
    assert chosen.version == assets.embedded_version()


def test_bundle_tag_and_etag_follow_the_bytes() -> None:
    b = assets._choose("partial")
    other = replace(b, digest="0" * 64)
    assert b.tag != other.tag
    assert b.etag != other.etag
    assert b.etag.startswith('"')
    assert b.etag.endswith('"')


def test_gzip_is_computed_once_and_inflates_to_the_bundle() -> None:
    import gzip

    b = assets.bundle()
    assets.warm()
    data = assets.gzipped(b)
    assert assets.gzipped(b) is data
    assert gzip.decompress(data) == b.path.read_bytes()


def test_figure_block_is_data_not_code_and_cannot_close_its_script() -> None:
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="x</script><script>alert(1)</script>"))
    fig.update_layout(height=333)
    out = F.figure_block(fig, "fig-1")
    assert out.count("</script>") == 1
    assert "<script>alert" not in out
    assert 'style="height:333px; width:100%;"' in out
    payload = out.split('data-div="fig-1">', 1)[1].rsplit("</script>", 1)[0]
    spec = json.loads(payload)
    assert spec["data"][0]["name"] == "x</script><script>alert(1)</script>"
    assert spec["layout"]["height"] == 333
    assert spec["config"] == F.PLOT_CONFIG


def test_pages_load_plotly_deferred_with_the_loader() -> None:
    page = html.page(title="t", body="<p>b</p>", root="/dashboards", tz="UTC", plotly_src="/p.js?v=1")
    assert '<script defer src="/p.js?v=1"></script>' in page
    assert "DOMContentLoaded" in page
    assert "__plotsDone" in page
    assert "plotted:" in page
    bare = html.page(title="t", body="<p>b</p>", root="/dashboards", tz="UTC", plotly_src=None)
    assert "<script" not in bare
