"""The seeded scenario suite as learning cases: each truth's candidates with their features.

:func:`scenario_cases` runs the scenarios end to end (``data/evaluate.py``:
real readers, warehouse, detection, ranking under the *default* weights) and
keeps, per truth, the candidates and which of them is the true cause, so that
any weights can be scored on them afterwards without running detection again
(:meth:`whatchanged.engine.learn.Case.rank_under`).  With ``cache_dir`` the
cases are kept on disk, keyed by the scenario names and by the size and time of
every source file of the engine, the readers and the generators: a second
``whatchanged fit --from-feedback`` on the same code reads them back.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from whatchanged.data.evaluate import Outcome, evaluate
from whatchanged.data.scenarios import SCENARIOS
from whatchanged.engine.learn import Case, case_from_dict, case_to_dict, key_of
from whatchanged.engine.storage import write_atomic


def case_of_outcome(o: Outcome) -> Case:
    real = tuple(c for c in o.causes if c.category != "unknown")
    truth = next((key_of(c) for c in real if o.matches(c)), None)
    return Case(o.truth.name, real, truth, truth_unknown=o.truth.category == "unknown")


def _code_key(names: Sequence[str]) -> str:
    h = hashlib.sha1("\x00".join(names).encode())
    for layer in ("engine", "ingest", "data"):
        root = Path(str(importlib.import_module(f"whatchanged.{layer}").__file__)).parent
        for p in sorted(root.rglob("*.py")):
            st = p.stat()
            h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\x00".encode())
    return h.hexdigest()[:16]


def scenario_cases(names: Sequence[str] | None = None, *, cache_dir: Path | None = None) -> list[Case]:
    """One case per truth of the scenarios ``names`` (default: all), in name order."""
    chosen = sorted(names or SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        raise KeyError(f"unknown scenarios {unknown}; expected some of {sorted(SCENARIOS)}")
    path = cache_dir / f"fit-suite-{_code_key(chosen)}.json" if cache_dir else None
    if path is not None and path.is_file():
        try:
            return [case_from_dict(d) for d in json.loads(path.read_text())]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # recompute
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="whatchanged-suite-") as tmp:
        for name in chosen:
            cases.extend(case_of_outcome(o) for o in evaluate(name, Path(tmp) / name))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps([case_to_dict(c) for c in cases]))
        except OSError:
            pass  # a cache that cannot be written is skipped
    return cases
