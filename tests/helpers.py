"""Shared test helpers: JSON-friendly rows, running the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
#: real public data vendored for the tests, each folder with its licence (see its README)
DATASETS = ROOT / "tests" / "data"


def jsonable(value: Any) -> Any:
    """Timestamps as ISO strings in UTC, maps as dicts, lists kept."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {k: jsonable(v) for k, v in value}
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: jsonable(v) for k, v in r.items()} for r in table.to_pylist()]


def run_cli(
    *args: str, home: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``whatchanged`` console script in a new process."""
    full_env = {**os.environ, **(env or {})}
    if home is not None:
        full_env["WHATCHANGED_HOME"] = str(home)
    exe = Path(sys.executable).parent / "whatchanged"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
