"""``whatchanged doctor``: check a warehouse, repair what can be repaired, say what cannot.

Each check gives one :class:`Finding`:

====================  ==========================================================  ===========
check                 what is looked at                                           repair
====================  ==========================================================  ===========
marker                ``WAREHOUSE`` exists and names a known format version       —
manifests             every ``_commits/*.json`` parses and lists files            —
files                 every file a manifest names exists                          —
empty                 ``_empty/<table>.parquet`` of every table                   rewritten
staging               ``.tmp/<txid>/`` of writers that no longer run              removed
orphans               data files no manifest names (a killed write)               removed
cache                 ``_cache`` temporary files of processes that no longer run  removed
views                 DuckDB opens every view and reads its schema                —
space                 free space on the warehouse's file system                   —
====================  ==========================================================  ===========

A live writer's staging folder and files are never touched (see
:meth:`whatchanged.engine.warehouse.Warehouse.sweep`).  What cannot be repaired
is said with the path and what to do by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from whatchanged.engine.errors import WarehouseError
from whatchanged.engine.storage import stale_temp_files, storage_error
from whatchanged.engine.store import FORMAT_VERSION, TABLES, _schema, empty_table
from whatchanged.engine.warehouse import Warehouse

Outcome = Literal["ok", "repaired", "problem"]
#: below this much free space a warning is given (a day of 1000 services × 3 metrics is ~8 MB)
LOW_SPACE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    check: str
    outcome: Outcome
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(warehouse: Warehouse, *, repair: bool = True) -> list[Finding]:
    """Every check of the module docstring, in order; repairs only when ``repair``."""
    home = warehouse.home
    out: list[Finding] = []
    if not warehouse.exists:
        return [
            Finding(
                "marker",
                "problem",
                f"no warehouse at {home}: run 'whatchanged init' there, or pass the right --home",
            )
        ]
    out.append(_marker(home))
    manifests, bad = _manifests(home)
    out.append(
        Finding("manifests", "ok", f"{len(manifests)} commit(s), every manifest readable")
        if not bad
        else Finding(
            "manifests",
            "problem",
            "; ".join(bad) + " — cannot repair: restore the file from a backup, or move it out of "
            "_commits/ to drop that commit (its data files then become orphans)",
        )
    )
    missing = [
        f
        for m in manifests
        for t in m.get("tables", {}).values()
        for f in t.get("files", [])
        if not (home / f).is_file()
    ]
    out.append(
        Finding("files", "ok", "every committed file is there")
        if not missing
        else Finding(
            "files",
            "problem",
            f"{len(missing)} committed file(s) missing, e.g. {home / missing[0]} — cannot repair: "
            "restore them from a backup (reads of those tables fail until then)",
        )
    )
    out.append(_empty_files(home, repair))
    if bad:
        out.append(
            Finding("staging", "problem", "not swept: a manifest is unreadable, orphans cannot be told")
        )
    else:
        out.extend(_sweep(warehouse, repair))
    out.append(_cache(home, repair))
    out.append(
        _views(warehouse) if not bad and not missing else Finding("views", "problem", "not opened (above)")
    )
    out.append(_space(home))
    return out


def _marker(home: Path) -> Finding:
    try:
        fmt = json.loads((home / "WAREHOUSE").read_text()).get("format")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        return Finding("marker", "problem", f"{home / 'WAREHOUSE'} is unreadable ({exc})")
    if fmt != FORMAT_VERSION:
        return Finding(
            "marker",
            "problem",
            f"format {fmt!r}, this version reads format {FORMAT_VERSION}: upgrade whatchanged",
        )
    return Finding("marker", "ok", f"warehouse format {fmt} at {home}")


def _manifests(home: Path) -> tuple[list[dict[str, Any]], list[str]]:
    good: list[dict[str, Any]] = []
    bad: list[str] = []
    for path in sorted((home / "_commits").glob("*.json")):
        try:
            m = json.loads(path.read_text())
            if not isinstance(m, dict) or not isinstance(m.get("tables"), dict):
                raise ValueError("no 'tables' object")
            good.append(m)
        except (OSError, ValueError) as exc:
            bad.append(f"{path}: {exc}")
    return good, bad


def _empty_files(home: Path, repair: bool) -> Finding:
    lost = [t for t in TABLES if not (home / "_empty" / f"{t}.parquet").is_file()]
    if not lost:
        return Finding("empty", "ok", "every table has its empty file")
    if not repair:
        return Finding(
            "empty", "problem", f"missing _empty/ file of {', '.join(lost)} (run without --dry-run)"
        )
    (home / "_empty").mkdir(exist_ok=True)
    for t in lost:
        pq.write_table(empty_table(_schema(t)), home / "_empty" / f"{t}.parquet")
    return Finding("empty", "repaired", f"rewrote the _empty/ file of {', '.join(lost)}")


def _sweep(warehouse: Warehouse, repair: bool) -> list[Finding]:
    swept = warehouse.sweep(dry_run=not repair)
    verb = "removed" if repair else "to remove (run without --dry-run)"
    outcome: Outcome = "repaired" if repair else "problem"
    live = f"; {swept.live_writers} live writer(s) left alone" if swept.live_writers else ""
    staging = (
        Finding("staging", outcome, f"{len(swept.staging)} staging folder(s) of dead writers {verb}{live}")
        if swept.staging
        else Finding("staging", "ok", f"no leftover staging folder{live}")
    )
    orphans = (
        Finding(
            "orphans",
            outcome,
            f"{len(swept.orphans)} uncommitted data file(s), {swept.bytes / 1e6:.1f} MB in all, {verb}",
        )
        if swept.orphans
        else Finding("orphans", "ok", "no data file outside a commit")
    )
    return [staging, orphans]


def _cache(home: Path, repair: bool) -> Finding:
    stale = stale_temp_files(home / "_cache")
    if not stale:
        return Finding("cache", "ok", "no leftover temporary file in _cache/")
    if not repair:
        return Finding("cache", "problem", f"{len(stale)} temporary file(s) of dead processes in _cache/")
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink()
    return Finding(
        "cache", "repaired", f"removed {len(stale)} temporary file(s) of dead processes in _cache/"
    )


def _views(warehouse: Warehouse) -> Finding:
    try:
        con = warehouse.snapshot()
        try:
            for t in TABLES:
                con.sql(f"SELECT * FROM {t} LIMIT 0").fetchall()
        finally:
            con.close()
    except WarehouseError as exc:
        return Finding("views", "problem", str(exc))
    except Exception as exc:  # DuckDB: a corrupt or unreadable Parquet file
        return Finding("views", "problem", f"cannot open the views: {exc}")
    return Finding("views", "ok", f"the {len(TABLES)} views open")


def _space(home: Path) -> Finding:
    try:
        usage = shutil.disk_usage(home)
    except OSError as exc:
        found = storage_error(exc, home)
        return Finding("space", "problem", str(found or exc))
    free = f"{usage.free / 1e9:.2f} GB free of {usage.total / 1e9:.2f} GB"
    if not os.access(home / "_commits", os.W_OK) or not os.access(home / ".tmp", os.W_OK):
        return Finding(
            "space",
            "problem",
            f"{home} is not writable by this user ({free}): reads work, writes will fail; "
            "give this user write access or remount read-write",
        )
    if usage.free < LOW_SPACE_BYTES:
        return Finding("space", "problem", f"{free} on the warehouse's file system: the next ingest may fail")
    return Finding("space", "ok", free)
