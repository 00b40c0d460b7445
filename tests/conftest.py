from __future__ import annotations

import os
from pathlib import Path

import pytest

from whatchanged.engine.warehouse import Warehouse

# ingest starts the analysis of new data in a detached process; the tests that ingest into
# throw-away folders do not want one outliving them (tests/api/test_cli_analyze.py checks it)
os.environ.setdefault("WHATCHANGED_NO_ANALYZE", "1")
# likewise the server's warm-up thread (tests/api/test_warm.py checks it)
os.environ.setdefault("WHATCHANGED_WARM", "0")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh, initialised warehouse folder."""
    path = tmp_path / "warehouse"
    Warehouse(path).init()
    return path


@pytest.fixture
def warehouse(home: Path) -> Warehouse:
    return Warehouse(home)
