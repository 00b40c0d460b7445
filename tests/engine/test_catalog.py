"""The listings the API and the dashboards ask for (engine/catalog.py) and the data's range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from whatchanged.engine import catalog, extent
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.schema import CHANGES
from whatchanged.engine.warehouse import Warehouse

T0 = datetime(2010, 11, 17, 18, 0, tzinfo=UTC)


@pytest.fixture
def small(warehouse: Warehouse) -> Warehouse:
    inv = pa.table(
        {
            "service": ["www-2", "www-1", "db1"],
            "datacenter": ["P19", "P19", "RBX"],
            "switch": ["sw1", "sw1", "sw2"],
            "app": ["sites", "sites", "db"],
            "kind": ["site", "site", None],
        }
    )
    change = {"change_id": "d1", "kind": "deploy", "start": T0 - timedelta(days=1), "end": None}
    states = pa.table(
        {
            "ts": pa.array([T0, T0 + timedelta(hours=1)], pa.timestamp("us", tz="UTC")),
            "service": ["www-1", "www-1"],
            "check": ["http", "http"],
            "state": ["OK", "CRITICAL"],
            "source": ["nagios", "nagios"],
        }
    )
    warehouse.commit(
        {"services": inv, "changes": pa.Table.from_pylist([change], schema=CHANGES), "states": states}
    )
    return warehouse


def test_services_page_filters_and_pages(small: Warehouse) -> None:
    con = small.snapshot()
    try:
        total, rows = catalog.services_page(con, {"datacenter": "P19"}, limit=1, offset=1)
        assert total == 2
        assert [r["service"] for r in rows] == ["www-2"]
        assert rows[0]["tags"] == {}
        assert catalog.service_names(con) == ["db1", "www-1", "www-2"]
        assert catalog.inventory_values(con, "kind") == ["site"]
        with pytest.raises(ConfigError):
            catalog.inventory_values(con, "service; DROP TABLE x")
        with pytest.raises(ConfigError):
            catalog.services_page(con, {"owner": "me"}, limit=1, offset=0)
    finally:
        con.close()


def test_stored_changes_and_ranges(small: Warehouse) -> None:
    con = small.snapshot()
    try:
        assert catalog.stored_kinds(con, ["d1", "nope"]) == {"d1": "deploy"}
        assert catalog.change_stored(con, "d1")
        assert not catalog.change_stored(con, "nope")
        catalog.open_views(con, ["services", "changes", "states"])
        assert extent.observed_range(con) == (T0, T0 + timedelta(hours=1))
        assert extent.data_range(con) == (T0 - timedelta(days=1), T0 + timedelta(hours=1))
    finally:
        con.close()


def test_no_data_no_range(warehouse: Warehouse) -> None:
    con = warehouse.snapshot()
    try:
        assert extent.observed_range(con) is None
        assert extent.data_range(con) is None
    finally:
        con.close()
