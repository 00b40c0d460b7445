"""Deviations without the detector: when the detector sees no incident (series sampled too
sparsely for its one-minute grid, such as 5-minute CloudWatch exports), a step-agnostic
comparison of each series with its own recent history (median and MAD) finds what moved
(:func:`deviations`), and :func:`incident_from_deviations` groups them into one incident whose
origin :mod:`whatchanged.engine.origin` then ranks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from whatchanged.engine.incidents import incident_id
from whatchanged.engine.model import Anomaly, Incident
from whatchanged.engine.origin import THRESHOLD, is_bad
from whatchanged.engine.snapshot import Snapshot

#: the spread is at least this share of the median (a flat series is not infinitely surprising)
REL_FLOOR = 0.002
#: :func:`deviations` restricts its history statistics to the series that can pass when they
#: are at most this many (beyond, joining the scans with them costs more than it saves)
RESTRICT_MAX = 256


def deviations(
    con: Snapshot,
    at: datetime,
    *,
    before_s: float = 900.0,
    after_s: float = 1800.0,
    lead_s: float = 0.0,
    history_s: float = 2 * 86400.0,
    threshold: float = THRESHOLD,
    rel_floor: float = REL_FLOOR,
    min_history: int = 12,
    min_samples: int = 2,
) -> list[Anomaly]:
    """Series whose level stepped at ``at``: samples in ``[at, at + after_s]`` more than
    ``threshold`` spreads away from the level just before (the median of the samples in
    ``[at - before_s, at)``, else of the history).

    The spread comes from the series' own history (the ``history_s`` before
    ``at - before_s``): the largest of 1.4826 × MAD, the 1st–99th percentile range / 4.65
    (what that range is for a normal law: a sparse counter, 0 most of the time, has a MAD
    of 0) and :data:`REL_FLOOR` × the median.  Comparing with the level just before
    rather than the history's median keeps a history from another season (or another
    traffic level) from making every series look anomalous.  Works whatever the sampling
    step.  One anomaly per series and direction, with at least ``min_samples`` samples
    beyond the threshold: its onset is the first of them, ``end`` the last (None when
    the last sample of the window is still beyond it), ``observed`` their median.
    """
    cut = at - timedelta(seconds=lead_s)
    pre0 = cut - timedelta(seconds=before_s)
    h0 = pre0 - timedelta(seconds=history_s)
    end = at + timedelta(seconds=after_s)
    keys: tuple[list[str], list[str]] | None = None
    if threshold > 0 and min_samples > 0:
        keys = _candidates(con, pre0=pre0, cut=cut, end=end, min_samples=min_samples)
        if not keys[0]:
            return []
    params: dict[str, object] = {
        "h0": h0,
        "pre0": pre0,
        "cut": cut,
        "end": end,
        "rel": rel_floor,
        "thr": threshold,
        "min_history": min_history,
        "min_samples": min_samples,
    }
    if keys is None or len(keys[0]) > RESTRICT_MAX:
        source = "metrics"
    else:  # only the series that can pass: their history statistics, not every series'
        source = (
            "(SELECT service, metric, ts, value FROM metrics SEMI JOIN "
            "(SELECT unnest($svc) AS service, unnest($met) AS metric) USING (service, metric))"
        )
        params |= {"svc": keys[0], "met": keys[1]}
    rows = con.execute(
        f"""
        WITH ref AS (
            SELECT service, metric, median(value) AS med, mad(value) AS mad,
                   quantile_cont(value, 0.99) - quantile_cont(value, 0.01) AS span
            FROM {source}
            WHERE ts >= $h0 AND ts < $pre0 AND value IS NOT NULL AND isfinite(value)
            GROUP BY service, metric
            HAVING count(*) >= $min_history
        ), pre AS (
            SELECT service, metric, median(value) AS level
            FROM {source}
            WHERE ts >= $pre0 AND ts < $cut AND value IS NOT NULL AND isfinite(value)
            GROUP BY service, metric
        ), win AS (
            SELECT m.service, m.metric, m.ts, m.value, coalesce(p.level, r.med) AS level,
                   (m.value - coalesce(p.level, r.med))
                       / greatest(1.4826 * r.mad, r.span / 4.65, $rel * abs(r.med), 1e-9) AS z,
                   max(m.ts) OVER (PARTITION BY m.service, m.metric) AS last_ts
            FROM {source} m JOIN ref r USING (service, metric) LEFT JOIN pre p USING (service, metric)
            WHERE m.ts >= $cut AND m.ts <= $end AND m.value IS NOT NULL AND isfinite(m.value)
        )
        SELECT service, metric, CASE WHEN z > 0 THEN 'up' ELSE 'down' END AS direction,
               min(ts), max(ts), max(abs(z)), any_value(level), median(value), max(last_ts)
        FROM win WHERE abs(z) >= $thr
        GROUP BY service, metric, direction
        HAVING count(*) >= $min_samples
        ORDER BY service, metric, direction
        """,
        params,
    ).fetchall()
    out = []
    for service, metric, direction, first, last, peak, level, observed, last_ts in rows:
        out.append(
            Anomaly(
                service=str(service),
                metric=str(metric),
                start=first,
                onset=first,
                end=None if last >= last_ts else last,
                direction=str(direction),
                peak_score=float(peak),
                baseline=float(level),
                observed=float(observed),
            )
        )
    return out


def _candidates(
    con: Snapshot, *, pre0: datetime, cut: datetime, end: datetime, min_samples: int
) -> tuple[list[str], list[str]]:
    """The series :func:`deviations` can report, from the short windows alone (services,
    metrics): at least ``min_samples`` samples in ``[cut, end]`` on one side of the level
    just before (any side when nothing was sampled just before, the level then being the
    history's median).  The spread is positive, so ``|z| ≥ threshold > 0`` needs the sample
    strictly away from the level, on the side of its direction.  Right after a commit,
    ``[cut, end]`` holds the latest minute alone: no series, and no scan of the history.
    """
    rows = con.execute(
        """
        WITH pre AS (
            SELECT service, metric, median(value) AS level
            FROM metrics
            WHERE ts >= $pre0 AND ts < $cut AND value IS NOT NULL AND isfinite(value)
            GROUP BY service, metric
        ), win AS (
            SELECT service, metric, value
            FROM metrics
            WHERE ts >= $cut AND ts <= $end AND value IS NOT NULL AND isfinite(value)
        ), n AS (
            SELECT service, metric, count(*) AS n FROM win GROUP BY service, metric
            HAVING count(*) >= $min_samples
        )
        SELECT n.service, n.metric
        FROM n LEFT JOIN pre p USING (service, metric) JOIN win w USING (service, metric)
        GROUP BY n.service, n.metric, p.level
        HAVING p.level IS NULL
            OR count(*) FILTER (WHERE w.value > p.level) >= $min_samples
            OR count(*) FILTER (WHERE w.value < p.level) >= $min_samples
        ORDER BY n.service, n.metric
        """,
        {"pre0": pre0, "cut": cut, "end": end, "min_samples": min_samples},
    ).fetchall()
    return [str(r[0]) for r in rows], [str(r[1]) for r in rows]


def incident_from_deviations(
    con: Snapshot,
    at: datetime,
    *,
    before_s: float = 900.0,
    after_s: float = 1800.0,
) -> Incident | None:
    """An incident around ``at`` made of :func:`deviations` (None if nothing deviates
    the bad way), for data the detector cannot see."""
    bad = [a for a in deviations(con, at, before_s=before_s, after_s=after_s) if is_bad(a)]
    if not bad:
        return None
    onset = min(a.onset for a in bad)
    services = tuple(sorted({a.service for a in bad}))
    ends = [a.end for a in bad]
    return Incident(
        incident_id=incident_id(onset, services),
        onset=onset,
        end=None if any(e is None for e in ends) else max(e for e in ends if e is not None),
        services_affected=services,
        critical_services=(),
        outage_count=0,
        downtime_s=0.0,
        anomalies=tuple(sorted(bad, key=lambda a: (a.onset, a.service, a.metric))),
        signals=tuple(sorted({a.metric for a in bad})),
    )
