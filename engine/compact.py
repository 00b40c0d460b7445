"""Compaction: the small files of a day partition merged into a few, through the manifests.

Live collection commits a minute at a time: 1,440 files a day per table, which DuckDB
opens one by one.  :func:`compact` merges, for every day partition of ``metrics`` and
``states`` with more than ``max_files`` live files, the files smaller than
:data:`SETTLED_ROWS` rows into as few files as hold them (up to :data:`SETTLED_ROWS`
rows each, sorted by the natural key, a repeated key kept once), so that a day of
1002 services × 3 metrics ends in at most four files.

It is a commit like any other (:meth:`Warehouse.commit`'s staging, lock and
publication) whose manifest also says which committed files the new ones stand in for
(``"replaces": {table: [files]}``); readers take a file as live when a manifest names it
and none replaces it (:meth:`Warehouse.files`).  The rows are read and written outside
any lock; holding the commit lock, the compaction checks that the files it merged are
all still live (another compaction may have merged them meanwhile: then it publishes
nothing) and publishes.  Commits into the same day meanwhile add files it did not read,
which stay live beside the new one.  So a reader sees every row once, before, during
and after, and a compaction killed at any point leaves either its whole manifest or
nothing (its renamed file is an orphan for :meth:`Warehouse.sweep`).

Replaced files stay on disk while readers that listed the manifests before the
compaction may still read them: :func:`collect_garbage` removes them once the
compaction is ``grace_s`` old — first from every manifest naming them (rewritten in
place, atomically; one left without files is removed), then from the disk — and
removes a compaction's manifest once it names no live file and everything it
replaced is named nowhere.  Each step leaves the set of live files unchanged, and
:meth:`Warehouse.manifests` reads the listing again when a manifest vanishes under it.

A compacted file is named ``<txid>-<n>x<digest>.parquet``: the digest is the sum of
the digests of the original files it holds (:func:`file_digest`), which the day-state
cache (:mod:`whatchanged.engine.daystate`) uses as the day's identity, so a compaction
does not make the detection state of its day, or of the days after, stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from whatchanged.engine.schema import SCHEMAS
from whatchanged.engine.store import PARTITIONED, fsync_write, replaced_files
from whatchanged.engine.warehouse import Staged, Warehouse
from whatchanged.engine.write_order import sorted_by_day_and_key

#: a day partition with more live files than this is compacted (what stays: at most this many)
MAX_FILES = 4
#: files with at least this many rows are left as they are; merged files hold at most this many
SETTLED_ROWS = 2_000_000
#: replaced files are removed from the disk this long after their compaction committed
GRACE_S = 600.0
SOURCE = "compact"
_DIGEST_MOD = 1 << 64


def file_digest(name: str) -> int:
    """A file's contribution to its day's identity: a compacted file's digest is in its name
    (``…x<hex>.parquet``), any other file's is a hash of its name."""
    stem = Path(name).name.removesuffix(".parquet")
    _, _, last = stem.rpartition("-")
    if "x" in last:
        with contextlib.suppress(ValueError):
            return int(last.split("x", 1)[1], 16)
    return int.from_bytes(hashlib.sha1(stem.encode()).digest()[:8], "big")


def day_digest(names: Iterable[str]) -> str:
    """The identity of a day partition's rows: the sum of its files' digests (unchanged by
    a compaction, which sums the digests of what it merges into its files' names)."""
    return f"{sum(file_digest(n) for n in names) % _DIGEST_MOD:016x}"


@dataclass(frozen=True)
class Compacted:
    """One day partition compacted."""

    table: str
    day: str
    files_in: int
    files_out: int
    rows: int
    txid: str | None  # None: another compaction got there first; nothing published


@dataclass
class CompactReport:
    """What :func:`compact` did."""

    partitions: list[Compacted] = field(default_factory=list)
    removed_files: int = 0
    removed_manifests: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "partitions": [vars(p) for p in self.partitions],
            "compacted": sum(1 for p in self.partitions if p.txid),
            "removed_files": self.removed_files,
            "removed_manifests": self.removed_manifests,
            "seconds": round(self.seconds, 3),
        }


def partitions(
    wh: Warehouse, manifests: list[dict[str, Any]] | None = None
) -> dict[tuple[str, str], list[str]]:
    """Live files (relative paths, commit order) per (table, day folder) of the partitioned tables."""
    listed = manifests if manifests is not None else wh.manifests()
    out: dict[tuple[str, str], list[str]] = {}
    for table in PARTITIONED:
        for f in wh.files(table, listed):
            rel = str(Path(f).relative_to(wh.home))
            out.setdefault((table, Path(rel).parent.name), []).append(rel)
    return out


def crowded(
    wh: Warehouse, manifests: list[dict[str, Any]] | None = None, *, max_files: int = MAX_FILES
) -> list[tuple[str, str]]:
    """The (table, day folder) partitions with more than ``max_files`` live files."""
    return [k for k, fs in partitions(wh, manifests).items() if len(fs) > max_files]


