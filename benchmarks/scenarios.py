"""Top-1 and top-3 accuracy of the ranking over the seeded scenario suite.

Each scenario is generated, ingested through the real readers and explained
(``whatchanged.data.evaluate``).  Run alone: ``python benchmarks/scenarios.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from whatchanged.data.evaluate import evaluate
from whatchanged.data.scenarios import SCENARIOS


def main() -> None:
    started = time.perf_counter()
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(SCENARIOS):
            for o in evaluate(name, Path(tmp) / name):
                outcomes.append(o)
                top = o.causes[0] if o.causes else None
                got = (
                    f"{top.category} {top.change_id or top.component or ''} ({top.score:.2f})" if top else "-"
                )
                print(f"  {o.truth.name:34} truth {o.truth.category:21} rank {o.rank or '-':>2}  top: {got}")
    n = len(outcomes)
    top1 = sum(o.rank == 1 for o in outcomes)
    top3 = sum(o.rank is not None and o.rank <= 3 for o in outcomes)
    print(
        f"scenario suite: {n} truths, top-1 {top1}/{n} = {100 * top1 / n:.0f}%, "
        f"top-3 {top3}/{n} = {100 * top3 / n:.0f}% (targets ≥ 90% and 100%), {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
