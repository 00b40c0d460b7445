"""The contextual detector on the fleet, day by day.

Every (service, metric) of the warehouse is scored by the same streaming
detector as one series (:mod:`whatchanged.engine.ctxstream`), on **5-minute
steps**: the mean of the step's 1-minute values, the largest ``|z|`` of the
median baseline in it (:mod:`whatchanged.engine.daystate` computes those), and
the mean residual and expected value (the alarm's onset and baseline).  A day's
result — its alarms and the carry a next day needs — depends on that day's data
and the carry of the day before, so it is computed in day order, once, and
kept in ``<home>/_cache/ctxstate/`` under a key naming the day-state chain's
key of the day (the files of every day up to it) and the settings.

The day still being written (the last day with data) is scored up to its last
whole 5-minute step; a later commit to it scores it again from the day before's
carry, in the background analysis (a question meanwhile reads the result from
before the commit: :data:`STALE_STEPS`).  A day scored while it was the latest
is scored again, whole, once a later day has data.  A UTC day without metrics
resets the carry (the detector starts afresh).  :meth:`CtxChain.analyze` (what
``whatchanged analyze`` runs) computes the day states and the contextual results
side by side, a day apart, on two threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bottleneck as bn
import numpy as np
from numpy.typing import NDArray

from whatchanged.engine import ctxstream as cs
from whatchanged.engine.baseline import Array
from whatchanged.engine.daystate import DayState, Key, _take, point_arrays, scores
from whatchanged.engine.daystate_cache import DayStates
from whatchanged.engine.model import Anomaly

if TYPE_CHECKING:
    from whatchanged.engine.contextual import ContextParams

#: the contextual detector's step on the fleet
CTX_STEP_S = 300
FORMAT = 1
#: days whose results are kept in memory (events; the carry of the latest two only)
KEPT = 4
#: days whose carry (about 35 kB a series) is kept on disk: the latest ones, from which a
#: commit to a recent day is scored again; an older day's is computed again from the first
#: carry kept before it
CARRIES_KEPT = 3
#: the day still being written: after a commit, a question is answered with the day's result
#: computed before it (its events up to the step it scored), while that is at most this many
#: steps behind the data; the analysis that ingest starts in the background (or a later question)
#: scores the day again.  A question then never waits for the contextual detector to score
#: the whole day again (issue 17's last minute); its alarms of the last half hour may be missing
#: until then, the median detector's never are
STALE_STEPS = 6


#: a series' 1-minute values, expected values and spreads over a day (:meth:`CtxChain._minutes`)
Rows = tuple[Array, Array, Array]
#: what a day's computation reads of the day states (:meth:`CtxChain._inputs`)
Inputs = tuple[DayState, list[Key], Array, DayState | None, int]


@dataclass
class CtxDay:
    """One day's contextual result: the carry at its end (or at the last step scored) and the
    alarms' events of the day (global 5-minute steps)."""

    keys: list[Key]
    carry: cs.Carry | None  # None: not kept (only the latest days keep theirs)
    events: list[cs.Event]
    steps: int  # steps of the day scored


def _flatten(obj: Any, prefix: str, out: dict[str, NDArray[Any]]) -> None:
    for f in fields(obj):
        v = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if v is None:
            continue
        if is_dataclass(v):
            _flatten(v, name + ".", out)
        elif isinstance(v, list):  # the coarse scales
            for i, item in enumerate(v):
                _flatten(item, f"{name}.{i}.", out)
        elif isinstance(v, np.ndarray):
            out[name] = v
        elif isinstance(v, dict):  # the pending alarms
            rows = sorted(v)
            out[name + ".rows"] = np.array(rows, dtype=np.int64)
            out[name + ".ints"] = np.array(
                [[v[r].alarm, v[r].onset, int(v[r].up)] for r in rows], dtype=np.int64
            )
            out[name + ".floats"] = np.array([[v[r].baseline, v[r].peak] for r in rows], dtype=np.float64)
            out[name + ".observed"] = np.array(
                [(v[r].observed + [np.nan] * cs.OBSERVED)[: cs.OBSERVED] for r in rows], dtype=np.float64
            ).reshape(len(rows), cs.OBSERVED)
        else:
            out[name] = np.array(v)


