"""Step 5 of the pipeline: score candidates in [0, 1] and rank them.

The score of a candidate of class *c* with features *f* (see
:mod:`whatchanged.engine.candidates`) is a logistic function::

    score = 1 / (1 + exp(-(bias[c] + Σ weight[c][k] · f[k])))

Default weights (:data:`DEFAULT_WEIGHTS`) were set by hand so that each
feature's effect reads as a rule an SRE would state:

================  ======  =====  ======  =========  =========  ====  =========  =======
class             bias    time   recall  precision  signature  hard  cancelled  covered
================  ======  =====  ======  =========  =========  ====  =========  =======
release           -4.5    2.5    2.5     2.5        1.5        0     -5         0
maintenance       -4.0    3.0    2.5     0.5        1.0        0     -5         0
hosting           -6.0    2.0    1.0     3.0        1.5        3.5   0          -3
================  ======  =====  ======  =========  =========  ====  =========  =======

* a release must touch the affected services *and* mostly break what it
  touched (precision: "300 services got it, 3 broke" is weak evidence);
* a maintenance window covering the onset is strong, and network work rarely
  breaks everything in scope, so its precision barely counts;
* a hosting cause needs a component that failed hard (the machine, not just
  its application), with most of what sits under it failing (a whole
  datacenter with 3% failing is not a component), and outside the scope of
  a maintenance window covering the onset.

:func:`fit` learns the same shape of model (per-class logistic regression
with scikit-learn) from labelled candidates and :func:`save_model` stores it
as JSON in the warehouse (``<home>/model/rank.json``); :func:`load_model`
falls back to the defaults when there is none.

When the best candidate scores below :data:`UNKNOWN_BELOW`, the top cause is
``unknown`` (with that low score), never a forced guess.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whatchanged.engine.candidates import CATEGORIES, Candidate
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.model import Cause
from whatchanged.engine.storage import write_atomic

FEATURES = ("time", "recall", "precision", "signature", "hard", "cancelled", "covered")
UNKNOWN_BELOW = 0.5
#: a class whose best candidate scores below this is also listed as ruled out
PLAUSIBLE = 0.25

DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "application_release": {
        "bias": -4.5,
        "time": 2.5,
        "recall": 2.5,
        "precision": 2.5,
        "signature": 1.5,
        "hard": 0.0,
        "cancelled": -5.0,
        "covered": 0.0,
    },
    "external_maintenance": {
        "bias": -4.0,
        "time": 3.0,
        "recall": 2.5,
        "precision": 0.5,
        "signature": 1.0,
        "hard": 0.0,
        "cancelled": -5.0,
        "covered": 0.0,
    },
    "hosting": {
        "bias": -6.0,
        "time": 2.0,
        "recall": 1.0,
        "precision": 3.0,
        "signature": 1.5,
        "hard": 3.5,
        "cancelled": 0.0,
        "covered": -3.0,
    },
}


@dataclass(frozen=True)
class RankModel:
    """Per-class logistic weights."""

    weights: dict[str, dict[str, float]]
    source: str = "default"  # "default", "fitted", or the path of the model file it was read from
    fitted_at: str | None = None  # ISO 8601 UTC, when fitted

    def score(self, cand: Candidate) -> float:
        w = self.weights[cand.category]
        z = w["bias"] + sum(w.get(k, 0.0) * cand.features.get(k, 0.0) for k in FEATURES)
        return 1.0 / (1.0 + math.exp(-z))


DEFAULT_MODEL = RankModel(DEFAULT_WEIGHTS)


def rank(candidates: Iterable[Candidate], model: RankModel = DEFAULT_MODEL) -> list[Cause]:
    """Candidates as causes, best first; ``unknown`` on top when nothing fits."""
    scored = sorted(
        ((round(model.score(c), 4), c) for c in candidates),
        key=lambda sc: (-sc[0], sc[1].start.timestamp() if sc[1].start else 0.0, sc[1].title),
    )
    causes: list[Cause] = []
    if not scored or scored[0][0] < UNKNOWN_BELOW:
        best = scored[0][0] if scored else 0.0
        reason = (
            f"no candidate fits: the best, '{scored[0][1].title}', scores {best:.2f}"
            if scored
            else "no change, maintenance or failed component lines up with the onset"
        )
        causes.append(
            Cause(
                rank=1,
                category="unknown",
                change_id=None,
                component=None,
                title="unknown cause",
                start=None,
                end=None,
                score=round(min(best, UNKNOWN_BELOW - 0.01), 4) if scored else 0.0,
                evidence_for=(reason,),
            )
        )
    for score, c in scored:
        causes.append(
            Cause(
                rank=len(causes) + 1,
                category=c.category,
                change_id=c.change.change_id if c.change else None,
                component=c.component,
                title=c.title,
                start=c.start,
                end=c.end,
                score=score,
                evidence_for=c.evidence_for,
                evidence_against=c.evidence_against,
                features={k: round(v, 4) for k, v in c.features.items()},
            )
        )
    return causes


# -- learning -------------------------------------------------------------------------


@dataclass(frozen=True)
class Labelled:
    """A candidate and whether responders confirmed it as the cause."""

    category: str
    features: dict[str, float]
    is_cause: bool


def fit(examples: Sequence[Labelled], *, c: float = 1.0) -> RankModel:
    """Fit per-class logistic weights with scikit-learn; classes without both labels keep the defaults."""
    from sklearn.linear_model import LogisticRegression

    weights = {k: dict(v) for k, v in DEFAULT_WEIGHTS.items()}
    for cat in CATEGORIES:
        rows = [e for e in examples if e.category == cat]
        labels = {e.is_cause for e in rows}
        if len(labels) < 2:
            continue
        x = [[e.features.get(k, 0.0) for k in FEATURES] for e in rows]
        y = [int(e.is_cause) for e in rows]
        clf = LogisticRegression(C=c, max_iter=1000)
        clf.fit(x, y)
        weights[cat] = {"bias": float(clf.intercept_[0])} | {
            k: float(v) for k, v in zip(FEATURES, clf.coef_[0], strict=True)
        }
    return RankModel(weights, source="fitted", fitted_at=datetime.now(UTC).isoformat(timespec="seconds"))


def load_labels(path: Path) -> list[Labelled]:
    """Labelled candidates from JSON (list of objects) or CSV (category, is_cause, features…)."""
    import csv

    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="") as fh:
                records: list[dict[str, Any]] = list(csv.DictReader(fh))
        else:
            records = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read labels ({exc})") from None
    out = []
    for i, rec in enumerate(records, start=1):
        cat = str(rec.get("category"))
        if cat not in CATEGORIES:
            raise ConfigError(
                f"{path} record {i}, field 'category': expected one of {CATEGORIES}, found {cat!r}"
            )
        feats = rec.get("features") or {k: rec[k] for k in FEATURES if k in rec}
        try:
            features = {k: float(feats.get(k, 0.0)) for k in FEATURES}
        except (TypeError, ValueError):
            raise ConfigError(f"{path} record {i}: features must be numbers, found {feats!r}") from None
        is_cause = str(rec.get("is_cause", "")).lower() in ("1", "true", "yes")
        out.append(Labelled(cat, features, is_cause))
    return out


def save_model(model: RankModel, home: Path) -> Path:
    path = home / "model" / "rank.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(
        path,
        json.dumps(
            {"weights": model.weights, "source": model.source, "fitted_at": model.fitted_at}, indent=1
        ),
    )
    return path


def load_model(home: Path) -> RankModel:
    path = home / "model" / "rank.json"
    if not path.is_file():
        return DEFAULT_MODEL
    try:
        data = json.loads(path.read_text())
        weights: dict[str, dict[str, float]] = {
            cat: {k: float(v) for k, v in data["weights"][cat].items()} for cat in CATEGORIES
        }
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: unreadable ranking model ({exc}); delete it to use the defaults"
        ) from None
    fitted_at = data.get("fitted_at")
    return RankModel(weights, source=str(path), fitted_at=str(fitted_at) if fitted_at else None)


def model_key(home: Path) -> tuple[int, int] | None:
    """What identifies the saved model (mtime, size), None for the defaults: a cache of ranked
    answers keys on it, since ``fit`` changes the weights without a warehouse commit."""
    try:
        st = (home / "model" / "rank.json").stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
