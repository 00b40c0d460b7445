"""Step 3 — incidents: anomalies and outages grouped across services.

Every anomaly (:mod:`whatchanged.engine.detect`) and outage
(:mod:`whatchanged.engine.outages`) is an *event* ``[onset, end]`` on one
service (an open end counts up to the end of the data).  An incident is the
failures of one cause (``docs/detection.md`` §4):

1. **waves** of hard failures — outages and *hard* anomalies (:func:`is_hard`:
   the metric doubled or halved): two hard events are in one wave when they are
   on the **same service** and the second starts at most ``flap_gap_s`` (15 min)
   after the first ends, or they **overlap in time** (± ``link_gap_s``, 2 min)
   and are **related by topology** (same datacenter, switch or host; same app
   only for services whose datacenter is unknown; a service missing from the
   inventory relates to everything by time), closed transitively — except that a
   *local burst* (3 services behind one switch or on one host within 3 min) starting
   5 min after a wave confined to another switch or host is a wave of its own
   (:func:`_elsewhere`);
2. every **soft** anomaly joins one wave — the latest whose hard span holds its
   onset, else the linked wave with the nearest onset — and never links two:
   a lingering soft anomaly does not chain a later wave to an earlier one;
   soft anomalies linked to no wave group among themselves;
3. a group whose hard failures start at most ``recur_gap_s`` (1 h) after
   another's end, on mostly the same services (Jaccard of the hard-failed
   services ≥ 0.5), joins it: works overrunning their window, a fix that did
   not hold.  A different set of hard failures is a new incident.

A group becomes an incident if it holds an outage, or anomalies on at least two
services, or one anomaly lasting at least ``min_anomaly_s`` (10 min); a contextual
anomaly (``Anomaly.contextual``: a pattern new to its series) counts there only when
sustained — ``MATERIAL_Z`` spreads away and ``min_anomaly_s`` long — and otherwise only
joins an incident.

An incident's onset, end, members and id do not depend on the range it was
computed over (:func:`settled_groups`): onsets are refined with the look-ahead,
events are read over a range widened until each incident is complete, open ends
count to the end of the data.  ``online=True`` keeps the causal computation
(what a live detector knew at ``end``) for evaluation only.

``outage_count`` / ``downtime_s`` follow :class:`~whatchanged.engine.model.Incident`:
the external-probe down intervals merged across probes; if the incident has
none, the merged CRITICAL/DOWN intervals of its checks.  ``incident_id`` is
``inc-YYYYMMDDTHHMMZ-<6 hex>``: the onset minute in UTC and a hash of the
sorted affected services and that minute.

The rules above are applied, to events already read, in
:mod:`whatchanged.engine.incident_grouping`; this module reads the events, finds, caches and
looks incidents up (:func:`find_incidents`, :func:`incidents_at`, :func:`get_incident`), and
re-exports the grouping's names.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from whatchanged.engine.detect import DEFAULT, DetectParams, detect_anomalies
from whatchanged.engine.errors import NotFoundError
from whatchanged.engine.extent import last_data_ts

# The grouping rules live in incident_grouping (no warehouse there); their names stay importable
# from here, where the pipeline's step 3 is.
from whatchanged.engine.incident_grouping import BURST_S as BURST_S
from whatchanged.engine.incident_grouping import BURST_SERVICES as BURST_SERVICES
from whatchanged.engine.incident_grouping import FLAP_GAP_S as FLAP_GAP_S
from whatchanged.engine.incident_grouping import HARD_FACTOR as HARD_FACTOR
from whatchanged.engine.incident_grouping import LINK_GAP_S as LINK_GAP_S
from whatchanged.engine.incident_grouping import MIN_ANOMALY_S as MIN_ANOMALY_S
from whatchanged.engine.incident_grouping import ONSET_QUORUM as ONSET_QUORUM
from whatchanged.engine.incident_grouping import RECUR_GAP_S as RECUR_GAP_S
from whatchanged.engine.incident_grouping import RECUR_OVERLAP as RECUR_OVERLAP
from whatchanged.engine.incident_grouping import SPLIT_AFTER_S as SPLIT_AFTER_S
from whatchanged.engine.incident_grouping import TOPOLOGY as TOPOLOGY
from whatchanged.engine.incident_grouping import _attach_soft as _attach_soft
from whatchanged.engine.incident_grouping import _elsewhere as _elsewhere
from whatchanged.engine.incident_grouping import _Group as _Group
from whatchanged.engine.incident_grouping import _incident as _incident
from whatchanged.engine.incident_grouping import _join_recurrences as _join_recurrences
from whatchanged.engine.incident_grouping import _local_bursts as _local_bursts
from whatchanged.engine.incident_grouping import _sweep as _sweep
from whatchanged.engine.incident_grouping import _topology_keys as _topology_keys
from whatchanged.engine.incident_grouping import group_events as group_events
from whatchanged.engine.incident_grouping import incident_id as incident_id
from whatchanged.engine.incident_grouping import is_hard as is_hard
from whatchanged.engine.incident_grouping import wave_onset as wave_onset
from whatchanged.engine.model import Incident, incident_from_dict
from whatchanged.engine.outages import find_outages
from whatchanged.engine.snapshot import Snapshot, fingerprint
from whatchanged.engine.storage import write_atomic

CACHE_SIZE = 32
#: what incidents are detected from: their caches are keyed by these tables' data version
INCIDENT_TABLES = ("metrics", "states", "services")
_CACHE: OrderedDict[tuple[Any, ...], tuple[Incident, ...]] = OrderedDict()
#: how far beyond a question's range the events of its incidents are looked for
MAX_REACH_S = 86400.0
#: an incident whose onset is this close after the asked time is under way at it
ONSET_SLACK_S = 120.0
_ID = re.compile(r"^inc-(\d{8}T\d{4})Z-([0-9a-f]{6})$")


def inventory(con: Snapshot) -> dict[str, dict[str, str | None]]:
    """Topology columns of every service of the ``services`` view."""
    rows = con.execute(f"SELECT service, {', '.join(TOPOLOGY)} FROM services").fetchall()
    return {str(r[0]): dict(zip(TOPOLOGY, r[1:], strict=True)) for r in rows}


def _data_end(con: Snapshot) -> datetime:
    value = last_data_ts(con)
    return value if value is not None else datetime.now(UTC)


def find_incidents(
    con: Snapshot,
    start: datetime,
    end: datetime,
    *,
    online: bool = False,
    params: DetectParams = DEFAULT,
    flap_gap_s: float = FLAP_GAP_S,
    link_gap_s: float = LINK_GAP_S,
    min_anomaly_s: float = MIN_ANOMALY_S,
) -> list[Incident]:
    """Incidents whose span overlaps ``[start, end)``, whole (with their events outside the
    range), by onset; their id, onset and members do not depend on the range
    (:func:`settled_groups`).  ``online=True``: what a live detector knew at ``end`` (no
    onset look-ahead, nothing after ``end``), for evaluation; its ids may differ.

    Results are cached per process, keyed by the snapshot's data version of the
    metrics, states and services tables (:meth:`Snapshot.data_version`) and the
    arguments: a repeat is a cache hit, and a new commit of monitoring data is a
    miss.  They are also kept on disk under the same key in the warehouse's
    ``_cache`` (:attr:`Snapshot.cache_dir`, when writable), so that a new process
    (the CLI) asking the same question about the same data reads them back instead
    of running detection again; a commit of changes (deploys, notices) does not
    invalidate them, since incidents do not depend on changes.
    """
    key = (
        con.data_version(INCIDENT_TABLES),
        start,
        end,
        online,
        params,
        flap_gap_s,
        link_gap_s,
        min_anomaly_s,
    )
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return list(hit)
    cache_dir = con.cache_dir
    disk = cache_dir / f"incidents-{fingerprint([repr(key)])}.json" if cache_dir else None
    if disk is not None and disk.is_file():
        try:
            found = [incident_from_dict(d) for d in json.loads(disk.read_text())]
        except (OSError, ValueError, TypeError, KeyError):
            found = _find_incidents(con, start, end, online, params, flap_gap_s, link_gap_s, min_anomaly_s)
    else:
        found = _find_incidents(con, start, end, online, params, flap_gap_s, link_gap_s, min_anomaly_s)
        if disk is not None:
            _write_cache(disk, found)
    _CACHE[key] = tuple(found)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return found


def _write_cache(path: Path, found: list[Incident]) -> None:
    """Write atomically (:func:`~whatchanged.engine.storage.write_atomic`); a cache that cannot
    be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps([i.to_dict() for i in found]))
    except OSError:
        pass


