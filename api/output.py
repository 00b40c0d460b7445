"""One helper for every CLI command's output: ``--json`` or rich tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from whatchanged.api.jsonout import to_json

if TYPE_CHECKING:
    import rich.progress
    from pydantic import BaseModel

# Service names, titles, notices and error texts come from users and providers: nothing they
# contain is read as rich markup (``[bold]``) or emoji codes (``:x:``).  Our own styling is
# written with :func:`styled`, which never parses its text.
console = Console(markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)

#: Columns a user copies into the next command: never cut, never wrapped.
KEEP_WHOLE = frozenset({"id", "id / component", "onset", "end", "start", "time", "detected", "window"})
#: The narrowest a column that may wrap is drawn before it is dropped instead.
MIN_WRAP = 8
#: Border and padding of one column.
COLUMN_CHROME = 3


def wire(model: type[BaseModel], data: Any) -> Any:
    """``data`` as the API serves it through ``model``, its response model (``api/models.py``):
    a command's ``--json`` and the API's body for the same question are then the same."""
    return model.model_validate(data).model_dump(mode="json", by_alias=True)


def progress(label: str, *, disable: bool) -> rich.progress.Progress:
    """The progress bar of a long command (``ingest``, ``batch``): ``label``, bar, done/total,
    elapsed time and the current task's description; gone when it ends, off with ``disable``
    (``--json``: stdout is for the answer)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label, style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=console,
        transient=True,
        disable=disable,
    )


def emit(data: Any, *, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON on stdout, or call ``render`` to draw it for people."""
    if as_json:
        print(to_json(data))
    else:
        render(data)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and ``(text, style)`` pairs; no markup is parsed in any part."""
    return Text.assemble(*parts)


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    drop_first: Sequence[str] = (),
    width: int | None = None,
) -> Table:
    """A table whose ids and times are never cut.

    Columns named in :data:`KEEP_WHOLE` keep their whole width; the others wrap, and when even
    wrapped they do not fit in ``width`` (the console's, 80 when piped), the last of them are
    dropped (``drop_first`` names the ones to drop before the others, which go from the right),
    and the title says which (``--json`` has everything).
    """
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    budget = (width or console.width) - 1
    keep = [c in KEEP_WHOLE for c in columns]
    need = [
        (w if k else min(w, max(MIN_WRAP, len(c)))) + COLUMN_CHROME
        for c, w, k in zip(columns, widths, keep, strict=True)
    ]
    shown = list(range(len(columns)))
    order = [columns.index(c) for c in drop_first if c in columns]
    order += [i for i in reversed(range(len(columns))) if i not in order]
    for i in order:
        if sum(need[j] for j in shown) <= budget:
            break
        if not keep[i] and len(shown) > 1:
            shown.remove(i)
    dropped = [columns[i] for i in range(len(columns)) if i not in shown]
    if dropped:
        title += f" (not shown for want of width: {', '.join(dropped)}; --json has them)"
    t = Table(title=title, title_justify="left")
    for i in shown:
        if keep[i]:
            t.add_column(columns[i], no_wrap=True, min_width=widths[i])
        else:
            t.add_column(columns[i], overflow="fold")
    for r in cells:
        t.add_row(*(r[i] for i in shown))
    return t