def _pick(wh: Warehouse, files: list[str], max_files: int) -> list[str]:
    """The files of a crowded partition to merge: those not settled (fewer than
    :data:`SETTLED_ROWS` rows, from the Parquet footers), or all when that would not bring
    it down to ``max_files``."""
    small = [f for f in files if pq.read_metadata(wh.home / f).num_rows < SETTLED_ROWS]
    if len(files) - len(small) + 1 > max_files or len(small) < 2:
        return files
    return small


def compact(
    wh: Warehouse,
    *,
    max_files: int = MAX_FILES,
    grace_s: float = GRACE_S,
    tables: Sequence[str] = PARTITIONED,
) -> CompactReport:
    """Compact every crowded day partition of ``tables``, then :func:`collect_garbage`."""
    started = time.perf_counter()
    report = CompactReport()
    with wh.storage_faults():
        wh.require()
        manifests = wh.manifests()
        for (table, day), files in sorted(partitions(wh, manifests).items()):
            if table not in tables or len(files) <= max_files:
                continue
            report.partitions.append(_compact_one(wh, table, day, _pick(wh, files, max_files)))
        report.removed_files, report.removed_manifests = collect_garbage(wh, grace_s=grace_s)
    report.seconds = time.perf_counter() - started
    return report


def _compact_one(wh: Warehouse, table: str, day: str, files: list[str]) -> Compacted:
    """Merge ``files`` (relative paths, all live in one day partition) into new ones."""
    schema = SCHEMAS[table]
    data = pa.concat_tables([pq.read_table(wh.home / f).select(schema.names).cast(schema) for f in files])
    data, _days = sorted_by_day_and_key(table, data)
    pieces = max(1, -(-data.num_rows // SETTLED_ROWS))
    step = -(-data.num_rows // pieces) if data.num_rows else 0
    digest = day_digest(files)
    with wh._staging() as (txid, staging):
        staged = Staged()
        entry: dict[str, Any] = {"files": [], "rows": data.num_rows}
        for n in range(pieces):
            part = data.slice(n * step, step)
            # the whole digest on the first file: the day's sum is what counts
            name = f"{txid}-{n}x{digest if n == 0 else '0'}.parquet"
            rel = Path(table) / day / name
            tmp = staging / name
            wh._write_parquet(table, part, tmp)
            staged.planned.append((tmp, wh.home / rel))
            entry["files"].append(str(rel))
        staged.listing[table] = entry
        with wh._commit_lock():
            now = wh.manifests()
            live = {str(Path(f).relative_to(wh.home)) for f in wh.files(table, now)}
            if not set(files) <= live:
                return Compacted(table, day, len(files), 0, data.num_rows, None)
            wh._publish(txid, staging, staged, SOURCE, replaces={table: list(files)})
    return Compacted(table, day, len(files), pieces, data.num_rows, txid)


def _age_s(manifest: Mapping[str, Any], now_ns: int) -> float:
    try:
        return (now_ns - int(str(manifest["txid"]).split("-", 1)[0])) / 1e9
    except (KeyError, ValueError):
        return 0.0


def collect_garbage(wh: Warehouse, *, grace_s: float = GRACE_S) -> tuple[int, int]:
    """Remove the files that compactions at least ``grace_s`` old replaced, and the manifests
    left with nothing to say; returns (files removed, manifests removed).  Runs under the
    commit lock; every step keeps the live files as they were (module docstring)."""
    now_ns = time.time_ns()
    removed_files = removed_manifests = 0
    with wh.storage_faults(), wh._commit_lock():
        manifests = wh.manifests()
        due = replaced_files([m for m in manifests if _age_s(m, now_ns) >= grace_s])
        if not due:
            return 0, 0
        commits = wh.home / "_commits"
        named: set[str] = set()
        for m in manifests:  # 1. no manifest names a due file any more
            tables = {
                t: {**entry, "files": [f for f in entry["files"] if f not in due]}
                for t, entry in m["tables"].items()
            }
            tables = {t: e for t, e in tables.items() if e["files"]}
            if tables != m["tables"]:
                m["tables"] = tables
                if tables or m.get("replaces"):
                    _rewrite(commits / f"{m['txid']}.json", m)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        (commits / f"{m['txid']}.json").unlink()
                    removed_manifests += 1
                    m["gone"] = True
            named.update(f for e in tables.values() for f in e["files"])
        for f in sorted(due - named):  # 2. then off the disk
            path = wh.home / f
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed_files += 1
        for m in manifests:  # 3. compactions with no live file whose replaced files are gone
            if m.get("gone") or m["tables"] or not m.get("replaces"):
                continue
            mine = replaced_files([m])
            if mine & named or any((wh.home / f).exists() for f in mine):
                continue
            with contextlib.suppress(FileNotFoundError):
                (commits / f"{m['txid']}.json").unlink()
                removed_manifests += 1
    return removed_files, removed_manifests


def _rewrite(path: Path, manifest: Mapping[str, Any]) -> None:
    """Replace a manifest atomically (the temporary file in ``.tmp/``: swept if killed)."""
    tmp = path.parent.parent / ".tmp" / f".{path.name}.{os.getpid()}.tmp"
    fsync_write(tmp, json.dumps({k: v for k, v in manifest.items() if k != "gone"}, indent=1).encode())
    os.replace(tmp, path)
