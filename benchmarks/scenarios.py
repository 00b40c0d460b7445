"""Top-1 and top-3 accuracy of the ranking over the two seeded scenario generators.

1. the scenario suite (``whatchanged.data.scenarios``): each scenario is
   generated, ingested through the real readers and explained
   (``whatchanged.data.evaluate``);
2. the worlds (``whatchanged.data.worlds``), written independently of the
   ranking code as a test of generalisation: each world's files are ingested
   with the real CLI (webhooks POSTed to a real ``whatchanged serve``) and
   asked with ``whatchanged explain --json``; a line per truth gives the
   truth, the rank of the true cause, the top answer, the onset and the
   outage count (answer/truth).

Each suite also prints its onset errors: the incident's onset in the answer against the true
onset of the planted failure, median and worst (target ≤ 2 min).

Run alone: ``python benchmarks/scenarios.py`` (``--worlds`` or ``--scenarios``
for one generator).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from whatchanged.data.evaluate import evaluate
from whatchanged.data.scenarios import SCENARIOS
from whatchanged.data.world_run import describe, run_world
from whatchanged.data.worlds import WORLDS


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:+.1f} min"


def scenario_suite() -> tuple[int, int, int, list[float | None]]:
    """(truths, top-1, top-3, each truth's onset error in seconds, None when no incident)."""
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(SCENARIOS):
            for o in evaluate(name, Path(tmp) / name):
                outcomes.append(o)
                top = o.causes[0] if o.causes else None
                got = (
                    f"{top.category} {top.change_id or top.component or ''} ({top.score:.2f})" if top else "-"
                )
                print(
                    f"  {o.truth.name:34} truth {o.truth.category:21} rank {o.rank or '-':>2}  "
                    f"onset {_minutes(o.onset_error_s):>8}  top: {got}"
                )
    n = len(outcomes)
    top1 = sum(o.rank == 1 for o in outcomes)
    top3 = sum(o.rank is not None and o.rank <= 3 for o in outcomes)
    return n, top1, top3, [o.onset_error_s for o in outcomes]


def onset_line(errors: list[float | None]) -> str:
    """Median and worst absolute onset error, and how many are within 2 minutes."""
    found = [abs(e) for e in errors if e is not None]
    if not found:
        return "onset error: no incident found"
    within = sum(e <= 120 for e in found)
    missing = len(errors) - len(found)
    return (
        f"onset error (answer − truth): median {statistics.median(found) / 60:.1f} min, "
        f"worst {max(found) / 60:.1f} min, within 2 min {within}/{len(errors)}"
        + (f", {missing} without an incident" if missing else "")
    )


def worlds_suite(jobs: int = 2) -> tuple[int, int, int, int, list[float | None]]:
    """(truths, top-1, top-3, fully right: top-1 with onset ±2 min and the outage count, each
    truth's onset error in seconds)."""
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = {name: pool.submit(run_world, name, Path(tmp) / name) for name in sorted(WORLDS)}
        answers = [a for name in sorted(WORLDS) for a in runs[name].result()]
    for a in answers:
        print(f"  {describe(a)}")
    n = len(answers)
    top1 = sum(a.rank == 1 for a in answers)
    top3 = sum(a.rank is not None and a.rank <= 3 for a in answers)
    errors = [None if a.onset is None else (a.onset - a.truth.onset).total_seconds() for a in answers]
    return n, top1, top3, sum(a.correct for a in answers), errors


def main() -> None:
    which = set(sys.argv[1:]) or {"--scenarios", "--worlds"}
    lines = []
    if "--scenarios" in which:
        started = time.perf_counter()
        print("scenario suite (whatchanged.data.scenarios):")
        n, top1, top3, errors = scenario_suite()
        lines.append(
            f"scenario suite: {n} truths, top-1 {top1}/{n} = {100 * top1 / n:.0f}%, "
            f"top-3 {top3}/{n} = {100 * top3 / n:.0f}% (targets ≥ 90% and 100%), "
            f"{time.perf_counter() - started:.1f} s"
        )
        lines.append(f"scenario suite {onset_line(errors)}")
    if "--worlds" in which:
        started = time.perf_counter()
        print("worlds (whatchanged.data.worlds; answer/truth for onset and outages):")
        n, top1, top3, right, world_errors = worlds_suite()
        lines.append(
            f"worlds: {n} truths, top-1 {top1}/{n} = {100 * top1 / n:.0f}%, "
            f"top-3 {top3}/{n} = {100 * top3 / n:.0f}%, "
            f"top-1 with onset ±2 min and outage count {right}/{n}, {time.perf_counter() - started:.1f} s"
        )
        lines.append(f"worlds {onset_line(world_errors)}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
