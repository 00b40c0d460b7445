"""Imports point one way: api → dashboards → present → engine ← ingest."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "engine": {"engine"},
    "ingest": {"ingest", "engine"},
    "present": {"present", "engine"},
    "dashboards": {"dashboards", "present", "engine"},
    "api": {"api", "dashboards", "present", "engine", "ingest", "data"},
    "data": {"data", "engine", "ingest"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("whatchanged."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("whatchanged."):
                    found.add(alias.name.split(".")[1])
    return found


def test_imports_point_one_way() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports whatchanged.{target}"
        for layer, allowed in ALLOWED.items()
        for path in (ROOT / layer).rglob("*.py")
        for target in _imports(path) - allowed
    ]
    assert wrong == []
