"""Verdicts into labelled cases, re-ranking under other weights, time-split backtest, the save rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from whatchanged.engine.learn import (
    Case,
    Score,
    Verdict,
    case_from_dict,
    case_of,
    case_to_dict,
    key_of,
    load_verdicts,
    score,
    time_split,
    verdict,
)
from whatchanged.engine.model import Cause
from whatchanged.engine.rank import DEFAULT_MODEL, DEFAULT_WEIGHTS, RankModel
from whatchanged.engine.warehouse import FEEDBACK, Warehouse

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
STRONG = {"time": 1.0, "recall": 1.0, "precision": 1.0, "signature": 1.0, "hard": 1.0}
WEAK = {"time": 0.2, "recall": 0.1, "precision": 0.1, "signature": 0.5}


def _cause(category: str, ident: str, features: dict[str, float], score: float = 0.5) -> Cause:
    hosting = category == "hosting"
    return Cause(
        rank=1,
        category=category,
        change_id=None if hosting else ident,
        component=ident if hosting else None,
        title=f"{category} {ident}",
        start=T0,
        end=None,
        score=score,
        features=features,
    )


REL = _cause("application_release", "REL-1", STRONG, 0.99)
MNT = _cause("external_maintenance", "ovh:FS#7", WEAK, 0.1)
HOST = _cause("hosting", "web-3", WEAK, 0.01)
CAUSES = (_cause("unknown", "", {}, 0.0), REL, MNT, HOST)


def _verdict(change: str | None = None, category: str | None = None, minutes: int = 0) -> Verdict:
    return Verdict("f", "inc-1", change, category, T0 + timedelta(minutes=minutes))


def test_a_verdict_names_the_cause_by_change_id_alias_or_class() -> None:
    by_id = case_of("inc-1", CAUSES, _verdict("FS#7"))
    assert isinstance(by_id, Case)
    assert by_id.truth == key_of(MNT)
    assert [c.category for c in by_id.causes] == ["application_release", "external_maintenance", "hosting"]
    assert [lab.is_cause for lab in by_id.labelled()] == [False, True, False]
    by_class = case_of("inc-1", CAUSES, _verdict(category="hosting"))
    assert isinstance(by_class, Case)
    assert by_class.truth == key_of(HOST)
    none = case_of("inc-1", CAUSES, _verdict(category="unknown"))
    assert isinstance(none, Case)
    assert none.truth_unknown
    assert not any(lab.is_cause for lab in none.labelled())
    missing = case_of("inc-1", CAUSES, _verdict("REL-9"))
    assert missing == "inc-1: the verdict names REL-9, which is not among its 3 candidates"


def test_rank_under_goes_through_rank_with_its_unknown_threshold() -> None:
    case = case_of("inc-1", CAUSES, _verdict("REL-1"))
    assert isinstance(case, Case)
    assert case.rank_of_truth(DEFAULT_MODEL) == 1
    # weights that make every release score ~0: unknown on top, the release comes 2nd… or later
    flat = {k: dict(v) for k, v in DEFAULT_WEIGHTS.items()}
    flat["application_release"] = {"bias": -20.0}
    assert case.rank_under(RankModel(flat))[0].category == "unknown"
    assert case.rank_of_truth(RankModel(flat)) not in (None, 1)
    o = case.outcome(DEFAULT_MODEL)
    assert o.correct
    assert o.score > 0.9


def test_time_split_fits_on_the_older_and_scores_the_newer() -> None:
    cases = []
    for i in range(6):
        made = case_of(f"inc-{i}", CAUSES, _verdict("REL-1", minutes=i))
        assert isinstance(made, Case)
        cases.append(made)
    split = time_split(cases, DEFAULT_MODEL, holdout=1 / 3)
    assert split is not None
    assert (split.train, split.test, split.cut) == (4, 2, T0 + timedelta(minutes=4))
    assert split.before == Score(2, 2, 2)
    assert time_split(cases[:1], DEFAULT_MODEL, holdout=0.5) is None
    assert score(cases, DEFAULT_MODEL) == Score(6, 6, 6)


def test_save_only_if_nothing_got_worse() -> None:
    same = Score(15, 15, 15)
    assert verdict(None, same, same).save
    bad = verdict(None, same, Score(15, 9, 14))
    assert not bad.save
    assert bad.reasons == ["scenario suite top-1 15/15 -> 9/15", "scenario suite top-3 15/15 -> 14/15"]


def test_cases_round_trip_through_json() -> None:
    case = case_of("inc-1", CAUSES, _verdict("REL-1", minutes=3))
    assert isinstance(case, Case)
    assert case_from_dict(case_to_dict(case)) == case


def test_fit_towards_moves_the_weights_in_use_a_little_for_few_verdicts() -> None:
    from whatchanged.engine.learn import fit_towards
    from whatchanged.engine.rank import Labelled

    one = [Labelled("application_release", STRONG, True), Labelled("application_release", WEAK, False)]
    few = fit_towards(one, DEFAULT_MODEL)
    many = fit_towards(one * 200, DEFAULT_MODEL)
    rel = DEFAULT_WEIGHTS["application_release"]
    drift_few = max(abs(few.weights["application_release"][k] - rel[k]) for k in rel)
    drift_many = max(abs(many.weights["application_release"][k] - rel[k]) for k in rel)
    assert 0 < drift_few < 0.5 < drift_many
    assert few.weights["hosting"] == DEFAULT_WEIGHTS["hosting"]  # no example: the prior
    # only non-causes (an "unknown" verdict) still teach something: the bias goes down
    neg = fit_towards([Labelled("hosting", STRONG, False)] * 5, DEFAULT_MODEL)
    assert neg.weights["hosting"]["bias"] < DEFAULT_WEIGHTS["hosting"]["bias"]
    assert few.source == "fitted"
    assert few.fitted_at


def test_the_model_file_keeps_its_fit_time(tmp_path: Path) -> None:
    from whatchanged.engine.rank import load_model, save_model

    fitted = RankModel(DEFAULT_WEIGHTS, source="fitted", fitted_at="2024-03-01T12:00:00+00:00")
    path = save_model(fitted, tmp_path)
    back = load_model(tmp_path)
    assert (back.source, back.fitted_at, back.weights) == (str(path), fitted.fitted_at, DEFAULT_WEIGHTS)
    path.write_text(json.dumps({"weights": DEFAULT_WEIGHTS}))  # written before fit times were kept
    assert load_model(tmp_path).fitted_at is None
    assert load_model(tmp_path / "none") == DEFAULT_MODEL


def test_the_latest_verdict_per_incident_wins(warehouse: Warehouse) -> None:
    rows = [
        ("a", "inc-1", "REL-1", None, T0),
        ("b", "inc-2", None, "hosting", T0 + timedelta(minutes=1)),
        ("c", "inc-1", None, "unknown", T0 + timedelta(minutes=2)),  # corrects the first
    ]
    table = pa.Table.from_pylist(
        [
            {
                "feedback_id": f,
                "incident_id": i,
                "cause_change_id": c,
                "category": k,
                "comment": None,
                "author": "t",
                "created": t,
            }
            for f, i, c, k, t in rows
        ],
        schema=FEEDBACK,
    )
    warehouse.commit({"feedback": table}, source="test")
    con = warehouse.snapshot()
    try:
        got = load_verdicts(con)
    finally:
        con.close()
    assert [(v.feedback_id, v.incident_id, v.category) for v in got] == [
        ("b", "inc-2", "hosting"),
        ("c", "inc-1", "unknown"),
    ]