def clear_cache() -> None:
    _CACHE.clear()


def _find_incidents(
    con: Snapshot,
    start: datetime,
    end: datetime,
    online: bool,
    params: DetectParams,
    flap_gap_s: float,
    link_gap_s: float,
    min_anomaly_s: float,
) -> list[Incident]:
    if online:
        cutoff = end
        anomalies = detect_anomalies(con, start, end, online=True, params=params)
        outages = find_outages(con, start, end, until=end)
        groups = group_events(
            anomalies, outages, inventory(con), cutoff=cutoff, flap_gap_s=flap_gap_s, link_gap_s=link_gap_s
        )
    else:
        groups, cutoff = settled_groups(
            con, start, end, params=params, flap_gap_s=flap_gap_s, link_gap_s=link_gap_s
        )
    found = [i for g in groups if (i := _incident(g, cutoff, online, min_anomaly_s)) is not None]
    found.sort(key=lambda i: (i.onset, i.incident_id))
    return found


def settled_groups(
    con: Snapshot,
    start: datetime,
    end: datetime,
    *,
    params: DetectParams = DEFAULT,
    flap_gap_s: float = FLAP_GAP_S,
    link_gap_s: float = LINK_GAP_S,
    recur_gap_s: float = RECUR_GAP_S,
    reach_s: float = MAX_REACH_S,
) -> tuple[list[_Group], datetime]:
    """The groups whose span overlaps ``[start, end)``, computed so that they do not depend on
    that range: events are read over a wider span, widened again (by at most ``reach_s``
    on each side) until every such group starts and ends at least a linking distance
    (``recur_gap_s`` + the larger of the flap and link gaps) inside it, so that no event
    outside could have joined it; onsets are refined with the look-ahead wherever the data
    has it, and open ends count up to the end of the data.  Returns the groups and that
    cut-off."""
    data_end = _data_end(con)
    cutoff = data_end
    margin = timedelta(seconds=recur_gap_s + max(flap_gap_s, link_gap_s))
    floor_ = start - timedelta(seconds=reach_s)  # before the first data, reading costs nothing
    ceil_ = min(data_end + timedelta(minutes=1), end + timedelta(seconds=reach_s))
    ceil_ = max(ceil_, end)
    lo = max(floor_, start - margin)
    hi = max(end, min(ceil_, end + 2 * margin))
    inv = inventory(con)
    while True:
        anomalies = detect_anomalies(con, lo, hi, online=False, params=params)
        outages = find_outages(con, lo, hi)
        groups = group_events(
            anomalies,
            outages,
            inv,
            cutoff=cutoff,
            flap_gap_s=flap_gap_s,
            link_gap_s=link_gap_s,
            recur_gap_s=recur_gap_s,
        )
        mine = [g for g in groups if g.start < end and g.end >= start]
        early = [g.start - margin for g in mine if g.start < lo + margin]
        late = [g.end + margin for g in mine if g.end > hi - margin]
        new_lo = max(floor_, min(early)) if early and lo > floor_ else lo
        new_hi = min(ceil_, max(late)) if late and hi < ceil_ else hi
        if new_lo >= lo and new_hi <= hi:
            return mine, cutoff
        lo, hi = min(lo, new_lo), max(hi, new_hi)


