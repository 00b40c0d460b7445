"""Query-time change listing and scope resolution (engine/changes.py), on a real warehouse."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from whatchanged.engine.changes import Inventory, list_changes, load_aliases, resolve_scope
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.schema import CHANGES, SCOPE_KEYS, SERVICES
from whatchanged.engine.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]

SERVICES_ROWS = [
    # service, kind, datacenter, rack, switch, host, app
    ("www-0001", "site", "P19", "P19-R01", "p19-sw-01", "p19-web-01", "sites"),
    ("www-0002", "site", "P19", "P19-R01", "p19-sw-01", "p19-web-02", "sites"),
    ("bo-primary", "backoffice", "P19", "P19-R07", "p19-sw-04", "p19-bo-01", "backoffice"),
    ("db-main", "database", "P19", "P19-R09", "p19-sw-06", "p19-db-01", "backoffice"),
    ("mail-out", "email", "RBX4", "RBX-R02", "rbx-sw-02", "rbx-mx-01", "mail"),
    ("backup-gra", "backup", "GRA", "GRA-R11", "gra-sw-11", "gra-bk-01", "backup"),
]
P19 = ("bo-primary", "db-main", "www-0001", "www-0002")


def _services(rows: list[tuple[str, ...]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    data = {
        n: list(c)
        for n, c in zip(("service", "kind", "datacenter", "rack", "switch", "host", "app"), cols, strict=True)
    }
    data["critical"] = [False] * len(rows)
    data["tags"] = [[] for _ in rows]
    data["redundancy_group"] = [None] * len(rows)
    return pa.Table.from_pydict(data, schema=SERVICES)


def _scope(**names: list[str]) -> dict[str, list[str]]:
    return {k: names.get(k, []) for k in SCOPE_KEYS}


def _change(
    change_id: str, kind: str, start: datetime, end: datetime | None = None, **kw: object
) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(CHANGES.names)
    row.update(change_id=change_id, kind=kind, start=start, end=end, scope=_scope())
    row.update(kw)
    return row


def _t(h: int, m: int = 0) -> datetime:
    return datetime(2010, 11, 17, h, m, tzinfo=UTC)


@pytest.fixture
def aliases(tmp_path: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    path = tmp_path / "aliases.yaml"
    path.write_text("datacenters:\n  Paris 19: P19\n  Roubaix: [RBX]\nswitches:\n  core-a: [p19-sw-04]\n")
    return load_aliases(path)


def test_paris_19_with_an_alias_is_exactly_the_p19_services(warehouse: Warehouse, aliases: dict) -> None:
    notice = _change(
        "ovh:FS#1",
        "maintenance",
        _t(18),
        _t(20),
        title="Network:: switches maintenance",
        description="We will reload the switches of room Paris 19.",
        scope=_scope(datacenters=["Paris 19"]),
    )
    warehouse.commit(
        {"services": _services(SERVICES_ROWS), "changes": pa.Table.from_pylist([notice], schema=CHANGES)}
    )
    con = warehouse.snapshot()
    try:
        (with_alias,) = list_changes(con, start=_t(18, 23), end=_t(18, 23), aliases=aliases)
        (without,) = list_changes(con, start=_t(18, 23), end=_t(18, 23))
    finally:
        con.close()
    assert with_alias.resolved_services == P19
    assert with_alias.scope["datacenters"] == ("Paris 19",)
    assert without.resolved_services == ()  # the alias is what makes "Paris 19" mean P19


def test_alias_names_in_notice_text_resolve_too(aliases: dict) -> None:
    inv = Inventory(tuple((r[0], r[2], r[3], r[4], r[5], r[6]) for r in SERVICES_ROWS))
    assert resolve_scope(_scope(), inv, text="Works in paris 19 tonight", aliases=aliases) == P19
    assert resolve_scope(_scope(), inv, text="core-a reload", aliases=aliases) == ("bo-primary",)


def test_names_in_text_and_ranges_match_inventory_components() -> None:
    inv = Inventory(tuple((r[0], r[2], r[3], r[4], r[5], r[6]) for r in SERVICES_ROWS))
    assert resolve_scope(_scope(), inv, text="Reboot of p19-sw-04.") == ("bo-primary",)
    assert resolve_scope(_scope(), inv, text="switches p19-sw-01 to p19-sw-05") == (
        "bo-primary",
        "www-0001",
        "www-0002",
    )
    assert resolve_scope(_scope(), inv, text="host p19-db-01 and rack GRA-R11") == ("backup-gra", "db-main")
    # a name glued into a longer one does not match
    assert resolve_scope(_scope(), inv, text="p19-sw-011 and xp19-sw-01") == ()


def test_datacenter_codes_match_by_family() -> None:
    inv = Inventory(tuple((r[0], r[2], r[3], r[4], r[5], r[6]) for r in SERVICES_ROWS))
    assert resolve_scope(_scope(datacenters=["RBX"]), inv) == ("mail-out",)
    assert resolve_scope(_scope(datacenters=["rbx-4"]), inv) == ("mail-out",)
    assert resolve_scope(_scope(datacenters=["RBX2"]), inv) == ()
    assert resolve_scope(_scope(datacenters=["GRA1"]), inv) == ("backup-gra",)


def test_deploy_service_may_name_a_service_or_an_app() -> None:
    inv = Inventory(tuple((r[0], r[2], r[3], r[4], r[5], r[6]) for r in SERVICES_ROWS))
    assert resolve_scope(_scope(services=["backoffice"]), inv) == ("bo-primary", "db-main")
    assert resolve_scope(_scope(services=["www-0002"]), inv) == ("www-0002",)
    assert resolve_scope(_scope(apps=["mail"]), inv) == ("mail-out",)
    assert resolve_scope(_scope(hosts=["p19-web-01"]), inv) == ("www-0001",)


def test_list_changes_window_kind_order_and_later_inventory(warehouse: Warehouse) -> None:
    changes = [
        _change(
            "d1",
            "deploy",
            _t(17, 5),
            _t(17, 9),
            scope=_scope(services=["sites"]),
            description="mentions db-main",
        ),
        _change("m1", "maintenance", _t(18), _t(20), title="p19-sw-04 reload", status="cancelled"),
        _change("old", "deploy", _t(9)),
        _change("late", "deploy", _t(21)),
    ]
    warehouse.commit(
        {"services": _services(SERVICES_ROWS), "changes": pa.Table.from_pylist(changes, schema=CHANGES)}
    )
    con = warehouse.snapshot()
    try:
        got = list_changes(con, start=_t(17), end=_t(19))
        assert [c.change_id for c in got] == ["d1", "m1"]
        assert got[0].resolved_services == ("www-0001", "www-0002")  # deploy text is not scanned
        assert got[1].resolved_services == ("bo-primary",)
        assert got[1].cancelled
        assert got[0].start.tzinfo is not None
        assert got[0].start == _t(17, 5)
        assert [c.change_id for c in list_changes(con, start=_t(17), end=_t(19), kind="maintenance")] == [
            "m1"
        ]
        # a window that covers the range is found even though it started before
        assert [c.change_id for c in list_changes(con, start=_t(19), end=_t(19))] == ["m1"]
        with pytest.raises(ConfigError, match="kind"):
            list_changes(con, start=_t(17), end=_t(19), kind="reboot")
    finally:
        con.close()
    # the inventory changes later: old notices resolve against the new one
    moved = [r if r[0] != "www-0002" else (*r[:4], "p19-sw-04", *r[5:]) for r in SERVICES_ROWS]
    warehouse.commit({"services": _services(moved)})
    con = warehouse.snapshot()
    try:
        (m1,) = list_changes(con, start=_t(19), end=_t(19))
    finally:
        con.close()
    assert m1.resolved_services == ("bo-primary", "www-0002")


def test_aliases_file_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("datacentres:\n  Paris 19: P19\n")
    with pytest.raises(ConfigError, match="datacentres"):
        load_aliases(path)
    path.write_text("datacenters: [P19]\n")
    with pytest.raises(ConfigError, match="datacenters"):
        load_aliases(path)
    path.write_text("datacenters:\n  Paris 19: {}\n")
    with pytest.raises(ConfigError, match="Paris 19"):
        load_aliases(path)
    assert load_aliases(tmp_path / "missing.yaml") == {}
    assert load_aliases(None) == {}


def test_packaged_aliases_file_loads() -> None:
    table = load_aliases(ROOT / "engine" / "default_aliases.yaml")
    assert table["datacenters"]["paris 19"] == ("P19",)


def test_a_datacenter_named_only_in_the_text_is_in_scope() -> None:
    """Issue #12 class 4: "Core router replacement — GRA" with no component covers GRA; a code
    glued into a host name (``p19-web-01``) does not name the datacenter P19."""
    inventory = Inventory(tuple((r[0], r[2], r[3], r[4], r[5], r[6]) for r in SERVICES_ROWS))
    assert resolve_scope(_scope(), inventory, text="Core router replacement — GRA") == ("backup-gra",)
    assert resolve_scope(_scope(), inventory, text="Reboot of p19-web-01") == ("www-0001",)
    assert resolve_scope(_scope(), inventory, text="works in rbx4 and gra") == ("backup-gra", "mail-out")
    assert resolve_scope(_scope(), inventory, text="GRAVEL pit nearby") == ()


def test_notice_components_named_after_a_switch_cover_what_is_behind_it(warehouse: Warehouse) -> None:
    """A Statuspage component or BCOP object id naming a switch covers its services (they used
    to match only the switch's own inventory row); a deploy's services stay exact."""
    rows = [*SERVICES_ROWS, ("p19-sw-01", "switch", "P19", "P19-R01", "p19-sw-01", "p19-sw-01", "network")]
    warehouse.commit(
        {
            "services": _services(rows),
            "changes": pa.Table.from_pylist(
                [
                    _change(
                        "sp:1",
                        "maintenance",
                        _t(18),
                        _t(20),
                        title="Firmware",
                        scope=_scope(services=["p19-sw-01"]),
                    ),
                    _change("REL-1", "deploy", _t(18), scope=_scope(services=["p19-sw-01"])),
                ],
                schema=CHANGES,
            ),
        }
    )
    con = warehouse.snapshot()
    got = {c.change_id: c.resolved_services for c in list_changes(con, start=_t(17), end=_t(21))}
    assert got == {"sp:1": ("p19-sw-01", "www-0001", "www-0002"), "REL-1": ("p19-sw-01",)}
