"""NAB benchmark: the online detector on every series of the Numenta Anomaly Benchmark.

Run alone: ``.venv/bin/python benchmarks/nab.py [--nab PATH] [--json]``.

The detector is ``whatchanged.engine.contextual.detect_series_combined`` (what
``whatchanged detect --input`` runs): online, causal, one fixed setting for
every file and profile.  Each alarm gives one detection, at its
``detected_at`` row.

The scorer below is our own implementation of the conventions written in
``benchmarks/data/README.md`` (NAB whitepaper, Lavin & Ahmad 2015), checked
against NAB's own code (``nab/sweeper.py``: ``calcSweepScore``,
``scaledSigmoid``, ``_getProbationaryLength``; ``nab/runner.py``: ``normalize``):
windows include both ends, the first ``min(floor(0.15 n), 750)`` rows are
unscored, the scaled sigmoid rewards early detections, false positives are
weighted by their distance after the preceding window, missed windows cost
``A_FN``, and the corpus score is ``100 * (raw - null) / (perfect - null)``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NAB = ROOT / "benchmarks" / "data" / "nab"

#: published scores (standard, low FP, low FN), from NAB's ``results/final_results.json``
PUBLISHED = {
    "ARTime": (74.9, 65.2, 80.4),
    "Numenta HTM": (70.1, 63.1, 74.3),
    "CAD OSE": (69.9, 67.0, 73.2),
    "Skyline (earthgecko)": (58.2, 46.2, 63.8),
    "KNN CAD": (58.0, 43.4, 64.8),
    "windowed Gaussian": (39.6, 20.9, 47.4),
}


@dataclass(frozen=True)
class Profile:
    tp: float
    fp: float
    fn: float


def load_profiles(nab: Path = NAB) -> dict[str, Profile]:
    raw = json.loads((nab / "profiles.json").read_text())
    return {
        name: Profile(p["CostMatrix"]["tpWeight"], p["CostMatrix"]["fpWeight"], p["CostMatrix"]["fnWeight"])
        for name, p in raw.items()
    }


def scaled_sigmoid(y: float) -> float:
    """``2 / (1 + exp(5y)) - 1``, and ``-1`` beyond ``y > 3``."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def window_rows(
    ts: np.ndarray, windows: Sequence[tuple[np.datetime64, np.datetime64]]
) -> list[tuple[int, int]]:
    """Each window as (first_row, last_row), rows with ``start <= ts <= end``."""
    out = []
    for a, b in windows:
        lo = int(np.searchsorted(ts, a, side="left"))
        hi = int(np.searchsorted(ts, b, side="right")) - 1
        if hi >= lo:
            out.append((lo, hi))
    return out


def score_file(
    n_rows: int, windows: Sequence[tuple[int, int]], detections: Sequence[int], p: Profile
) -> float:
    """Raw NAB score of one file: ``windows`` as (first_row, last_row), detections as row indices."""
    probation = min(math.floor(0.15 * n_rows), 750)
    rows = sorted({d for d in detections if probation <= d < n_rows})
    windows = sorted(windows)
    hit = [False] * len(windows)
    total = 0.0
    for row in rows:
        inside = next((i for i, (a, b) in enumerate(windows) if a <= row <= b), None)
        if inside is not None:
            if not hit[inside]:
                a, b = windows[inside]
                y = -(b - row + 1) / (b - a + 1)
                total += p.tp * scaled_sigmoid(y) / scaled_sigmoid(-1.0)
                hit[inside] = True
            continue
        before = [w for w in windows if w[1] < row]
        if before:
            a, b = before[-1]
            y = (row - b) / (b - a) if b > a else 4.0
            total += p.fp * scaled_sigmoid(y)
        else:
            total -= p.fp
    total -= p.fn * sum(1 for h in hit if not h)
    return total


def normalised(raw: float, n_windows: int, p: Profile) -> float:
    null = -p.fn * n_windows
    perfect = p.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)


def corpus(nab: Path = NAB) -> list[tuple[str, pd.DataFrame, list[tuple[int, int]]]]:
    labels = json.loads((nab / "labels" / "combined_windows.json").read_text())
    out = []
    for name in sorted(labels):
        df = pd.read_csv(nab / "data" / name)
        ts = pd.to_datetime(df["timestamp"]).to_numpy().astype("datetime64[us]")
        wins = [
            (np.datetime64(pd.Timestamp(a), "us"), np.datetime64(pd.Timestamp(b), "us"))
            for a, b in labels[name]
        ]
        out.append((name, df.assign(ts=ts), window_rows(ts, wins)))
    return out


