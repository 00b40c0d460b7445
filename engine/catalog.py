"""What the warehouse holds, for listings and checks: the queries the API's routes and the
dashboards ask, so that neither writes SQL (``docs/architecture.md``).

- :func:`services_page` — the inventory filtered by topology columns, one page of it;
- :func:`service_names`, :func:`inventory_values` — names and distinct values of the inventory;
- :func:`stored_kinds`, :func:`change_stored` — which changes are stored, and as what;
- :func:`open_views` — read each view once (a corrupt or missing file raises).

The time range the data covers is :mod:`whatchanged.engine.extent`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from whatchanged.engine.errors import ConfigError
from whatchanged.engine.snapshot import Snapshot

#: the inventory columns a listing may filter on or group by
INVENTORY_FILTERS = ("datacenter", "app", "kind", "switch")


def _tags(value: Any) -> dict[str, Any]:
    """A ``services.tags`` MAP as a dict (DuckDB gives a dict or a list of pairs)."""
    if value is None:
        return {}
    return dict(value)


def services_page(
    con: Snapshot, filters: Mapping[str, str | None], *, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """(how many services match every filter given, the rows of one page ordered by name);
    ``filters`` maps columns of :data:`INVENTORY_FILTERS` to a value, or None for any."""
    unknown = set(filters) - set(INVENTORY_FILTERS)
    if unknown:
        raise ConfigError(f"services: expected filters among {INVENTORY_FILTERS}, found {sorted(unknown)}")
    given = [c for c in INVENTORY_FILTERS if filters.get(c) is not None]
    where = " AND ".join(f'"{c}" = ?' for c in given) or "TRUE"
    params: list[Any] = [filters[c] for c in given]
    total = con.sql(f"SELECT count(*) FROM services WHERE {where}", params=params).fetchall()
    rel = con.sql(
        f"SELECT * FROM services WHERE {where} ORDER BY service LIMIT ? OFFSET ?",
        params=[*params, limit, offset],
    )
    rows = rel.to_arrow_table().to_pylist()
    for row in rows:
        row["tags"] = _tags(row.get("tags"))
    return (int(total[0][0]) if total else 0), rows


def service_names(con: Snapshot) -> list[str]:
    """Every service of the inventory, by name."""
    return [str(r[0]) for r in con.sql("SELECT service FROM services ORDER BY service").fetchall()]


def inventory_values(con: Snapshot, column: str) -> list[str]:
    """The distinct values of an inventory column (``kind``, ``app``, ``datacenter``, ``switch``)."""
    if column not in INVENTORY_FILTERS:
        raise ConfigError(f"inventory column: expected one of {INVENTORY_FILTERS}, found {column!r}")
    rows = con.sql(f'SELECT DISTINCT "{column}" FROM services WHERE "{column}" IS NOT NULL ORDER BY 1')
    return [str(r[0]) for r in rows.fetchall()]


def stored_kinds(con: Snapshot, change_ids: Sequence[str]) -> dict[str, str]:
    """change id → the kind it is stored as, for those of ``change_ids`` that are stored."""
    rows = con.sql(
        "SELECT change_id, kind FROM changes WHERE list_contains(?, change_id)", params=[list(change_ids)]
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def change_stored(con: Snapshot, change_id: str) -> bool:
    """Whether a change with this id is stored."""
    return bool(stored_kinds(con, [change_id]))


def open_views(con: Snapshot, tables: Iterable[str]) -> None:
    """Open each view (no row read): DuckDB raises when a file behind one is corrupt or missing."""
    for table in tables:
        con.sql(f'SELECT * FROM "{table}" LIMIT 0').fetchall()