def _unflatten(template: Any, prefix: str, z: Any) -> Any:
    values: dict[str, Any] = {}
    for f in fields(template):
        v = getattr(template, f.name)
        name = f"{prefix}{f.name}"
        if v is None:
            values[f.name] = None
        elif is_dataclass(v):
            values[f.name] = _unflatten(v, name + ".", z)
        elif isinstance(v, list):
            values[f.name] = [_unflatten(item, f"{name}.{i}.", z) for i, item in enumerate(v)]
        elif isinstance(v, np.ndarray):
            values[f.name] = z[name]
        elif isinstance(v, dict):
            pend = {}
            for r, ints, fl, obs in zip(
                z[name + ".rows"].tolist(),
                z[name + ".ints"].tolist(),
                z[name + ".floats"].tolist(),
                z[name + ".observed"].tolist(),
                strict=True,
            ):
                pend[r] = cs.Pending(
                    ints[0], ints[1], bool(ints[2]), fl[0], fl[1], [o for o in obs if o == o]
                )
            values[f.name] = pend
        else:
            values[f.name] = type(v)(z[name][()])
    return type(template)(**values)


def _write(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def carry_path(path: Path) -> Path:
    """Where the carry of the result at ``path`` is kept (apart: only the latest days keep one)."""
    return path.with_name(path.name[: -len(".npz")] + ".carry.npz")


def save(path: Path, day: CtxDay, meta: dict[str, Any]) -> None:
    """Write the day's events (``path``) and its carry (:func:`carry_path`)."""
    if day.carry is not None:
        arrays: dict[str, NDArray[Any]] = {}
        _flatten(day.carry, "c.", arrays)
        _write(carry_path(path), arrays)
    ev = day.events
    _write(
        path,
        {
            "e.ints": np.array(
                [[e.row, e.onset, e.alarm, -1 if e.end is None else e.end, int(e.up)] for e in ev],
                dtype=np.int64,
            ).reshape(len(ev), 5),
            "e.floats": np.array([[e.baseline, e.peak, e.observed] for e in ev], dtype=np.float64).reshape(
                len(ev), 3
            ),
            "keys": np.array(["\x1f".join(k) for k in day.keys], dtype=str),
            "meta": np.array(json.dumps({**meta, "steps": day.steps})),
        },
    )


def load(path: Path, template: cs.Carry | None) -> CtxDay:
    """The day's events, and its carry with a ``template`` (KeyError: no carry kept)."""
    with np.load(path, allow_pickle=False) as z:
        keys = [tuple(str(k).split("\x1f", 1)) for k in z["keys"].tolist()]
        meta = json.loads(str(z["meta"][()]))
        events = [
            cs.Event(i[0], i[1], i[2], None if i[3] < 0 else i[3], bool(i[4]), f[0], f[1], f[2])
            for i, f in zip(z["e.ints"].tolist(), z["e.floats"].tolist(), strict=True)
        ]
    carry = None
    if template is not None:
        cpath = carry_path(path)
        if not cpath.is_file():
            raise KeyError(cpath.name)
        with np.load(cpath, allow_pickle=False) as z:
            carry = _unflatten(template, "c.", z)
    return CtxDay([(k[0], k[1]) for k in keys], carry, events, int(meta["steps"]))


def _reduce(a: Array, f: int, how: str) -> Array:
    """The mean or the largest of each ``f`` columns, missing values left out (NaN: none)."""
    n, t = a.shape
    blocks = a[:, : t // f * f].reshape(n, t // f, f)
    out: Array = bn.nanmax(blocks, axis=2) if how == "max" else bn.nanmean(blocks, axis=2)
    return out


class CtxChain:
    """The contextual results of every day of a :class:`DayStates` chain (1-minute steps)."""

    def __init__(self, states: DayStates, context: ContextParams) -> None:
        self.states = states
        self.p = context
        g = states.g
        self.factor = round(CTX_STEP_S / g.step_s)
        self.steps_per_day = g.cols // self.factor
        digest = hashlib.sha256(
            json.dumps(
                {"format": FORMAT, "step": CTX_STEP_S, **cs.params_key(context)}, sort_keys=True
            ).encode()
        ).hexdigest()[:12]
        self.keys = {
            d: hashlib.sha256(f"{k}-{digest}".encode()).hexdigest()[:20] for d, k in states.keys.items()
        }
        cache = states.cache_dir
        self.cache_dir = cache.parent / "ctxstate" if cache is not None else None
        self._days: OrderedDict[date, CtxDay] = OrderedDict()
        self._stale_days: dict[date, CtxDay] = {}
        self._lock = threading.RLock()
        self.computed = 0

    def _path(self, d: date) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{d.isoformat()}-{self.keys[d]}.npz"

    def _g0(self, d: date) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) // CTX_STEP_S

    def day(self, d: date, *, fresh: bool = False) -> CtxDay | None:
        """The contextual result of day ``d`` (None: no metrics that day); its carry may be
        None (see :meth:`with_carry`).  The day still being written may be answered by its
        result from before the latest commits (see :data:`STALE_STEPS`) unless ``fresh``."""
        with self._lock:
            if d not in self.states.by_day:
                return None
            hit = self._days.get(d)
            if hit is not None:
                return hit
            res = self._read(d)
            if res is not None:
                return self._keep(d, res)
            if not fresh and d == self.states.days[-1]:
                stale = self._stale(d)
                if stale is not None:
                    return stale
            return self.with_carry(d)

    def _read(self, d: date) -> CtxDay | None:
        """The cached result of ``d`` (without its carry), when it is whole: a day scored while it
        was the latest, up to its last step, is scored again once a later day has data."""
        path = self._path(d)
        if path is None or not path.is_file():
            return None
        try:
            res = load(path, None)
        except (OSError, ValueError, KeyError):
            return None
        return res if self._whole(d, res) else None

    def _whole(self, d: date, res: CtxDay) -> bool:
        return res.steps >= self.steps_per_day or d == self.states.days[-1]

    def _stale(self, d: date) -> CtxDay | None:
        """A result of the day still being written computed before its latest commits, when it
        is at most :data:`STALE_STEPS` steps behind the data (held apart: never a carry)."""
        if d in self._stale_days:
            return self._stale_days[d]
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return None
        found = []
        for f in self.cache_dir.glob(f"{d.isoformat()}-*.npz"):
            if f.name.endswith(".carry.npz") or f == self._path(d):
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                found.append(load(f, None))
        if not found:
            return None
        res = max(found, key=lambda r: r.steps)
        if self._data_steps(d) - res.steps > STALE_STEPS:
            return None
        self._stale_days[d] = res
        return res

    def _data_steps(self, d: date) -> int:
        """The whole steps of the day's data (its last sample's step)."""
        _keys, x = self.states.raw(d)
        filled = np.flatnonzero(~np.isnan(x).all(axis=0))
        return (int(filled[-1]) + 1 if filled.size else 0) // self.factor

    def with_carry(self, d: date) -> CtxDay:
        """The result of day ``d`` with its carry: kept, or computed with the days before it
        whose carries are not kept, oldest first (a loop, not a recursion: a year deep)."""
        with self._lock:
            todo = []
            cur = d
            while cur in self.states.by_day and not self._has_carry(cur):
                todo.append(cur)
                cur -= timedelta(days=1)
            for day in reversed(todo):
                self._computed(day)
            out = self._carried(d)
            assert out is not None
            return out

    def analyze(self) -> int:
        """Compute and cache the result of every day that has none yet, with the day states:
        each day's state is computed (or read) on this thread while the contextual result of
        the day before is computed on a second one (numpy releases the GIL), in day order.
        Returns the days computed."""
        with self._lock:
            days = self.states.days
            first = next((i for i, d in enumerate(days) if self._read(d) is None), None)
            if first is None:
                return 0
            if first > 0:
                self.with_carry(days[first - 1])  # the carry the first day starts from
            from concurrent.futures import Future, ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctxchain") as pool:
                pending: Future[CtxDay] | None = None
                for d in days[first:]:
                    inputs = self._inputs(d)
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(self._computed, d, inputs)
                if pending is not None:
                    pending.result()
            return len(days) - first

    def _has_carry(self, d: date) -> bool:
        hit = self._days.get(d)
        if hit is not None and hit.carry is not None:
            return True
        path = self._path(d)
        return path is not None and carry_path(path).is_file() and self._read(d) is not None

    def _carried(self, d: date) -> CtxDay | None:
        hit = self._days.get(d)
        if hit is not None and hit.carry is not None:
            return hit
        path = self._path(d)
        if path is None:
            return None
        try:
            res = load(path, cs.new_carry(0, self._g0(d), self.p))
        except (OSError, ValueError, KeyError):
            return None
        return self._keep(d, res) if self._whole(d, res) else None

    def _computed(self, d: date, inputs: Inputs | None = None) -> CtxDay:
        out = self._compute(d, inputs)
        self.computed += 1
        path = self._path(d)
        if path is not None:
            # a carry is kept for the latest days only: an older one is not even written
            latest = self.states.days[-1]
            kept = (
                out
                if d >= latest - timedelta(days=CARRIES_KEPT)
                else CtxDay(out.keys, None, out.events, out.steps)
            )
            try:
                save(path, kept, {"files": sorted(Path(f).name for f in self.states.by_day[d])})
                _sweep(path)
                _drop_old_carries(path.parent, d - timedelta(days=CARRIES_KEPT))
            except OSError:
                pass
        return self._keep(d, out)

    def _keep(self, d: date, day: CtxDay) -> CtxDay:
        self._days[d] = day
        self._days.move_to_end(d)
        while len(self._days) > KEPT:
            self._days.popitem(last=False)
        for other, res in self._days.items():  # a carry is large: the latest days' only
            if other < d - timedelta(days=1) and res.carry is not None:
                self._days[other] = CtxDay(res.keys, None, res.events, res.steps)
        return day

    def _inputs(self, d: date) -> Inputs:
        """What computing day ``d`` reads of the day states: its state, its raw grid, and the
        latest state before it with the days without data between them."""
        st = self.states.state(d)
        assert st is not None
        day_keys, x = self.states.raw(d)
        prev, gap = self.states.previous(d)
        return st, day_keys, x, prev, gap

    def _compute(self, d: date, inputs: Inputs | None = None) -> CtxDay:
        states, g = self.states, self.states.g
        st, day_keys, x, prev, gap = inputs if inputs is not None else self._inputs(d)
        if day_keys != st.keys:
            rows_x = {k: r for r, k in enumerate(day_keys)}
            x = _take(x, np.array([rows_x.get(k, -1) for k in st.keys], dtype=np.intp))
        keys = st.keys
        g0 = self._g0(d)
        before = self._carried(d - timedelta(days=1)) if d - timedelta(days=1) in states.by_day else None
        carry = _align(before, keys, g0, self.p)
        # the steps of the day to score: whole days; the last day up to its last whole step
        filled = np.flatnonzero(~np.isnan(x).all(axis=0))
        last_col = int(filled[-1]) + 1 if filled.size else 0
        whole = d != states.days[-1]
        n = self.steps_per_day if whole else last_col // self.factor
        f = self.factor
        xs, zs, rs, es = [], [], [], []
        for r0 in range(0, len(keys), 512):  # rows at a time: the minute arrays stay small
            part = np.asarray(x[r0 : r0 + 512], dtype=np.float64)
            sub = st.subset(keys[r0 : r0 + 512])
            z, _thr, _acc, expected = scores(part, sub, prev, states.params, g, gap_days=gap)
            cut = n * f
            xs.append(_reduce(part[:, :cut], f, "mean"))
            zs.append(_reduce(np.abs(z[:, :cut]), f, "max"))
            rs.append(_reduce(part[:, :cut] - expected[:, :cut], f, "mean"))
            es.append(_reduce(expected[:, :cut], f, "mean"))

        def cat(parts: list[Array]) -> Array:
            return np.concatenate(parts, axis=0) if parts else np.zeros((0, n))

        chunk = cs.push(carry, cat(xs), cat(zs), cat(rs), cat(es), self.p)
        return CtxDay(list(keys), carry, chunk.events, n)

    def anomalies(
        self, start: datetime, end: datetime, hi: datetime, *, services: Any = None
    ) -> list[Anomaly]:
        """The contextual alarms' anomalies overlapping ``[start, end)`` known by ``hi`` (their
        step ended by then); an anomaly still going on at ``hi`` has no end."""
        first = (start - timedelta(days=1)).astimezone(UTC).date()
        last = (hi - timedelta(microseconds=1)).astimezone(UTC).date()
        latest: dict[tuple[Key, int], cs.Event] = {}  # an alarm under way: its latest state
        hi_step = int(hi.timestamp()) // CTX_STEP_S  # steps before it ended by hi
        d = first
        while d <= last:
            res = self.day(d)
            if res is not None:
                for e in res.events:
                    if e.alarm + 1 <= hi_step:
                        latest[(res.keys[e.row], e.alarm)] = e
            d += timedelta(days=1)
        wanted = set(services) if services is not None else None
        # an anomaly lies within ONSET_BACK of its alarm's step on either side (its end: see
        # _placed): the others cannot overlap [start, end)
        todo = [
            (key, e)
            for (key, _alarm), e in latest.items()
            if (wanted is None or key[0] in wanted)
            and _at(e.alarm + 1) - ONSET_BACK < end
            and _at(e.alarm + 1) + ONSET_BACK > start
        ]
        minutes = self._minutes(todo, hi)
        out: list[Anomaly] = []
        for key, e in todo:
            placed = self._placed(key, _at(e.alarm + 1), hi, minutes)
            if placed is None:
                continue  # too few 1-minute values before the alarm (see _placed)
            t_on, t_end = placed
            if t_on >= end or (t_end is not None and t_end <= start):
                continue
            out.append(
                Anomaly(
                    service=key[0],
                    metric=key[1],
                    start=t_on,
                    onset=t_on,
                    end=t_end,
                    direction="up" if e.up else "down",
                    peak_score=e.peak,
                    baseline=e.baseline,
                    observed=e.observed,
                    detected_at=_at(e.alarm + 1),
                    onset_lookahead=False,
                    contextual=True,
                )
            )
        out.sort(key=lambda a: (a.onset, a.service, a.metric))
        return out

    def _minutes(self, todo: list[tuple[Key, cs.Event]], hi: datetime) -> dict[date, dict[Key, Rows]]:
        """For each day the alarms of ``todo`` are placed on (:meth:`_placed`), each of their
        series' 1-minute values, expected values and spreads, computed a day at a time."""
        wanted: dict[date, set[Key]] = {}
        for key, e in todo:
            until = _at(e.alarm + 1)
            d = (until - ONSET_BACK).astimezone(UTC).date()
            last = (min(hi, until + ONSET_BACK) - timedelta(microseconds=1)).astimezone(UTC).date()
            while d <= last:
                wanted.setdefault(d, set()).add(key)
                d += timedelta(days=1)
        states = self.states
        out: dict[date, dict[Key, Rows]] = {}
        for d, keys in wanted.items():
            st = states.state(d) if d in states.by_day else None
            if st is None:
                continue
            day_keys, x = states.raw(d)
            index = {k: i for i, k in enumerate(day_keys)}
            scored = set(st.keys)
            ks = sorted(k for k in keys if k in index and k in scored)
            if not ks:
                continue
            expected, spread = point_arrays(st.subset(ks), states.g, states.params)
            values = np.asarray(x[[index[k] for k in ks]], dtype=np.float64)
            out[d] = {k: (values[i], expected[i], spread[i]) for i, k in enumerate(ks)}
        return out

    def _placed(
        self, key: Key, until: datetime, hi: datetime, minutes: dict[date, dict[Key, Rows]]
    ) -> tuple[datetime, datetime | None] | None:
        """Where the contextual alarm of ``key`` raised at ``until`` (its step's end) lies on the
        median detector's 1-minute scores, known by ``hi``: its onset and its end (None: still
        away from its baseline at ``hi``); None: no values before the alarm.

        A minute is *away* at least ``exit_z`` spreads from the baseline, *calm* when not away
        and at most 2 of the 5 minutes from it are (:func:`_calm`).

        - The onset: where the series left its baseline for the departure under way at the
          alarm — the first minute away after the last calm one, in the :data:`ONSET_BACK`
          before ``until``.  Failing that (none away since: a change of rhythm within the
          spread; or no calm minute: a series away for the whole two hours), the median
          detector's change-point search (step or hinge) on the series' 1-minute residuals,
          moved on to the first minute away when the split is not.  (The change point alone,
          on a noise spike at the alarm, could land on another spike an hour before it.)
        - The end: the first calm minute after the onset, looked for up to :data:`ONSET_BACK`
          after the alarm.  An anomaly lasts while its series is seen away from its baseline,
          as the median detector's do: a pattern new to the series that leaves its baseline
          for a minute or two is a short anomaly, and spikes now and then on a heavy-tailed
          series do not hold it open (with "5 minutes none away", latency noise made
          anomalies of 10 to 20 minutes, incidents on their own).

        None also for a series with values in fewer than :data:`MIN_FILLED` of the minutes
        before the alarm: one exported every 5 minutes (CloudWatch) has no 1-minute scores to
        place an alarm on, and the median detector sees no anomaly on it either; ``explain``
        looks for a step at the time asked instead (``origin.deviations``), which is built for
        such series."""
        from whatchanged.engine.intervals import _onset

        g = self.states.g
        lo = until - ONSET_BACK
        top = min(hi, until + ONSET_BACK)
        minute = timedelta(seconds=g.step_s)
        n_before = int(ONSET_BACK / minute)
        total = max(n_before, int((top - lo) / minute))
        resid, z = np.full(total, np.nan), np.full(total, np.nan)
        d = lo.astimezone(UTC).date()
        while (day0 := datetime(d.year, d.month, d.day, tzinfo=UTC)) < lo + total * minute:
            first = int((day0 - lo) / minute)  # the day's first column in the window (may be < 0)
            a, b = max(0, first), min(total, first + g.cols)
            rows = minutes.get(d, {}).get(key)
            if rows is not None and b > a:
                values, expected, spread = (v[a - first : b - first] for v in rows)
                resid[a:b] = values - expected
                with np.errstate(invalid="ignore", divide="ignore"):
                    z[a:b] = np.abs(resid[a:b] / spread)
            d += timedelta(days=1)
        if np.isfinite(resid[:n_before]).sum() < MIN_FILLED * n_before:
            return None  # no values before the alarm, or a series sampled every few minutes
        with np.errstate(invalid="ignore"):
            away = z >= self.p.exit_z  # missing minutes are not away
        back = _calm(away, self.factor)
        quiet = np.flatnonzero(back[:n_before])
        seen = np.flatnonzero(away[quiet[-1] + 1 : n_before]) if quiet.size else quiet
        if seen.size:  # the departure under way at the alarm: the first minute away after calm
            col = int(quiet[-1]) + 1 + int(seen[0])
        else:  # no calm minute before it, or not away since: the change point
            col = _onset(resid[:n_before], n_before - 1, 0, n_before - 1)
            if not away[col]:
                seen = np.flatnonzero(away[col:n_before])
                if seen.size:
                    col += int(seen[0])
        ended = np.flatnonzero(back[col + 1 :])  # the first calm minute after the onset
        if ended.size:
            t_end: datetime | None = lo + (col + 1 + int(ended[0])) * minute
        else:
            t_end = None if top >= hi else lo + total * minute
        return lo + col * minute, t_end


def _calm(away: NDArray[np.bool_], calm: int) -> NDArray[np.bool_]:
    """The minutes where the series is back within its baseline: not away themselves, and at
    most ``calm // 2`` of the ``calm`` minutes from them away (on a heavy-tailed series a spike
    now and then does not hold an anomaly open; a series that stays away does)."""
    counts = np.convolve(away.astype(np.int64), np.ones(calm, dtype=np.int64), "full")[calm - 1 :]
    return ~away & (counts <= calm // 2)


#: a contextual alarm is placed (becomes an anomaly) only on a series with values in at least
#: this share of the minutes of :data:`ONSET_BACK` before it: a series sampled less often than
#: every 2 minutes is left to ``explain``'s step search (docs/origin.md), as it is by the median
#: detector; a series scraped every minute with a few gaps is not
MIN_FILLED = 0.5
#: how far before a contextual alarm its onset is looked for, on 1-minute residuals (the median
#: detector's ``onset_back_s``)
ONSET_BACK = timedelta(hours=2)


def _at(step: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=step * CTX_STEP_S)


def _align(before: CtxDay | None, keys: list[Key], g0: int, p: ContextParams) -> cs.Carry:
    """The carry of the day before for ``keys`` (a new series: an empty carry); an empty carry
    when the day before had no data or was not scored to its end."""
    fresh = cs.new_carry(len(keys), g0, p)
    carry = before.carry if before is not None else None
    if before is None or carry is None or carry.g != g0:
        return fresh
    index = {k: i for i, k in enumerate(before.keys)}
    old = np.array([index.get(k, -1) for k in keys], dtype=np.intp)
    dst = np.flatnonzero(old >= 0)
    cs.copy_rows(fresh, carry, dst, old[dst])
    return fresh


def _drop_old_carries(folder: Path, before: date) -> None:
    """Remove the carries of the days before ``before`` (their events stay)."""
    for f in folder.glob("*.carry.npz"):
        try:
            if date.fromisoformat(f.name[:10]) < before:
                f.unlink()
        except (OSError, ValueError):
            pass


def _sweep(path: Path) -> None:
    """Remove the other results of the same day (older keys)."""
    day = path.name[:10]
    for other in path.parent.glob(f"{day}-*.npz"):
        if other != path and other != carry_path(path):
            with contextlib.suppress(OSError):
                other.unlink()


__all__ = ["CTX_STEP_S", "CtxChain", "CtxDay"]
