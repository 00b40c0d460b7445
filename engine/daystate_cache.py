"""The cache of day states: :class:`DayStates` computes the state of every day of a
warehouse's metrics on demand, in day order, and keeps them under ``<home>/_cache/daystate/``
(what a state is: :mod:`whatchanged.engine.daystate`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import astuple
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from whatchanged.engine.baseline import Array
from whatchanged.engine.daygrid import _rows_in, day_files, read_day
from whatchanged.engine.daystate import (
    FORMAT,
    GRIDS_KEPT,
    HISTORY_DAYS,
    RAW_KEPT,
    STATES_KEPT,
    DayState,
    Geometry,
    Key,
    _last_state,
    advance,
    can_extend,
)
from whatchanged.engine.detect import DetectParams
from whatchanged.engine.storage import stale_temp_files


def chain_keys(by_day: dict[date, list[str]], params: DetectParams, step_s: float) -> dict[date, str]:
    """Cache key per day: the detector settings and the rows of that day and every day before,
    named by each day's :func:`~whatchanged.engine.compact.day_digest` (a compaction, which
    moves rows between files, leaves it as it was)."""
    from whatchanged.engine.compact import day_digest

    h = hashlib.sha1(json.dumps([FORMAT, step_s, astuple(params)], default=str).encode())
    out = {}
    for d, fs in by_day.items():
        h.update(("\x00" + d.isoformat() + "\x01" + day_digest(fs)).encode())
        out[d] = h.copy().hexdigest()[:20]
    return out


class DayStates:
    """The states of every day of a warehouse's metrics, computed on demand in day order
    and cached on disk (``cache_dir``; None: in memory only)."""

    def __init__(
        self,
        files: Sequence[str],
        params: DetectParams,
        g: Geometry,
        cache_dir: Path | None,
        *,
        manifests: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.by_day = day_files(files)
        #: the manifests that committed ``files`` (compactions are traced through them)
        self.manifests = tuple(manifests)
        self.days = list(self.by_day)
        self.params = params
        self.g = g
        self.keys = chain_keys(self.by_day, params, g.step_s)
        self.cache_dir = cache_dir
        # kept in memory: the latest states used (all of them without a cache on disk, where
        # an evicted state would cost the whole chain again) and the last raw grids read
        self._states: OrderedDict[date, DayState] = OrderedDict()
        self._raw: OrderedDict[date, tuple[list[Key], Array]] = OrderedDict()
        self.computed = 0  # states computed (not read from the cache) by this object
        self.extended = 0  # of which extended from a state of the same day with fewer files
        self.extended_new_only = 0  # of which read only the new samples' files (not the whole day)
        self._lock = threading.RLock()  # the API server's threads share one object

    def _path(self, d: date) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{d.isoformat()}-{self.keys[d]}.npz"

    def raw(self, d: date) -> tuple[list[Key], Array]:
        with self._lock:
            return self._raw_locked(d)

    def prefetch(self, days: Sequence[date]) -> None:
        """Read the raw grids of ``days`` (at most :data:`RAW_KEPT`) that are neither in memory
        nor kept on disk, side by side on threads (pyarrow and numpy release the GIL): a
        question reaching back into the day before reads both days at once.  :meth:`raw`
        then finds them in memory."""
        with self._lock:
            missing = [
                d
                for d in days[-RAW_KEPT:]
                if d in self.by_day and d not in self._raw and not self._grid_file(d)
            ]
        if len(missing) < 2:
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            grids = list(pool.map(lambda d: read_day(self.by_day[d], d, self.g), missing))
        with self._lock:
            for d, grid in zip(missing, grids, strict=True):
                self._raw.setdefault(d, grid)
                self._raw.move_to_end(d)
            while len(self._raw) > RAW_KEPT:
                self._raw.popitem(last=False)

    def _grid_file(self, d: date) -> bool:
        path = self._grid_path(d)
        return path is not None and path.is_file()

    def _grid_path(self, d: date) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{d.isoformat()}-{self.keys[d]}.grid.npy"

    def _raw_locked(self, d: date) -> tuple[list[Key], Array]:
        hit = self._raw.get(d)
        if hit is None:
            hit = self._cached_grid(d) or read_day(self.by_day[d], d, self.g)
            self._raw[d] = hit
            while len(self._raw) > RAW_KEPT:
                self._raw.popitem(last=False)
        self._raw.move_to_end(d)
        return hit

    def _cached_grid(self, d: date) -> tuple[list[Key], Array] | None:
        """The raw grid of ``d`` kept beside its state (rows: the state's keys), if any."""
        grid, path = self._grid_path(d), self._path(d)
        if grid is None or path is None or not grid.is_file() or not path.is_file():
            return None
        st = self._state_locked(d)
        try:
            x = np.load(grid, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if st is None or x.shape != (len(st.keys), self.g.cols):
            return None
        return st.keys, x  # float32, the values as stored: advance reads them in float64

    def _save_grid(self, d: date, x: Array) -> None:
        """Keep the raw grid of ``d`` (float32: the values as stored) for the latest
        :data:`GRIDS_KEPT` days: questions are mostly about them, and reading a day's Parquet
        files costs several times more than loading the grid."""
        path = self._grid_path(d)
        if path is None or d not in self.days[-GRIDS_KEPT:]:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(x, dtype=np.float32))
        os.replace(tmp, path)
        recent = {day.isoformat() for day in self.days[-GRIDS_KEPT:]}
        for other in path.parent.glob("*.grid.npy"):
            if other != path and (other.name[:10] not in recent or other.name[:10] == path.name[:10]):
                with contextlib.suppress(OSError):
                    other.unlink()

    def _keep(self, d: date, st: DayState) -> DayState:
        self._states[d] = st
        self._states.move_to_end(d)
        if self.cache_dir is not None:
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
        return st

    def _known(self, d: date) -> bool:
        """The state of ``d`` is in memory or on disk."""
        path = self._path(d)
        return d in self._states or (path is not None and path.is_file())

    def previous(self, d: date) -> tuple[DayState | None, int]:
        """The latest state within :data:`HISTORY_DAYS` before ``d`` and the days without
        data between them."""
        for k in range(1, HISTORY_DAYS + 1):
            st = self.state(d - timedelta(days=k))
            if st is not None:
                return st, k - 1
        return None, 0

    def state(self, d: date) -> DayState | None:
        """The state of day ``d`` (None if the warehouse holds no metrics that day)."""
        with self._lock:
            return self._state_locked(d)

    def _state_locked(self, d: date) -> DayState | None:
        if d not in self.by_day:
            return None
        hit = self._states.get(d)
        if hit is not None:
            self._states.move_to_end(d)
            return hit
        path = self._path(d)
        if path is not None and path.is_file():
            try:
                return self._keep(d, DayState.load(path))
            except (OSError, ValueError, KeyError):
                pass
        # the days before first, oldest first (no deep recursion): from the latest one cached
        i = self.days.index(d)
        start = i
        while start > 0 and not self._known(self.days[start - 1]):
            start -= 1
        for earlier in self.days[start:i]:
            self.state(earlier)
        extended = self._extension(d)
        if extended is not None:  # minutes appended to a day analysed before: from where it stopped
            # (the day before's state is all it reads of the history)
            none: list[DayState | None] = [None] * (HISTORY_DAYS - 1)
            history = [*none, self.state(d - timedelta(days=1))]
        else:
            history = [self.state(d - timedelta(days=k)) for k in range(HISTORY_DAYS, 0, -1)]
        if extended is not None:
            keys, x, old, col = extended
            st = advance(x, keys, history, self.params, self.g, since=(old, col))
            self._raw[d] = (keys, x)
            self.extended += 1
        else:
            keys, x = self.raw(d)
            prev, _gap = _last_state(history)
            if prev is not None:  # carry the series of the previous days that have no data today
                live = [k for k, r in zip(prev.keys, _live_rows(history, prev.keys), strict=True) if r]
                if set(live) - set(keys):
                    keys, x = _with_rows(keys, x, live)
            st = advance(x, keys, history, self.params, self.g)
        self._keep(d, st)
        self.computed += 1
        if path is not None:
            try:
                meta: dict[str, Any] = {
                    "files": sorted(Path(f).name for f in self.by_day[d]),
                    "prev": self._prev_key(d),
                }
                rows = _rows_in(self.by_day[d])
                if rows is not None:
                    meta["rows"] = rows
                st.save(path, meta)
                _sweep(path)
                self._save_grid(d, x)
            except OSError:
                pass
        return st

    def _prev_key(self, d: date) -> str:
        i = self.days.index(d)
        return self.keys[self.days[i - 1]] if i else ""

    def _extension(self, d: date) -> tuple[list[Key], Array, DayState, int] | None:
        """What :func:`advance` needs to extend the cached state of ``d`` computed before the
        latest commits to it: that state, its raw grid with the new samples added, and the
        first column they fill.  None (compute the day afresh) unless the cache holds a state
        of ``d`` computed after the same days, with its grid, and the day's samples now are
        those samples, unchanged, and new ones after them, of no new series.  When the files
        then read are all still there, only the new files are read; else (a compaction merged
        them) the whole day, checked against the old grid."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return None
        names = {Path(f).name for f in self.by_day[d]}
        prev_key = self._prev_key(d)
        for path in self.cache_dir.glob(f"{d.isoformat()}-*.npz"):
            meta = read_meta(path)
            before = set(meta.get("files", [])) if meta and meta.get("prev") == prev_key else set()
            if not before or before == names:
                continue
            try:
                old = DayState.load(path)
                x = np.load(path.with_name(path.name[: -len(".npz")] + ".grid.npy"), allow_pickle=False)
            except (OSError, ValueError, KeyError):
                continue
            if x.shape != (len(old.keys), self.g.cols):
                continue
            # the grid stays float32 (the values as stored; advance reads the columns it
            # needs in float64), filled in place: it was just read
            had = ~np.isnan(x)
            read: tuple[list[Key], Array] | None = None
            if before < names:
                read = read_day([f for f in self.by_day[d] if Path(f).name not in before], d, self.g)
            else:  # compactions merged files read then: the new ones traced through them
                new_files = self._new_since(d, before, meta.get("rows") if meta else None)
                if new_files is not None:
                    with contextlib.suppress(OSError):  # removed meanwhile: the whole day
                        read = read_day(new_files, d, self.g)
            appended = read is not None
            new_keys, x_new = read if read is not None else read_day(self.by_day[d], d, self.g)
            rows = old.rows(new_keys)
            if (rows < 0).any():
                return None  # a new series
            if appended:  # only new samples were read: put them beside the old ones
                filled = ~np.isnan(x_new)
                new_cols = np.flatnonzero(filled.any(axis=0))
                if new_cols.size:  # only the columns the new samples fill are touched
                    span = slice(int(new_cols[0]), int(new_cols[-1]) + 1)
                    if (filled[:, span] & had[rows, span]).any():
                        return None  # a second sample in a step: a mean, computed afresh
                    x[rows, span] = np.where(filled[:, span], x_new[:, span], x[rows, span])
                grid = x
            else:
                grid = np.full_like(x, np.nan)
                grid[rows] = x_new
                if not np.array_equal(grid[had], x[had]):
                    return None  # a sample changed or went
                new_cols = np.flatnonzero((~np.isnan(grid) & ~had).any(axis=0))
            old_cols = np.flatnonzero(had.any(axis=0))
            if not new_cols.size or not old_cols.size:
                return None
            col = int(new_cols[0])
            day_before = self.state(d - timedelta(days=1)) is not None
            if not can_extend(int(old_cols[-1]) + 1, col, self.g, day_before=day_before):
                return None
            if appended:
                self.extended_new_only += 1
            return old.keys, grid, old, col
        return None

    def _new_since(self, d: date, before: set[str], rows_before: Any) -> list[str] | None:
        """The files holding exactly the rows of ``d`` committed after a state computed from the
        files ``before`` (names) holding ``rows_before`` rows, when compactions merged some of
        those files since (None: not known; the whole day is read).

        A compacted file holds the rows of the files its manifest replaced (a repeated key kept
        once).  Each live file of the day is traced back through the compactions' ``replaces``
        to files of ``before`` and files not in it (the new ones, read from the disk while
        :func:`~whatchanged.engine.compact.collect_garbage` leaves them there); where no
        file is reached twice, the day's rows are a part of the rows of ``before`` and of the
        new files, and all of them when the row counts (Parquet footers) add up."""
        files = self.by_day[d]
        if not isinstance(rows_before, int) or not self.manifests or not files:
            return None
        made_by: dict[str, str] = {}  # compacted file → its compaction
        replaced: dict[str, list[str]] = {}  # compaction → the files it replaced
        for m in self.manifests:
            merged = (m.get("replaces") or {}).get("metrics")
            if not isinstance(merged, list):
                continue
            txid = str(m.get("txid"))
            replaced[txid] = [Path(str(f)).name for f in merged]
            for f in m.get("tables", {}).get("metrics", {}).get("files", []):
                made_by[Path(str(f)).name] = txid

        def unit(name: str) -> str:
            return made_by.get(name, name) if name not in before else name

        def leaves(names: list[str], depth: int) -> set[str] | None:
            """The files of ``before`` and the uncompacted files ``names`` hold rows of
            (None: one reached twice, or too deep)."""
            if depth > 64:
                return None
            out: set[str] = set()
            for u in dict.fromkeys(unit(n) for n in names):
                got = leaves(replaced[u], depth + 1) if u in replaced and u not in before else {u}
                if got is None or got & out:
                    return None
                out |= got
            return out

        reached = leaves([Path(f).name for f in files], 0)
        if reached is None or not before <= reached:
            return None
        folder = Path(files[0]).parent
        new = [str(folder / n) for n in sorted(reached - before)]
        now, added = _rows_in(files), _rows_in(new)
        if now is None or added is None or now != rows_before + added:
            return None  # a repeated key kept once, or a file gone: the whole day
        return new


def read_meta(path: Path) -> dict[str, Any] | None:
    """What :meth:`DayState.save` was given as ``meta`` (None: unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError):
        return None
    return meta if isinstance(meta, dict) else None


def _live_rows(history: Sequence[DayState | None], keys: Sequence[Key]) -> list[bool]:
    """Whether each key has a block median in any of the ``history`` states."""
    live = np.zeros(len(keys), dtype=bool)
    for st in history:
        if st is not None:
            rows = st.rows(keys)
            has = np.zeros(len(keys), dtype=bool)
            ok = rows >= 0
            has[ok] = np.isfinite(st.block_medians[rows[ok]]).any(axis=1)
            live |= has
    return live.tolist()


def _with_rows(keys: list[Key], x: Array, extra: Sequence[Key]) -> tuple[list[Key], Array]:
    """``keys``/``x`` with rows of NaN added for ``extra`` keys, in sorted order."""
    merged = sorted(set(keys) | set(extra))
    index = {k: i for i, k in enumerate(keys)}
    out = np.full((len(merged), x.shape[1]), np.nan)
    for r, k in enumerate(merged):
        i = index.get(k)
        if i is not None:
            out[r] = x[i]
    return merged, out


def _sweep(path: Path) -> None:
    """Remove the other cached states of the same day (older data versions), and the
    ``.<name>.<pid>.tmp`` files of writers that no longer run (a killed ``analyze``)."""
    day = path.name[:10]
    for other in [*path.parent.glob(f"{day}-*.npz"), *stale_temp_files(path.parent)]:
        if other != path:
            with contextlib.suppress(OSError):
                other.unlink()
