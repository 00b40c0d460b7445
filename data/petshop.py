"""The PetShop root-cause dataset (Hardt et al., arXiv 2311.04806; CC-BY-4.0) made ready for
our readers: one home for what ``benchmarks/petshop.py`` (every issue) and
``tests/e2e/test_petshop.py`` (the vendored few) both do.

Per traffic scenario the dataset holds a call graph (``graph.csv``, an adjacency matrix: row
calls column), a normal period (``noissue/metrics.csv``) and issues (``issue_N/metrics.csv``,
five 5-minute samples per component, and ``target.json``, whose ``root_cause.node`` is the
component the fault was injected into).  The normal period is written shifted in time so that
it ends one sample before the issue (:func:`write_history`): the detector's history.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from whatchanged.engine.model import Cause

#: the dataset's sampling step
STEP_S = 300.0


@dataclass(frozen=True)
class Target:
    """What an issue's ``target.json`` says: the injected component, when, on which metric."""

    component: str
    at: datetime
    metric: str


def read_target(issue_dir: Path) -> Target:
    target = json.loads((issue_dir / "target.json").read_text())
    return Target(
        component=target["root_cause"]["node"],
        at=datetime.fromtimestamp(float(target["target"]["timestamp"]), UTC),
        metric=target["target"]["metric"],
    )


def graph_edges(graph_csv: Path) -> list[tuple[str, str]]:
    """``(caller, callee)`` pairs of an adjacency-matrix ``graph.csv`` (row calls column)."""
    with open(graph_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    callees = rows[0][1:]
    return [
        (row[0], callee)
        for row in rows[1:]
        for callee, cell in zip(callees, row[1:], strict=True)
        if cell.strip() and float(cell) != 0.0 and row[0] != callee
    ]


def write_dependencies(graph_csv: Path, out: Path) -> Path:
    """``graph.csv`` as our ``service,depends_on`` CSV (the ``dependencies`` reader's)."""
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["service", "depends_on"])
        w.writerows(graph_edges(graph_csv))
    return out


def _is_time(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return [r for r in csv.reader(fh) if r]


def first_time(metrics_csv: Path) -> float:
    """The first sample time (epoch seconds) of a stacked-metrics CSV."""
    for row in _rows(metrics_csv):
        if _is_time(row[0]):
            return float(row[0])
    raise ValueError(f"{metrics_csv}: no data row")


def write_history(normal: Path, out: Path, *, before: Path) -> Path:
    """``normal`` with its times shifted so that its last sample is one step before the first
    of the issue ``before`` (its ``metrics.csv``)."""
    rows = _rows(normal)
    data = [r for r in rows if _is_time(r[0])]
    shift = first_time(before) - STEP_S - float(data[-1][0])
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows(r for r in rows if not _is_time(r[0]))
        w.writerows([f"{float(r[0]) + shift:.1f}", *r[1:]] for r in data)
    return out


def components(causes: Iterable[Cause]) -> list[str]:
    """Distinct components named by the causes, in rank order (what top-k recall counts)."""
    out: list[str] = []
    for c in causes:
        if c.component and c.component not in out:
            out.append(c.component)
    return out
