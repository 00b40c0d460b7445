"""Golden files: every ``tests/ingest/golden/<reader>/<case>.*`` input beside
its expected output.

* ``<case>.<ext>`` + ``<case>.expected.json`` ({table: [rows]}): the reader
  chosen by autodetection must be ``<reader>`` and produce exactly those rows;
* ``<case>.<ext>`` + ``<case>.error.txt``: reading must fail with an
  InputError whose message names the file and contains each line of the
  ``.error.txt`` file.
* an optional ``<case>.options.json`` gives ReadContext options (tz, …).

Adding a case is adding two files.  Re-ingesting every golden input into a
warehouse adds 0 rows the second time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import rows
from whatchanged.engine.errors import InputError
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest, read_all
from whatchanged.ingest.registry import detect

GOLDEN = Path(__file__).parent / "golden"
SIDE = (".expected.json", ".error.txt", ".options.json")


def _inputs() -> list[Path]:
    return sorted(
        p
        for p in GOLDEN.rglob("*")
        if p.is_file() and not p.name.endswith(SIDE) and not p.name.startswith(".")
    )


def _stem(p: Path) -> str:
    return p.name.split(".")[0]


def _ctx(p: Path) -> ReadContext:
    opts = p.with_name(_stem(p) + ".options.json")
    return ReadContext(**json.loads(opts.read_text())) if opts.exists() else ReadContext()


def _cases(kind: str) -> list[Path]:
    return [p for p in _inputs() if p.with_name(_stem(p) + kind).exists()]


@pytest.mark.parametrize("path", _cases(".expected.json"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_rows(path: Path) -> None:
    assert detect(path).name == path.parent.name
    tables, _ = read_all([path], _ctx(path))
    got = {name: [r for t in parts for r in rows(t)] for name, parts in tables.items()}
    expected = json.loads(path.with_name(_stem(path) + ".expected.json").read_text())
    assert got == expected


@pytest.mark.parametrize("path", _cases(".error.txt"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_errors(path: Path, tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    with pytest.raises(InputError) as err:
        ingest(wh, [path], _ctx(path))
    message = str(err.value)
    assert path.name in message
    for needle in path.with_name(_stem(path) + ".error.txt").read_text().splitlines():
        if needle.strip():
            assert needle.strip() in message
    assert wh.manifests() == []


@pytest.mark.parametrize("path", _cases(".expected.json"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_reingest_adds_nothing(path: Path, tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    first = ingest(wh, [path], _ctx(path))
    assert first.result is not None
    assert first.result.added_total > 0
    again = ingest(wh, [path], _ctx(path))
    assert again.result is not None
    assert again.result.added_total == 0
    assert len(wh.manifests()) == 1
