"""Are the ranking's scores calibrated?  Reliability table and the ``unknown`` threshold.

Runs every suite with a known truth that is available, under the default
weights, and for each answer keeps the best candidate's score and whether that
candidate is the true cause (``whatchanged.engine.calibration``):

* ``scenarios`` — the seeded scenario suite (``data/scenarios.py`` through
  ``data/evaluate.py``, via ``data/suite.py``);
* ``worlds`` — the second generator, ``data/worlds.py``, when it is importable
  (``run_world``: the real CLI, and the HTTP API for webhooks);
* ``petshop`` — the PetShop benchmark's issues, when ``benchmarks/petshop.py``
  and its readers are importable (the injected component as a hosting cause).

A suite that is not there is skipped with a note.  Prints the reliability table
per suite and over all of them, the expected calibration error, and the
threshold the rule of ``choose_threshold`` picks; when it differs from
``rank.UNKNOWN_BELOW`` it says so, and whether the data contradicts the
constant (which is never changed here).

Run alone: ``python benchmarks/calibration.py [--suites scenarios,worlds,petshop]
[--petshop-limit N]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from whatchanged.engine.calibration import Outcome, format_report, outcome_of
from whatchanged.engine.rank import DEFAULT_MODEL, UNKNOWN_BELOW

HERE = Path(__file__).resolve().parent


class Skipped(Exception):
    """A suite that is not available here (its module or data is missing)."""


def scenarios(_: argparse.Namespace) -> list[Outcome]:
    from whatchanged.data.suite import scenario_cases

    return [c.outcome(DEFAULT_MODEL) for c in scenario_cases()]


def worlds(_: argparse.Namespace) -> list[Outcome]:
    try:
        mod = importlib.import_module("whatchanged.data.worlds")
    except ImportError as exc:
        raise Skipped(f"whatchanged.data.worlds is not importable ({exc})") from None
    if not all(hasattr(mod, n) for n in ("WORLDS", "run_world")):
        raise Skipped("whatchanged.data.worlds has no WORLDS / run_world")
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="calibration-worlds-") as tmp:
        for name in sorted(mod.WORLDS):
            for a in mod.run_world(name, Path(tmp) / name):
                t = a.truth
                ranked = [
                    (cat, score, cat == t.category and (t.cause is None or t.accepts(ident)))
                    for cat, ident, score in a.causes
                ]
                outcomes.append(outcome_of(t.name, ranked, truth_unknown=t.category == "unknown"))
    return outcomes


def petshop(args: argparse.Namespace) -> list[Outcome]:
    sys.path.insert(0, str(HERE))
    try:
        mod = importlib.import_module("petshop")
    except ImportError as exc:
        raise Skipped(f"benchmarks/petshop.py is not importable ({exc})") from None
    finally:
        sys.path.remove(str(HERE))
    needed = ("SCENARIOS", "HISTORY_FALLBACK", "write_history", "write_dependencies", "first_time")
    if not all(hasattr(mod, n) for n in needed):
        raise Skipped(f"benchmarks/petshop.py lacks one of {needed}")
    dataset = next(
        (
            p
            for p in (HERE / "data" / "petshop", Path(getattr(mod, "DATASET", HERE)))
            if (p / "dataset").is_dir()
        ),
        None,
    )
    if dataset is None:
        raise Skipped("no PetShop dataset (benchmarks/data/petshop/dataset)")
    from whatchanged.engine.explain import explain_at
    from whatchanged.engine.settings import load_settings
    from whatchanged.engine.warehouse import Warehouse
    from whatchanged.ingest.base import ReadContext
    from whatchanged.ingest.pipeline import ingest

    outcomes: list[Outcome] = []
    root = Path(tempfile.mkdtemp(prefix="calibration-petshop-"))
    try:
        for scenario in mod.SCENARIOS:
            base = dataset / "dataset" / scenario
            issues = sorted(base.glob("*/issue_*"), key=lambda p: (p.parent.name, int(p.name.split("_")[1])))
            for issue in issues:
                if args.petshop_limit is not None and len(outcomes) >= args.petshop_limit:
                    return outcomes
                target = json.loads((issue / "target.json").read_text())
                truth = target["root_cause"]["node"]
                at = datetime.fromtimestamp(float(target["target"]["timestamp"]), UTC)
                work = root / scenario / issue.parent.name / issue.name
                work.mkdir(parents=True)
                metrics = issue / "metrics.csv"
                history_src = base / "noissue" / "metrics.csv"
                if not history_src.is_file():
                    history_src = dataset / "dataset" / mod.HISTORY_FALLBACK / "noissue" / "metrics.csv"
                history = mod.write_history(
                    history_src, work / "history.csv", ends_before=mod.first_time(metrics)
                )
                deps = mod.write_dependencies(base / "graph.csv", work / "dependencies.csv")
                wh = Warehouse(work / "wh")
                ingest(wh, [history, metrics, deps], ReadContext(tz="UTC"))
                settings = load_settings(home=wh.home, tz="UTC")
                con = wh.snapshot()
                try:
                    causes = explain_at(con, at, settings=settings, model=DEFAULT_MODEL).causes
                finally:
                    con.close()
                ranked = [(c.category, c.score, c.component == truth) for c in causes]
                outcomes.append(outcome_of(f"petshop {scenario} {issue.parent.name}/{issue.name}", ranked))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return outcomes


SUITES: dict[str, Callable[[argparse.Namespace], list[Outcome]]] = {
    "scenarios": scenarios,
    "worlds": worlds,
    "petshop": petshop,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}")
    parser.add_argument("--petshop-limit", type=int, help="at most this many PetShop issues")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.suites.split(",") if s.strip()]
    bad = sorted(set(wanted) - set(SUITES))
    if bad:
        parser.error(f"--suites: expected some of {', '.join(SUITES)}, found {', '.join(bad)}")
    everything: list[Outcome] = []
    for name in wanted:
        started = time.perf_counter()
        try:
            outcomes = SUITES[name](args)
        except Skipped as why:
            print(f"== {name}: skipped: {why}\n", flush=True)
            continue
        everything.extend(outcomes)
        print(f"== {name}: {len(outcomes)} answers, {time.perf_counter() - started:.0f} s", flush=True)
        for line in format_report(outcomes, current=UNKNOWN_BELOW):
            print("  " + line)
        print(flush=True)
    if not everything:
        print("no suite ran")
        return
    print(f"== all suites ({', '.join(n for n in wanted)})")
    for line in format_report(everything, current=UNKNOWN_BELOW):
        print("  " + line)


if __name__ == "__main__":
    main()
