"""plotly.js for the pages: which bundle, its version tag, ETag and gzipped bytes.

Two bundles can serve the dashboards, both offline:

* **partial** — ``dashboards/static/plotly-cartesian.min.js``, the plotly.js
  *cartesian* distribution (npm ``plotly.js-cartesian-dist-min``, MIT, licence
  beside it), vendored at the plotly.js version that the installed Python
  ``plotly`` package embeds.  1.5 MB instead of 4.8 MB; executing it costs a
  third of the full bundle in the browser.  It holds the trace types
  :data:`PARTIAL_TRACES`; the figures use ``scatter``, ``bar`` and ``heatmap``.
* **full** — ``plotly/package_data/plotly.min.js`` of the Python package.

The partial bundle is used when it is there *and* its version is the one the
Python package embeds (the figures' JSON is written by that package);
otherwise, or with ``WHATCHANGED_PLOTLY_JS=full``, the full bundle.  Refresh
the vendored file after a plotly upgrade with ``make plotly-partial``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import plotly

STATIC = Path(__file__).resolve().parent / "static"
PARTIAL_JS = STATIC / "plotly-cartesian.min.js"
FULL_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
#: Trace types in the cartesian bundle (its README); the figures must use only these.
PARTIAL_TRACES = frozenset(
    {
        "bar",
        "box",
        "contour",
        "heatmap",
        "histogram",
        "histogram2d",
        "histogram2dcontour",
        "image",
        "pie",
        "scatter",
        "scatterternary",
        "violin",
    }
)
#: Environment variable: ``full`` forces the full bundle, ``partial`` (default) prefers the partial one.
ENV = "WHATCHANGED_PLOTLY_JS"
_HEADER = re.compile(rb"plotly\.js (?:\((\w+) - minified\) )?v(\d+\.\d+\.\d+\S*)")


def header_version(path: Path) -> tuple[str, str] | None:
    """(bundle name, plotly.js version) from a bundle's licence header, or None."""
    try:
        with path.open("rb") as f:
            head = f.read(300)
    except OSError:
        return None
    m = _HEADER.search(head)
    if m is None:
        return None
    return (m.group(1) or b"full").decode(), m.group(2).decode()


def embedded_version() -> str:
    """The plotly.js version the installed Python plotly package ships (and writes figures for)."""
    from plotly.offline import get_plotlyjs_version

    return str(get_plotlyjs_version())


@dataclass(frozen=True)
class Bundle:
    path: Path
    kind: str  # "partial" or "full"
    version: str  # plotly.js version
    digest: str  # sha256 of the bytes, hex

    @property
    def tag(self) -> str:
        """Cache-busting URL tag: changes whenever the bytes do."""
        return self.digest[:16]

    @property
    def etag(self) -> str:
        return f'"{self.digest[:32]}"'


def _choose(prefer: str) -> Bundle:
    want = embedded_version()
    found = header_version(PARTIAL_JS)
    if prefer != "full" and found is not None and found[1] == want:
        path, kind = PARTIAL_JS, "partial"
    else:
        path, kind = FULL_JS, "full"
    data = path.read_bytes()
    return Bundle(path=path, kind=kind, version=want, digest=hashlib.sha256(data).hexdigest())


@cache
def bundle() -> Bundle:
    """The bundle this process serves (chosen once)."""
    return _choose(os.environ.get(ENV, "partial").strip().lower())


_gzip_lock = threading.Lock()
_gzipped: dict[Path, bytes] = {}
_warming: set[Path] = set()


def gzipped(b: Bundle) -> bytes:
    """The bundle gzipped (computed once per process; concurrent callers wait for the first)."""
    with _gzip_lock:
        data = _gzipped.get(b.path)
        if data is None:
            data = _gzipped[b.path] = gzip.compress(b.path.read_bytes(), compresslevel=6, mtime=0)
        return data


def warm() -> None:
    """Compress the bundle in the background, so the first script request does not wait for it."""
    b = bundle()
    with _gzip_lock:
        if b.path in _gzipped or b.path in _warming:
            return
        _warming.add(b.path)
    threading.Thread(target=gzipped, args=(b,), name="plotly-gzip", daemon=True).start()
