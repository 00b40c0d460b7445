"""The explanation's JSON is written in the presentation layer; the engine returns objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from whatchanged.engine.model import Anomaly, Change, Explanation, Incident, RuledOut
from whatchanged.present import explanation as shape
from whatchanged.present import shapes

T = datetime(2010, 11, 17, 18, 23, tzinfo=UTC)
ANOMALY = Anomaly("www-1", "latency_ms", T, T, None, "up", 7.3456, 12.34567, 88.88888, detected_at=T)
INCIDENT = Incident("inc-20101117T1823Z-abcdef", T, T + timedelta(hours=1), ("www-1",), (), 0, 0.0)
REACTION = Change(
    "deploy:1", "deploy", T + timedelta(minutes=5), None, title="rollback", scope={"service": ("a",)}
)


def test_an_explanation_in_a_zone() -> None:
    expl = Explanation(
        at=T,
        incident=INCIDENT,
        causes=(),
        ruled_out=(RuledOut("hosting", "no host failed"),),
        reactions=(REACTION,),
        anomalies=(ANOMALY,),
    )
    d = shape.explanation(expl, tz="Europe/Paris")
    assert d["at"] == "2010-11-17T19:23:00+01:00"
    assert d["incident"]["id"] == INCIDENT.incident_id
    assert d["ruled_out"] == [{"category": "hosting", "reason": "no host failed"}]
    assert shapes.explanation(expl, tz="Europe/Paris") == d


def test_an_explanations_anomaly_and_reaction_are_summaries() -> None:
    # narrower than the resources (published answers, golden files): see present/explanation.py
    summary = shape.anomaly_summary(ANOMALY, "UTC")
    assert summary["peak_score"] == 7.35
    assert "detected_at" not in summary
    assert "detected_at" in shapes.anomaly(ANOMALY, "UTC")
    assert set(shape.reaction(REACTION, "UTC")) == {"change_id", "kind", "start", "end", "title", "author"}
    assert "scope" in shapes.change(REACTION, "UTC")