def incidents_at(
    con: Snapshot,
    at: datetime,
    *,
    after_s: float = 600.0,
    slack_s: float = ONSET_SLACK_S,
) -> tuple[Incident | None, tuple[Incident, ...]]:
    """The incident "what changed at ``at``" is about, and the others under way with it.

    Of the incidents under way at ``at`` (onset at most ``slack_s`` after it — onsets are
    refined to about a minute), the one whose onset is nearest before ``at``: the latest
    wave, not one still lingering from earlier; if none, the first starting within
    ``after_s`` after ``at``.  The second item lists the other incidents whose span
    overlaps the chosen one's, by onset."""
    found = find_incidents(
        con,
        at - timedelta(seconds=FLAP_GAP_S),
        at + timedelta(seconds=max(after_s, slack_s)),
    )
    soon = at + timedelta(seconds=slack_s)
    under_way = [i for i in found if i.onset <= soon and (i.end is None or i.end >= at)]
    later = [i for i in found if soon < i.onset <= at + timedelta(seconds=after_s)]
    if under_way:
        chosen = max(under_way, key=lambda i: (i.onset, len(i.services_affected), i.incident_id))
    elif later:
        chosen = min(later, key=lambda i: (i.onset, -len(i.services_affected), i.incident_id))
    else:
        return None, ()
    others = tuple(i for i in found if i is not chosen and _overlap(i, chosen))
    return chosen, others


def overlapping(con: Snapshot, incident: Incident) -> tuple[Incident, ...]:
    """The other incidents whose span overlaps ``incident``'s, by onset."""
    end = incident.end or incident.onset + timedelta(minutes=1)
    found = find_incidents(con, incident.onset, max(end, incident.onset + timedelta(minutes=1)))
    return tuple(i for i in found if i.incident_id != incident.incident_id and _overlap(i, incident))


def _overlap(a: Incident, b: Incident) -> bool:
    return (a.end is None or a.end > b.onset) and (b.end is None or b.end > a.onset)


def incident_at(
    con: Snapshot,
    at: datetime,
    *,
    after_s: float = 600.0,
) -> Incident | None:
    """The incident of :func:`incidents_at` (None if there is none)."""
    return incidents_at(con, at, after_s=after_s)[0]


def get_incident(con: Snapshot, incident_id: str) -> Incident:
    """Recompute the incident named ``incident_id`` around the minute in the id."""
    m = _ID.match(incident_id.strip())
    if not m:
        raise NotFoundError(f"incident id: expected 'inc-YYYYMMDDTHHMMZ-<6 hex>', found {incident_id!r}")
    onset = datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
    # an incident's id, onset and members do not depend on the range: the minute of its onset finds it
    for inc in find_incidents(con, onset, onset + timedelta(minutes=1)):
        if inc.incident_id == incident_id:
            return inc
    raise NotFoundError(
        f"incident {incident_id}: no incident with this id starts at {onset:%Y-%m-%d %H:%M} UTC "
        "in the warehouse data (was the data changed since?)"
    )
