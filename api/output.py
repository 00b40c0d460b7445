"""One helper for every CLI command's output: ``--json`` or rich tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, set | frozenset | tuple):
        return sorted(obj) if isinstance(obj, set | frozenset) else list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, ensure_ascii=False)


def emit(data: Any, *, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON on stdout, or call ``render`` to draw it for people."""
    if as_json:
        print(to_json(data))
    else:
        render(data)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t