def group_scores(
    per_file: dict[str, dict[str, float]], profiles: dict[str, Profile]
) -> dict[str, dict[str, float]]:
    """Each folder's (realKnownCause, realTweets, …) score per profile, normalised over its own
    windows as the corpus score is (folders without windows: their raw score, false positives only)."""
    raw: dict[str, dict[str, float]] = {}
    for name, f in per_file.items():
        g = raw.setdefault(name.split("/")[0], dict.fromkeys(["windows", "detections", *profiles], 0.0))
        for k in g:
            g[k] += f[k]
    out = {}
    for group, g in sorted(raw.items()):
        w = int(g["windows"])
        scores = {k: round(normalised(g[k], w, p) if w else g[k], 1) for k, p in profiles.items()}
        out[group] = {"windows": w, "detections": int(g["detections"]), **scores}
    return out


def run(nab: Path = NAB, **params: float) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from dataclasses import fields, replace

    from whatchanged.engine.contextual import CONTEXT_DEFAULT, detect_series_combined
    from whatchanged.engine.detect import with_params

    names = {f.name for f in fields(CONTEXT_DEFAULT)}
    context = replace(CONTEXT_DEFAULT, **{k: v for k, v in params.items() if k in names})
    settings = with_params(**{k: v for k, v in params.items() if k not in names})
    profiles = load_profiles(nab)
    raw = dict.fromkeys(profiles, 0.0)
    n_windows = 0
    n_detections = 0
    per_file = {}
    t0 = time.perf_counter()
    for name, df, wins in corpus(nab):
        ts = df["ts"].to_numpy()
        found = detect_series_combined(ts, df["value"].to_numpy(dtype=float), params=context, base=settings)
        det_times = np.array(
            [np.datetime64(a.detected_at.replace(tzinfo=None), "us") for a in found if a.detected_at]
        )
        rows = np.searchsorted(ts, det_times, side="left").tolist() if det_times.size else []
        n_windows += len(wins)
        n_detections += len(rows)
        scores = {k: score_file(len(df), wins, rows, p) for k, p in profiles.items()}
        per_file[name] = {
            "windows": len(wins),
            "detections": len(rows),
            **{k: round(v, 3) for k, v in scores.items()},
        }
        for k in profiles:
            raw[k] += scores[k]
    seconds = time.perf_counter() - t0
    result = {k: round(normalised(raw[k], n_windows, p), 1) for k, p in profiles.items()}
    return {
        "scores": result,
        "groups": group_scores(per_file, profiles),
        "windows": n_windows,
        "detections": n_detections,
        "seconds": round(seconds, 1),
        "files": per_file,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", type=Path, default=NAB, help="NAB folder (data/, labels/, profiles.json)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--per-file", action="store_true", help="print each file's raw scores")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a ContextParams or DetectParams field",
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from whatchanged.engine.contextual import CONTEXT_DEFAULT
    from whatchanged.engine.detect import DEFAULT

    def typed(name: str, value: str) -> float:
        current = getattr(CONTEXT_DEFAULT, name, getattr(DEFAULT, name, 0.0))
        return int(value) if isinstance(current, int) else float(value)

    overrides = {k: typed(k, v) for k, v in (s.split("=", 1) for s in args.set)}
    res = run(args.nab, **overrides)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    if args.per_file:
        for name, f in res["files"].items():  # type: ignore[attr-defined]
            print(f"{name:70s} {f}")
    scores = res["scores"]
    print(f"NAB corpus: {res['windows']} windows, {res['detections']} detections, {res['seconds']} s")
    print(f"{'detector':24s} {'standard':>9s} {'low FP':>9s} {'low FN':>9s}")
    print(
        f"{'whatchanged (online)':24s} {scores['standard']:9.1f} "  # type: ignore[index]
        f"{scores['reward_low_FP_rate']:9.1f} {scores['reward_low_FN_rate']:9.1f}"  # type: ignore[index]
    )
    for name, (standard, low_fp, low_fn) in PUBLISHED.items():
        print(f"{name:24s} {standard:9.1f} {low_fp:9.1f} {low_fn:9.1f}")
    print(f"\n{'group (ours)':24s} {'standard':>9s} {'low FP':>9s} {'low FN':>9s}  windows  detections")
    for group, g in res["groups"].items():  # type: ignore[attr-defined]
        print(
            f"{group:24s} {g['standard']:9.1f} {g['reward_low_FP_rate']:9.1f} "
            f"{g['reward_low_FN_rate']:9.1f}  {g['windows']:7d}  {g['detections']:10d}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
