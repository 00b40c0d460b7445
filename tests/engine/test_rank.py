"""Ranking contract: hand-built incidents with a known cause, asserting the cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from whatchanged.engine import candidates as cands
from whatchanged.engine.explain import ruled_out
from whatchanged.engine.model import Anomaly, Change, Incident, Outage
from whatchanged.engine.rank import DEFAULT_MODEL, Labelled, fit, rank

T0 = datetime(2010, 11, 17, 18, 23, tzinfo=UTC)  # 19:23 Paris


def topo() -> cands.Topology:
    attrs: dict[str, dict[str, str | None]] = {}
    for i in range(200):  # P19 web fleet behind 8 switches
        attrs[f"www-{i:03d}"] = {
            "kind": "site",
            "datacenter": "P19",
            "rack": f"R{i % 10}",
            "switch": f"p19-sw-0{i % 8 + 1}",
            "host": f"web-{i // 4}",
            "app": "sites",
        }
    attrs["bo-primary"] = {
        "kind": "backoffice",
        "datacenter": "P19",
        "rack": "R7",
        "switch": "p19-sw-04",
        "host": "p19-bo-01",
        "app": "backoffice",
    }
    attrs["bo-standby"] = {
        "kind": "backoffice",
        "datacenter": "P19",
        "rack": "R8",
        "switch": "p19-sw-05",
        "host": "p19-bo-02",
        "app": "backoffice",
    }
    attrs["mail-out"] = {
        "kind": "email",
        "datacenter": "P19",
        "rack": "R7",
        "switch": "p19-sw-04",
        "host": "p19-mx-01",
        "app": "backoffice",
    }
    for i in range(20):
        attrs[f"editor-{i}"] = {
            "kind": "site",
            "datacenter": "RBX",
            "rack": "X1",
            "switch": "rbx-sw-1",
            "host": f"ed-{i}",
            "app": "editor",
        }
    return cands.Topology(attrs)


def outage(
    service: str, start: datetime, minutes: int, *, external: bool = False, check: str = "HTTP"
) -> Outage:
    return Outage(
        service,
        check,
        start,
        start + timedelta(minutes=minutes),
        "down" if external else "CRITICAL",
        "pingdom" if external else "nagios",
        external,
    )


def change(
    cid: str, kind: str, start: datetime, end: datetime | None, services: set[str], **kw: object
) -> Change:
    return Change(
        change_id=cid,
        kind=kind,
        start=start,
        end=end,
        title=str(kw.get("title", cid)),
        status=kw.get("status"),
        scope={"services": tuple(sorted(services))},  # type: ignore[arg-type]
        resolved_services=tuple(sorted(services)),
    )


def explain(incident: Incident, changes: list[Change]) -> list:  # type: ignore[type-arg]
    t = topo()
    found = (
        cands.release_candidates(incident, changes, t, lookback_s=7200, tz_fmt="Europe/Paris")
        + cands.maintenance_candidates(incident, changes, t, tz_fmt="Europe/Paris")
        + cands.hosting_candidates(
            incident,
            changes,
            t,
            tz_fmt="Europe/Paris",
            covering=[
                c
                for c in changes
                if c.kind == "maintenance" and c.start <= incident.onset <= (c.end or incident.onset)
            ],
        )
    )
    return rank(found, DEFAULT_MODEL)


def night_incident() -> Incident:
    crit = [f"www-{i:03d}" for i in range(0, 200, 7)]  # ~29 services across all switches
    outs = (*(outage(s, T0, 80) for s in crit), outage("www-000", T0, 5, external=True))
    bw = Anomaly("p19-edge", "bandwidth_mbps", T0, T0, T0 + timedelta(minutes=83), "down", 12.0, 200.0, 50.0)
    return Incident(
        "inc-x",
        T0,
        T0 + timedelta(minutes=83),
        tuple(crit),
        tuple(crit),
        14,
        3240.0,
        outs,
        (bw,),
        ("bandwidth_mbps",),
    )


def test_maintenance_covering_onset_beats_hosting_and_releases() -> None:
    p19 = {s for s in topo().attrs if topo().attrs[s]["datacenter"] == "P19"}
    changes = [
        change(
            "ovh:FS#4321",
            "maintenance",
            T0 - timedelta(minutes=23),
            T0 + timedelta(minutes=97),
            p19,
            title="Network:: P19 switches maintenance",
        ),
        change("rel-editor", "deploy", T0 - timedelta(minutes=70), None, {f"editor-{i}" for i in range(20)}),
    ]
    causes = explain(night_incident(), changes)
    assert causes[0].category == "external_maintenance"
    assert causes[0].change_id == "ovh:FS#4321"
    assert causes[0].score > 0.8
    assert any("covers the onset at 19:23" in e for e in causes[0].evidence_for)
    release = next(c for c in causes if c.category == "application_release")
    assert release.score < 0.25
    assert any("none of which is affected" in e for e in release.evidence_against)
    hosting = next(c for c in causes if c.category == "hosting")
    assert any("whose window covers the onset" in e for e in hosting.evidence_against) or hosting.score < 0.25
    ruled = {
        r.category: r.reason
        for r in ruled_out(night_incident(), causes, changes, lookback_s=7200, tz="Europe/Paris")
    }
    assert "application_release" in ruled
    assert "'rel-editor' at 18:13, 1 h 10 min earlier" in ruled["application_release"]


def test_failed_backoffice_server_is_hosting_and_unrelated_release_ranks_below() -> None:
    t = T0 - timedelta(minutes=40)  # 18:43 Paris
    outs = (
        outage("bo-primary", t, 25),
        outage("bo-primary", t, 25, check="PING"),
        outage("mail-out", t + timedelta(minutes=1), 24),
    )
    inc = Incident(
        "inc-bo",
        t,
        t + timedelta(minutes=25),
        ("bo-primary", "mail-out"),
        ("bo-primary", "mail-out"),
        2,
        1500.0,
        outs,
    )
    rel = change("rel-editor", "deploy", t - timedelta(minutes=30), None, {f"editor-{i}" for i in range(20)})
    causes = explain(inc, [rel])
    assert causes[0].category == "hosting"
    assert causes[0].component == "bo-primary"
    assert "its reachability check failed: the machine itself was down" in causes[0].evidence_for
    assert any("bo-standby" in e and "did not take over" in e for e in causes[0].evidence_for)
    assert causes[1].change_id == "rel-editor"
    assert causes[1].score < 0.25


def test_bad_release_on_one_app() -> None:
    services = [f"editor-{i}" for i in range(20)]
    anomalies = tuple(Anomaly(s, "http_error_rate", T0, T0, None, "up", 9.0, 0.01, 0.2) for s in services)
    inc = Incident("inc-rel", T0, None, tuple(services), (), 0, 0.0, (), anomalies, ("http_error_rate",))
    rel = change("rel-editor-4.2", "deploy", T0 - timedelta(minutes=4), None, set(services))
    other = change(
        "rel-sites", "deploy", T0 - timedelta(minutes=9), None, {f"www-{i:03d}" for i in range(200)}
    )
    causes = explain(inc, [rel, other])
    assert causes[0].change_id == "rel-editor-4.2"
    assert causes[0].category == "application_release"


def test_release_to_300_of_which_3_broke_loses_to_their_failed_host() -> None:
    broken = ["www-040", "www-041", "www-042", "www-043"]  # all on host web-10
    outs = tuple(outage(s, T0, 30) for s in broken)
    inc = Incident("inc-host", T0, T0 + timedelta(minutes=30), tuple(broken), tuple(broken), 4, 1800.0, outs)
    rel = change("rel-sites", "deploy", T0 - timedelta(minutes=5), None, {f"www-{i:03d}" for i in range(200)})
    causes = explain(inc, [rel])
    assert causes[0].category == "hosting"
    assert causes[0].component == "web-10"
    assert any("unaffected services got the same release" in e for e in causes[1].evidence_against)


def test_cancelled_maintenance_is_not_the_cause() -> None:
    services = [f"editor-{i}" for i in range(20)]
    anomalies = tuple(Anomaly(s, "http_error_rate", T0, T0, None, "up", 9.0, 0.01, 0.2) for s in services)
    inc = Incident("inc-c", T0, None, tuple(services), (), 0, 0.0, (), anomalies, ("http_error_rate",))
    cancelled = change(
        "mnt-1",
        "maintenance",
        T0 - timedelta(hours=1),
        T0 + timedelta(hours=1),
        set(services),
        status="cancelled",
    )
    rel = change("rel-editor", "deploy", T0 - timedelta(minutes=20), None, set(services))
    causes = explain(inc, [cancelled, rel])
    assert causes[0].change_id == "rel-editor"
    mnt = next(c for c in causes if c.change_id == "mnt-1")
    assert "the notice was cancelled" in mnt.evidence_against


def test_nothing_fits_gives_unknown_with_low_score() -> None:
    anomalies = (Anomaly("www-001", "latency_ms", T0, T0, None, "up", 7.0, 80.0, 300.0),)
    inc = Incident("inc-u", T0, None, ("www-001",), (), 0, 0.0, (), anomalies, ("latency_ms",))
    far = change("rel-old", "deploy", T0 - timedelta(hours=5), None, {"www-001"})
    causes = explain(inc, [far])
    assert causes[0].category == "unknown"
    assert causes[0].score < 0.5
    ruled = {r.category for r in ruled_out(inc, causes, [far], lookback_s=7200, tz="UTC")}
    assert ruled == {"application_release", "external_maintenance", "hosting"}


def test_reactions_are_never_causes() -> None:
    inc = night_incident()
    restarts = [
        change(f"restart-{i}", "restart", T0 + timedelta(minutes=5 * i + 3), None, {"www-000"})
        for i in range(14)
    ]
    causes = explain(inc, restarts)
    assert all(c.change_id is None or not c.change_id.startswith("restart") for c in causes)
    assert len(cands.reactions(inc, restarts)) == 14


@pytest.mark.parametrize(("lead_min", "expected"), [(-3, 0.0), (0, 1.0), (15, 1.0), (120, 0.0), (67.5, 0.5)])
def test_release_time_score(lead_min: float, expected: float) -> None:
    assert cands.release_time_score(lead_min * 60, 7200) == pytest.approx(expected, abs=0.01)


def test_fit_learns_from_labels() -> None:
    examples = [
        Labelled("application_release", {"time": t, "recall": r, "precision": r}, r > 0.5)
        for t in (0.2, 0.6, 1.0)
        for r in (0.0, 0.1, 0.9, 1.0)
    ]
    model = fit(examples)
    good = cands.Candidate(
        "application_release", "x", None, None, features={"time": 1.0, "recall": 1.0, "precision": 1.0}
    )
    bad = cands.Candidate(
        "application_release", "y", None, None, features={"time": 1.0, "recall": 0.0, "precision": 0.0}
    )
    assert model.source == "fitted"
    assert model.score(good) > 0.5 > model.score(bad)


def test_incident_survives_the_disk_cache_round_trip() -> None:
    from whatchanged.engine.model import incident_from_dict

    inc = night_incident()
    assert incident_from_dict(inc.to_dict()) == inc
