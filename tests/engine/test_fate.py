"""Shared fate: failure domains and redundancy groups, on inventories whose answer is known by
construction; and warehouses written before the ``redundancy_group`` column still read."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from whatchanged.engine.errors import NotFoundError
from whatchanged.engine.fate import Inventory, fate_report, groups_within, smallest_domain
from whatchanged.engine.schema import SERVICES
from whatchanged.engine.warehouse import Warehouse
from whatchanged.present.shapes import fate as fate_json

#: (service, datacenter, rack, switch, host, group)
ROWS = [
    ("db-a", "DC1", "R1", "sw-1", "h1", "db"),
    ("db-b", "DC1", "R2", "sw-2", "h2", "db"),  # same datacenter, other rack/switch/host
    ("lb-a", "DC1", "R1", "sw-1", "h3", "lb"),
    ("lb-b", "DC1", "R3", "sw-1", "h4", "lb"),  # same switch
    ("dns-a", "DC1", "R1", "sw-1", "h5", "dns"),
    ("dns-b", "DC2", "R9", "sw-9", "h9", "dns"),  # spread
    ("web-1", "DC1", "R2", "sw-2", "h2", None),
    ("web-2", "DC1", "R2", "sw-2", "h2", None),
    ("lone", "DC2", "R9", "sw-9", None, "solo"),
]


def _table(rows: list[tuple[str, str, str, str, str | None, str | None]]) -> pa.Table:
    cols = ["service", "datacenter", "rack", "switch", "host", "redundancy_group"]
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    data |= {"kind": ["app"] * len(rows), "app": ["x"] * len(rows), "critical": [False] * len(rows)}
    data["tags"] = [[] for _ in rows]
    return pa.Table.from_pydict({f.name: data[f.name] for f in SERVICES}, schema=SERVICES)


@pytest.fixture
def con(warehouse: Warehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    warehouse.commit({"services": _table(ROWS)})
    c = warehouse.snapshot()
    yield c
    c.close()


def test_domains_count_the_services_in_each(con: duckdb.DuckDBPyConnection) -> None:
    report = fate_report(con)
    by = {(d.level, d.name): d.services for level in report.domains.values() for d in level}
    for level, column in (("datacenter", 1), ("rack", 2), ("switch", 3), ("host", 4)):
        for name in {r[column] for r in ROWS if r[column]}:
            assert by[(level, name)] == sum(1 for r in ROWS if r[column] == name)
    assert report.services == len(ROWS)
    largest = report.largest
    assert largest is not None
    assert (largest.level, largest.name, largest.services) == ("datacenter", "DC1", 7)
    # the switches of DC1's services: sw-1 and sw-2, behind which sit exactly DC1's seven
    assert largest.parts["switch"] == 2
    assert largest.behind_switches == 7


def test_groups_share_the_domains_all_members_sit_in(con: duckdb.DuckDBPyConnection) -> None:
    groups = {g.name: g for g in fate_report(con).groups}
    shared = {name: [(d.level, d.name) for d in g.shared] for name, g in groups.items()}
    assert shared["db"] == [("datacenter", "DC1")]
    assert shared["lb"] == [("datacenter", "DC1"), ("switch", "sw-1")]
    assert shared["dns"] == []
    assert groups["dns"].spread
    assert [m.service for m in groups["lb"].members] == ["lb-a", "lb-b"]


def test_one_group_and_an_unknown_one(con: duckdb.DuckDBPyConnection) -> None:
    assert [g.name for g in fate_report(con, group="db").groups] == ["db"]
    with pytest.raises(NotFoundError, match=r"'nope'.*db, dns, lb, solo"):
        fate_report(con, group="nope")


def test_smallest_domain_and_groups_within_a_scope(con: duckdb.DuckDBPyConnection) -> None:
    inv = Inventory.load(con)
    d = smallest_domain(inv, ["web-1", "web-2"])
    assert d is not None
    assert (d.level, d.name, d.services) == ("host", "h2", 3)
    d = smallest_domain(inv, ["db-b", "lb-b"])
    assert d is not None
    assert (d.level, d.name) == ("datacenter", "DC1")
    assert smallest_domain(inv, ["dns-a", "dns-b"]) is None
    dc1 = inv.members("datacenter", "DC1")
    assert [g.name for g in groups_within(inv, dc1)] == ["db", "lb"]  # dns is spread, solo is alone


def test_json_shape(con: duckdb.DuckDBPyConnection) -> None:
    d = json.loads(json.dumps(fate_json(fate_report(con))))
    assert set(d) == {"services", "largest", "domains", "groups"}
    assert d["largest"]["share_pct"] == round(100 * 7 / 9, 1)
    assert [g["name"] for g in d["groups"]] == ["db", "dns", "lb", "solo"]
    assert d["groups"][0]["members"][0] == {
        "service": "db-a",
        "datacenter": "DC1",
        "switch": "sw-1",
        "rack": "R1",
        "host": "h1",
    }


def test_a_warehouse_written_before_the_column_still_reads(home: Path, tmp_path: Path) -> None:
    """Files (and the empty table file) written without ``redundancy_group`` read it as null;
    a later commit with the column sits beside them."""
    wh = Warehouse(home)
    old_schema = pa.schema([f for f in SERVICES if f.name != "redundancy_group"])
    pq.write_table(old_schema.empty_table(), home / "_empty" / "services.parquet")
    con = wh.snapshot()
    assert con.sql("SELECT redundancy_group FROM services").fetchall() == []
    con.close()
    old = _table(ROWS[:3]).drop_columns(["redundancy_group"])
    wh.commit({"services": old.cast(old_schema)})  # conform() adds the column as null …
    # … so write one file the way an older version did, and name it in a commit of its own
    copy = tmp_path / "old.parquet"
    pq.write_table(_table(ROWS[3:6]).drop_columns(["redundancy_group"]), copy)
    first = next(iter(wh.files("services")))
    shutil.copy(copy, first)
    con = wh.snapshot()
    rows = dict(con.sql("SELECT service, redundancy_group FROM services").fetchall())
    assert set(rows) == {"lb-b", "dns-a", "dns-b"}
    assert set(rows.values()) == {None}
    assert fate_report(con).groups == ()
    con.close()
    wh.commit({"services": _table(ROWS)})
    con = wh.snapshot()
    assert [g.name for g in fate_report(con).groups] == ["db", "dns", "lb", "solo"]
    con.close()
