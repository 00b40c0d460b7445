from __future__ import annotations

from pathlib import Path

import pytest

from whatchanged.engine.warehouse import Warehouse


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh, initialised warehouse folder."""
    path = tmp_path / "warehouse"
    Warehouse(path).init()
    return path


@pytest.fixture
def warehouse(home: Path) -> Warehouse:
    return Warehouse(home)
