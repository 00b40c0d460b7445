"""Step 6 of the pipeline: "what changed at T?" — the incident, ranked causes, why
the other classes were ruled out, and what responders did (reactions).

``explain_at`` is what ``whatchanged explain`` and ``GET /api/v1/explain`` call; it returns
an :class:`~whatchanged.engine.model.Explanation`, which
:mod:`whatchanged.present.explanation` writes as JSON.  The explanation is about the wave
whose onset is nearest before the asked time; ``overlapping`` holds the other incidents under
way during it (an earlier wave still lingering, an unrelated failure elsewhere).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from whatchanged.engine import candidates as cands
from whatchanged.engine import deviations, origin
from whatchanged.engine.changes import aliases_for, list_changes
from whatchanged.engine.incidents import incidents_at, inventory
from whatchanged.engine.model import Cause, Change, Explanation, Incident, RuledOut
from whatchanged.engine.rank import PLAUSIBLE, RankModel, load_model, rank
from whatchanged.engine.settings import Settings
from whatchanged.engine.snapshot import Snapshot
from whatchanged.engine.timeparse import fmt_local, zone

#: how far before the onset the ruled-out sentences look for releases and notices
CONTEXT_BEFORE = timedelta(days=1)


def topology(con: Snapshot) -> cands.Topology:
    return cands.Topology(inventory(con))


def explain_incident(
    con: Snapshot,
    incident: Incident,
    *,
    settings: Settings,
    at: datetime | None = None,
    model: RankModel | None = None,
    overlapping: tuple[Incident, ...] = (),
) -> Explanation:
    """Rank the causes of ``incident`` (``overlapping``: the other incidents under way with it)."""
    topo = topology(con)
    tz = settings.tz
    lookback = float(settings.deploy_lookback_s)
    start = incident.onset - max(CONTEXT_BEFORE, timedelta(seconds=lookback))
    end = (incident.end or incident.onset) + timedelta(hours=2)
    aliases = aliases_for(settings)
    changes = list_changes(con, start=start, end=end, aliases=aliases)
    maintenance = cands.maintenance_candidates(incident, changes, topo, tz_fmt=tz)
    covering = [
        m.change for m in maintenance if m.change and m.features["time"] >= 0.99 and not m.change.cancelled
    ]
    candidates = (
        cands.release_candidates(incident, changes, topo, lookback_s=lookback, tz_fmt=tz)
        + maintenance
        + cands.hosting_candidates(incident, changes, topo, tz_fmt=tz, covering=covering)
    )
    model = model or load_model(settings.home)
    causes = rank(candidates, model)
    if causes and causes[0].category == "unknown":  # no change explains it: name where it started
        causes = origin.attach(causes, origin.rank_origins(incident.anomalies, origin.load_graph(con), tz=tz))
    ruled = ruled_out(incident, causes, changes, lookback_s=lookback, tz=tz)
    return Explanation(
        at=at or incident.onset,
        incident=incident,
        causes=tuple(causes),
        ruled_out=tuple(ruled),
        reactions=tuple(cands.reactions(incident, changes)),
        anomalies=incident.anomalies,
        weights=model.source,
        weights_fitted_at=model.fitted_at,
        overlapping=overlapping,
    )


def explain_at(
    con: Snapshot, at: datetime, *, settings: Settings, model: RankModel | None = None
) -> Explanation:
    """What changed at ``at``: the incident there (if any) and its ranked causes."""
    model = model or load_model(settings.home)
    incident, overlapping = incidents_at(con, at)
    if incident is None:  # no anomaly run the detector accepts: a step in the series at ``at``
        incident = deviations.incident_from_deviations(con, at)
    if incident is None:
        return Explanation(
            at=at,
            incident=None,
            causes=(),
            ruled_out=(
                RuledOut("unknown", f"no incident or outage at {fmt_local(at, settings.tz, with_date=True)}"),
            ),
            reactions=(),
            weights=model.source,
            weights_fitted_at=model.fitted_at,
        )
    return explain_incident(con, incident, settings=settings, at=at, model=model, overlapping=overlapping)


# -- ruled-out classes ----------------------------------------------------------------------


def ruled_out(
    incident: Incident, causes: list[Cause], changes: list[Change], *, lookback_s: float, tz: str
) -> list[RuledOut]:
    """For each class with no plausible candidate, the reason in one sentence."""
    best: dict[str, float] = {}
    for c in causes:
        best[c.category] = max(best.get(c.category, 0.0), c.score)
    out = []
    if best.get("application_release", 0.0) < PLAUSIBLE:
        out.append(RuledOut("application_release", _release_reason(incident, changes, lookback_s, tz)))
    if best.get("external_maintenance", 0.0) < PLAUSIBLE:
        out.append(RuledOut("external_maintenance", _maintenance_reason(incident, changes, tz)))
    if best.get("hosting", 0.0) < PLAUSIBLE:
        out.append(RuledOut("hosting", _hosting_reason(incident)))
    return out


def _release_reason(incident: Incident, changes: list[Change], lookback_s: float, tz: str) -> str:
    local = zone(tz)
    day = incident.onset.astimezone(local).date()
    releases = [c for c in changes if c.kind in cands.RELEASE_KINDS]
    today = [c for c in releases if c.start.astimezone(local).date() == day]
    before = [c for c in releases if c.start <= incident.onset]
    count = f"{len(today)} release{'s' if len(today) != 1 else ''} that day"
    if not before:
        return f"{count}; none before the onset at {fmt_local(incident.onset, tz)}"
    nearest = max(before, key=lambda c: c.start)
    lead = (incident.onset - nearest.start).total_seconds()
    affected = set(incident.services_affected)
    hit = affected & set(nearest.resolved_services)
    on = (
        f"on {len(nearest.resolved_services)} services none of which is affected"
        if nearest.resolved_services and not hit
        else f"on {len(nearest.resolved_services)} services, {len(hit)} of them affected"
    )
    within = [c for c in before if (incident.onset - c.start).total_seconds() <= lookback_s]
    window = cands.fmt_duration(lookback_s)
    touches = " touches the affected services" if within else ""
    head = f"{count}; none in the {window} before the onset{touches}"
    return (
        f"{head}: the nearest before the onset was '{nearest.title or nearest.change_id}' at "
        f"{fmt_local(nearest.start, tz)}, {cands.fmt_duration(lead)} earlier, {on}"
    )


def _maintenance_reason(incident: Incident, changes: list[Change], tz: str) -> str:
    notices = [c for c in changes if c.kind in cands.MAINTENANCE_KINDS]
    onset = incident.onset
    covering = [c for c in notices if c.start <= onset and (c.end is None or onset <= c.end)]
    if covering and all(c.cancelled for c in covering):
        ids = ", ".join(c.change_id for c in covering)
        return f"the only notice covering the onset at {fmt_local(onset, tz)} ({ids}) was cancelled"
    if covering:
        c = covering[0]
        return (
            f"{c.change_id} covers the onset at {fmt_local(onset, tz)} but its scope "
            f"({len(c.resolved_services)} services) does not match the affected services"
        )
    if not notices:
        return f"no maintenance notice within a day of the onset at {fmt_local(onset, tz)}"
    nearest = min(notices, key=lambda c: abs((c.start - onset).total_seconds()))
    rel = "after" if nearest.start > onset else "before"
    gap = cands.fmt_duration((nearest.start - onset).total_seconds())
    window = f"{fmt_local(nearest.start, tz)}–{fmt_local(nearest.end, tz) if nearest.end else 'open'}"
    return (
        f"no maintenance window covers the onset at {fmt_local(onset, tz)}; the nearest, {nearest.change_id} "
        f"({window}), starts {gap} {rel} it"
    )


def _hosting_reason(incident: Incident) -> str:
    if not cands.hard_failed(incident):
        return "no service went CRITICAL or down: only metric anomalies, no failed component"
    return "no host, switch or rack failed before the others with most of its services down"
