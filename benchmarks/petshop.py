"""PetShop benchmark: the suspected origin of 68 injected faults on a real AWS deployment.

Run alone: ``.venv/bin/python benchmarks/petshop.py [--dataset PATH] [--workdir DIR]``.

The PetShop dataset (Hardt, Orchard, Blöbaum, Kasiviswanathan, Kirschbaum,
"The PetShop Dataset — Finding Causes of Performance Issues across
Microservices", arXiv 2311.04806; CC-BY-4.0; by default read from
``benchmarks/data/petshop``, ``--dataset`` for another copy) holds, per traffic
scenario, a call graph (``graph.csv``, an adjacency matrix: row calls column),
two days of normal operation (``noissue/metrics.csv``) and issues
(``{train,test}/issue_N/metrics.csv`` — five 5-minute samples of latency,
requests and availability of 41 components — and ``target.json``, whose
``root_cause.node`` is the component the fault was injected into).

For every issue this script

1. writes the normal period shifted in time so that it ends one sample
   before the issue (the detector's history; the dataset has no normal data
   for the temporal scenarios, so they borrow ``high_traffic/noissue``), and
   converts ``graph.csv`` to our ``service,depends_on`` CSV;
2. ingests the history and the issue through the real readers
   (``metrics_stacked``) into a fresh warehouse, and asks
   ``explain_at(target.timestamp)``;
3. ingests the dependency CSV (``dependencies`` reader) and asks again;

and counts the injected component among the first 1 and 3 distinct
components the causes name (top-k recall, the paper's metric).

The published figures printed beside ours are the dataset authors' own
anomaly-traversal baseline (MAD score, threshold 5, *with* the call graph) as
printed in ``code/RCA-Dataset-Eval.ipynb`` of the dataset's repository
(amazon-science/petshop-root-cause-analysis), per target metric, combined here
over the issues of each scenario.  The paper's own results table was not
available to us.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from whatchanged.data.petshop import components, read_target, write_dependencies, write_history
from whatchanged.engine.explain import explain_at
from whatchanged.engine.settings import load_settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

ROOT = Path(__file__).resolve().parents[1]
#: the copy of the dataset in the clone (benchmarks/data/README.md)
DATASET = ROOT / "benchmarks" / "data" / "petshop"
SCENARIOS = ("low_traffic", "high_traffic", "temporal_traffic1", "temporal_traffic2")
HISTORY_FALLBACK = "high_traffic"

#: anomaly traversal (the dataset authors' baseline, with the call graph), from
#: code/RCA-Dataset-Eval.ipynb: (issues, top-1, top-3) per scenario and target metric
PUBLISHED_TRAVERSAL = {
    "low_traffic": {"latency": (14, 0.571, 0.571), "availability": (12, 0.833, 1.000)},
    "high_traffic": {"latency": (14, 0.571, 0.786), "availability": (12, 0.667, 1.000)},
    "temporal_traffic": {"latency": (8, 1.000, 1.000), "availability": (8, 0.750, 1.000)},
}


@dataclass(frozen=True)
class Result:
    scenario: str
    issue: str
    metric: str
    truth: str
    without: list[str]
    with_graph: list[str]


def run_issue(dataset: Path, scenario: str, issue_dir: Path, work: Path) -> Result:
    target = read_target(issue_dir)
    truth, at = target.component, target.at
    metrics = issue_dir / "metrics.csv"
    history_src = dataset / "dataset" / scenario / "noissue" / "metrics.csv"
    if not history_src.is_file():
        history_src = dataset / "dataset" / HISTORY_FALLBACK / "noissue" / "metrics.csv"
    work.mkdir(parents=True, exist_ok=True)
    history = write_history(history_src, work / "history.csv", before=metrics)
    deps = write_dependencies(dataset / "dataset" / scenario / "graph.csv", work / "dependencies.csv")
    wh = Warehouse(work / "wh")
    ctx = ReadContext(tz="UTC")
    ingest(wh, [history, metrics], ctx)
    settings = load_settings(home=wh.home, tz="UTC")
    with wh.snapshot() as con:
        without = components(explain_at(con, at, settings=settings).causes)
    ingest(wh, [deps], ctx)
    with wh.snapshot() as con:
        with_graph = components(explain_at(con, at, settings=settings).causes)
    return Result(
        scenario,
        f"{issue_dir.parent.name}/{issue_dir.name}",
        target.metric,
        truth,
        without,
        with_graph,
    )


def _group(scenario: str) -> str:
    return "temporal_traffic" if scenario.startswith("temporal") else scenario


def _published(group: str) -> tuple[float, float]:
    rows = PUBLISHED_TRAVERSAL[group].values()
    n = sum(r[0] for r in rows)
    return sum(r[0] * r[1] for r in rows) / n, sum(r[0] * r[2] for r in rows) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Top-1/top-3 recall of the suspected origin on the PetShop dataset "
        "(68 injected faults), with and without the call graph."
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=DATASET,
        help="the PetShop dataset folder (holding dataset/<traffic>/…); default: "
        "benchmarks/data/petshop in this repository",
    )
    parser.add_argument("--workdir", type=Path, help="keep the warehouses here (default: a temporary folder)")
    parser.add_argument("--verbose", action="store_true", help="print every issue")
    args = parser.parse_args(argv)
    if not (args.dataset / "dataset").is_dir():
        parser.error(f"--dataset: expected a folder holding dataset/<traffic>/, found {args.dataset}")
    started = time.perf_counter()
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="petshop-")
    root = args.workdir or Path(str(tmp))
    results: list[Result] = []
    try:
        for scenario in SCENARIOS:
            base = args.dataset / "dataset" / scenario
            for split in ("train", "test"):
                for issue in sorted((base / split).glob("issue_*"), key=lambda p: int(p.name.split("_")[1])):
                    work = root / scenario / split / issue.name
                    shutil.rmtree(work, ignore_errors=True)
                    r = run_issue(args.dataset, scenario, issue, work)
                    results.append(r)
                    if args.verbose:
                        print(
                            f"  {scenario:18} {r.issue:14} {r.metric:12} truth {r.truth:45} "
                            f"no graph {r.without[:3]}  graph {r.with_graph[:3]}"
                        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{'scenario':17} {'issues':>6}  {'top-1':>6} {'top-3':>6}  {'+graph top-1':>12} {'top-3':>6}  "
        f"{'published traversal (graph) top-1':>33} {'top-3':>6}"
    )
    for group in ("low_traffic", "high_traffic", "temporal_traffic", "all"):
        rs = [r for r in results if group == "all" or _group(r.scenario) == group]
        if not rs:
            continue
        n = len(rs)

        def rate(k: int, graph: bool, rs: list[Result] = rs) -> float:
            return sum(r.truth in (r.with_graph if graph else r.without)[:k] for r in rs) / len(rs)

        if group == "all":
            pub = [_published(g) for g in PUBLISHED_TRAVERSAL]
            sizes = [sum(v[0] for v in PUBLISHED_TRAVERSAL[g].values()) for g in PUBLISHED_TRAVERSAL]
            p1 = sum(s * p[0] for s, p in zip(sizes, pub, strict=True)) / sum(sizes)
            p3 = sum(s * p[1] for s, p in zip(sizes, pub, strict=True)) / sum(sizes)
        else:
            p1, p3 = _published(group)
        print(
            f"{group:17} {n:>6}  {rate(1, False):>6.2f} {rate(3, False):>6.2f}  {rate(1, True):>12.2f} "
            f"{rate(3, True):>6.2f}  {p1:>33.2f} {p3:>6.2f}"
        )
    print(f"{len(results)} issues in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
