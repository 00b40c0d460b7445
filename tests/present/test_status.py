"""Every error class of the tree has exactly one HTTP status, and the API and the dashboards
both answer with it (``present.status``)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.helpers import ROOT
from whatchanged.api.problems import from_exception
from whatchanged.dashboards.respond import error_body
from whatchanged.engine.errors import StorageError, WhatchangedError
from whatchanged.engine.settings import Settings
from whatchanged.present.status import STATUS, status_of

LAYERS = ("engine", "ingest", "present", "dashboards", "api", "data")


def _modules_defining_classes() -> list[str]:
    """Modules of the package that define a class whose bases name an ``…Error``."""
    found = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            tree = ast.parse(path.read_text())
            if any(
                isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("Error") for b in node.bases)
                for node in ast.walk(tree)
            ):
                rel = path.relative_to(ROOT).with_suffix("")
                found.append("whatchanged." + ".".join(p for p in rel.parts if p != "__init__"))
    return found


def _tree() -> list[type[WhatchangedError]]:
    for name in _modules_defining_classes():
        importlib.import_module(name)
    out: list[type[WhatchangedError]] = []
    todo: list[type[WhatchangedError]] = [WhatchangedError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(out), key=lambda c: f"{c.__module__}.{c.__qualname__}")


TREE = _tree()


def _instance(cls: type[WhatchangedError]) -> WhatchangedError:
    if issubclass(cls, StorageError):
        return cls("/srv/wh/_commits", "no space left on device", "free some space")
    return cls("something went wrong")


def test_the_tree_is_found() -> None:
    names = {c.__name__ for c in TREE}
    assert {"InputError", "ConfigError", "NotFoundError", "WarehouseError", "StorageError"} <= names
    assert "SourceError" in names  # defined in ingest: found too


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_each_error_class_maps_to_exactly_one_status(cls: type[WhatchangedError]) -> None:
    rows = [k for k in cls.__mro__ if k in STATUS]
    assert rows, f"{cls.__name__} has no row in present.status.STATUS"
    # the nearest rows (those not an ancestor of another row of this class) must agree
    nearest = [k for k in rows if not any(o is not k and issubclass(o, k) for o in rows)]
    assert len({STATUS[k] for k in nearest}) == 1, nearest
    assert status_of(cls) == STATUS[nearest[0]]


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_api_and_dashboards_answer_with_the_table(cls: type[WhatchangedError], tmp_path: Path) -> None:
    exc = _instance(cls)
    code, slug = status_of(exc)
    response = from_exception(exc, "/api/v1/x")
    assert response.status_code == code
    assert bytes(response.body).decode().count(f"urn:whatchanged:problem:{slug}") == 1
    _, page_status = error_body(exc, Settings(home=tmp_path), "/dashboards")
    assert page_status == code
