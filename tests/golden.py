"""Golden answers: what the tool answers now, kept in ``tests/golden/`` so that a refactor
that must not change any answer (issue 14) is checked byte for byte.

``check(name, data)`` compares ``data`` (made JSON with sorted keys) with
``tests/golden/<name>.json``; ``WHATCHANGED_REGOLD=1`` rewrites the file instead, for a change
that means to alter answers (review the diff, and say why in the commit).
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.helpers import ROOT

GOLDEN = ROOT / "tests" / "golden"


def dump(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def check(name: str, data: Any) -> None:
    path = GOLDEN / f"{name}.json"
    text = dump(data)
    if os.environ.get("WHATCHANGED_REGOLD") == "1":
        path.write_text(text)
        return
    assert path.is_file(), f"no golden answer {path}: run with WHATCHANGED_REGOLD=1 once"
    want = path.read_text()
    assert text == want, f"{name}: the answer differs from {path} (WHATCHANGED_REGOLD=1 to accept)"
