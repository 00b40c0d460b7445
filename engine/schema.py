"""The normalised Arrow schemas: the contract between ingest and engine.

Readers in ``whatchanged.ingest`` produce tables with exactly these schemas
(use :func:`conform` to check and cast); the warehouse stores them as Parquet
and the engine reads them back through DuckDB views of the same names.

All timestamps are ``timestamp[us, tz=UTC]``.
"""

from __future__ import annotations

import pyarrow as pa

from whatchanged.engine.errors import InputError

TS = pa.timestamp("us", tz="UTC")

#: One monitored service and where it lives.  ``tags`` keeps extra columns.
#: ``redundancy_group`` (optional, added later: warehouses written before it read it as null)
#: names the services that stand in for each other — a primary and its standby, a pair of
#: load balancers — for the shared-fate audit (:mod:`whatchanged.engine.fate`).
SERVICES = pa.schema(
    [
        pa.field("service", pa.string(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("datacenter", pa.string()),
        pa.field("rack", pa.string()),
        pa.field("switch", pa.string()),
        pa.field("host", pa.string()),
        pa.field("app", pa.string()),
        pa.field("critical", pa.bool_()),
        pa.field("tags", pa.map_(pa.string(), pa.string())),
        pa.field("redundancy_group", pa.string()),
    ]
)
#: Columns of a table added after warehouses were first written: a view over older files
#: shows them as null (:meth:`whatchanged.engine.warehouse.Store.views`).
LATER_COLUMNS: dict[str, tuple[str, ...]] = {"services": ("redundancy_group",)}

#: One sample.  ``env`` and ``labels`` are optional (null when absent).
METRICS = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("env", pa.string()),
        pa.field("labels", pa.map_(pa.string(), pa.string())),
    ]
)

#: One check result or state change.  ``state`` is OK/WARNING/CRITICAL/UNKNOWN
#: (Nagios/Icinga) or up/down/unknown (external probes such as Pingdom).
STATES = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("check", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("state_type", pa.string()),  # HARD/SOFT for Nagios, null otherwise
        pa.field("source", pa.string()),
        pa.field("message", pa.string()),
    ]
)

SCOPE = pa.struct(
    [
        pa.field("services", pa.list_(pa.string())),
        pa.field("apps", pa.list_(pa.string())),
        pa.field("datacenters", pa.list_(pa.string())),
        pa.field("racks", pa.list_(pa.string())),
        pa.field("switches", pa.list_(pa.string())),
        pa.field("hosts", pa.list_(pa.string())),
    ]
)
SCOPE_KEYS = ("services", "apps", "datacenters", "racks", "switches", "hosts")

#: Change kinds (documented values of ``changes.kind``).
CHANGE_KINDS = ("deploy", "maintenance", "provider_incident", "config", "infra_alert", "restart")

#: One change event or window.  ``end`` is null for a point event.  ``status``
#: is one of scheduled/in_progress/completed/cancelled/resolved or null.
#: ``sequence`` and ``stamp`` order updates of the same ``change_id``: the
#: latest wins when the warehouse is read.
CHANGES = pa.schema(
    [
        pa.field("change_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("start", TS, nullable=False),
        pa.field("end", TS),
        pa.field("title", pa.string()),
        pa.field("description", pa.string()),
        pa.field("status", pa.string()),
        pa.field("impact", pa.string()),
        pa.field("sequence", pa.int64()),
        pa.field("stamp", TS),
        pa.field("scope", SCOPE),
        pa.field("author", pa.string()),
        pa.field("version", pa.string()),
        pa.field("url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

#: One edge of the call graph: ``service`` calls (depends on) ``depends_on``.
DEPENDENCIES = pa.schema(
    [
        pa.field("service", pa.string(), nullable=False),
        pa.field("depends_on", pa.string(), nullable=False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "services": SERVICES,
    "metrics": METRICS,
    "states": STATES,
    "changes": CHANGES,
    "dependencies": DEPENDENCIES,
}

#: Natural key of each table: a row whose key is already stored is not added
#: again (metrics, states) or replaces the stored one when it differs
#: (services, changes: the latest ingested / highest sequence wins).
KEYS: dict[str, tuple[str, ...]] = {
    "services": ("service",),
    "metrics": ("service", "metric", "ts"),
    "states": ("service", "check", "ts", "state"),
    "changes": ("change_id",),
    "dependencies": ("service", "depends_on"),
}


def empty(table: str) -> pa.Table:
    """An empty table with the schema of ``table``."""
    return SCHEMAS[table].empty_table()


def conform(table: str, data: pa.Table, *, source: str = "<input>") -> pa.Table:
    """Return ``data`` with exactly the columns and types of ``table``.

    Missing optional columns are filled with nulls; extra columns are an error
    (readers must fold them into ``tags``/``labels``/``raw`` themselves).
    """
    schema = SCHEMAS[table]
    extra = [c for c in data.column_names if c not in schema.names]
    if extra:
        raise InputError(
            f"reader produced unknown {table} columns {extra}",
            file=source,
            expected=f"only {schema.names}",
            found=extra,
        )
    cols = []
    for field in schema:
        if field.name in data.column_names:
            col = data.column(field.name)
            if col.type != field.type:
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise InputError(
                        f"column '{field.name}' cannot be read as {field.type}",
                        file=source,
                        field=field.name,
                        expected=str(field.type),
                        found=str(col.type),
                    ) from exc
        elif field.nullable:
            col = pa.nulls(data.num_rows, field.type)
        else:
            raise InputError(
                f"required {table} column missing",
                file=source,
                field=field.name,
                expected="a value in every row",
                found="no such column",
            )
        if not field.nullable and col.null_count:
            raise InputError(
                f"{table} column has empty values",
                file=source,
                field=field.name,
                expected="a value in every row",
                found=f"{col.null_count} empty",
            )
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)
