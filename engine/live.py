"""What the live sources (``whatchanged collect``) did last: cursors and health.

Two facts per source, kept in two places on purpose:

* its **cursor** (how far it has pulled) is a row of the ``cursors`` table, committed in the
  same warehouse commit as the rows it pulled — a crash leaves both or neither;
* its **health** (last attempt, last success, consecutive failures, last error, next retry)
  is a small JSON file, ``<home>/_collect/health.json``, rewritten atomically after every
  attempt.  It is not data: deleting it only forgets the failure history.

:func:`sources_status` joins the two for ``whatchanged status`` and ``GET /api/v1/status``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.storage import write_atomic
from whatchanged.engine.warehouse import Warehouse

HEALTH_FILE = Path("_collect") / "health.json"


@dataclass
class SourceHealth:
    """The latest attempts of one source."""

    source: str
    kind: str
    last_attempt: str | None = None  # ISO 8601 UTC
    last_success: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    next_retry: str | None = None
    rows_added: int = 0  # over this source's life, as committed

    @property
    def state(self) -> str:
        """``ok``, ``failing`` (retrying) or ``never`` (not pulled yet)."""
        if self.consecutive_failures:
            return "failing"
        return "ok" if self.last_success else "never"


def read_health(warehouse: Warehouse) -> dict[str, SourceHealth]:
    """Every source's health (empty when nothing was collected, or the file is unreadable)."""
    path = warehouse.home / HEALTH_FILE
    try:
        raw = json.loads(path.read_text())
        return {name: SourceHealth(**entry) for name, entry in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}


def write_health(warehouse: Warehouse, health: dict[str, SourceHealth]) -> None:
    """Replace the health file atomically (write a temporary file, rename it)."""
    path = warehouse.home / HEALTH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({k: asdict(v) for k, v in sorted(health.items())}, indent=1))


def read_cursors(con: Snapshot) -> dict[str, dict[str, Any]]:
    """The latest committed cursor of each source (source → its JSON object)."""
    out: dict[str, dict[str, Any]] = {}
    for source, cursor in con.sql("SELECT source, cursor FROM cursors").fetchall():
        try:
            value = json.loads(cursor)
        except ValueError:
            continue
        if isinstance(value, dict):
            out[str(source)] = value
    return out


def sources_status(warehouse: Warehouse) -> list[dict[str, Any]]:
    """One entry per source seen by the collector: state, cursor, last success, last error."""
    if not warehouse.exists:
        return []
    health = read_health(warehouse)
    con = warehouse.snapshot()
    try:
        cursors = read_cursors(con)
    finally:
        con.close()
    now = datetime.now(UTC)
    out = []
    for name in sorted(set(health) | set(cursors)):
        h = health.get(name) or SourceHealth(source=name, kind=str(cursors[name].get("kind", "?")))
        lag_s = None
        if h.last_success:
            lag_s = round((now - datetime.fromisoformat(h.last_success)).total_seconds(), 1)
        out.append(
            {
                "source": name,
                "kind": h.kind,
                "state": h.state,
                "cursor": cursors.get(name),
                "last_attempt": h.last_attempt,
                "last_success": h.last_success,
                "seconds_since_success": lag_s,
                "consecutive_failures": h.consecutive_failures,
                "last_error": h.last_error,
                "next_retry": h.next_retry,
                "rows_added": h.rows_added,
            }
        )
    return out
