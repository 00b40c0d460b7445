"""The customer update: the short status-page text (what happened, since when, what is
being done, next update) and a Statuspage incident body, from the same facts.

Rules, from the data only:

* **status**: ``resolved`` when the incident ended before the end of the data; otherwise
  ``identified`` when the top cause is plausible (score ≥ 0.25, the ranking's own bar), else
  ``investigating``;
* **impact**: ``major`` when an external probe saw the service down, ``minor`` when only
  internal checks failed, ``none`` for metric anomalies alone (``critical`` is left to a
  person);
* **next update**: for an incident still under way, :data:`NEXT_UPDATE` after the latest
  data; none once it is resolved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from whatchanged.engine.postmortem.model import Postmortem
from whatchanged.engine.rank import PLAUSIBLE
from whatchanged.present.postmortem.compose import Composer, Spec, block, section
from whatchanged.present.postmortem.facts import iso

NEXT_UPDATE = timedelta(minutes=30)


def customer_facts(pm: Postmortem, tz: str) -> dict[str, Any]:
    inc = pm.incident
    resolved = inc.end is not None and inc.end < pm.data_end
    top = pm.cause.cause if pm.cause else None
    if resolved:
        status = "resolved"
    elif top is not None and top.score >= PLAUSIBLE and top.category != "unknown":
        status = "identified"
    else:
        status = "investigating"
    if pm.impact.probe is not None:
        impact = "major"
    elif pm.impact.critical:
        impact = "minor"
    else:
        impact = "none"
    dcs = pm.impact.datacenters
    datacenter = dcs[0] if len(dcs) == 1 else None
    network = any(p.code == "network_drop" for p in (pm.cause.evidence_for if pm.cause else ()))
    kinds = [k for k, _ in pm.impact.kinds]
    return {
        "status": status,
        "impact": impact,
        "resolved": resolved,
        "datacenter": datacenter,
        "network": network,
        "kinds": kinds,
        "next_update": None if resolved else iso(pm.data_end + NEXT_UPDATE, tz),
        "plausible_score": PLAUSIBLE,
    }


def customer_sections(c: Composer, _pm: Postmortem) -> list[dict[str, Any]]:
    f = c.facts
    cf = f["customers"]
    shown = [k for k in cf["kinds"] if c.cat.term("customer_kind", k)]
    kinds_text = c.cat.join(
        [c.cat.term("customer_kind", k) for k in dict.fromkeys(c.cat.term("customer_kind", k) for k in shown)]
    )
    kinds: Spec = ("lit", kinds_text or c.cat.text("customer_kind.fallback"), ["customers.kinds"])
    what = []
    if f["impact"]["probe"]:
        args: dict[str, Spec] = {
            "kinds": kinds,
            "times": ("plural", "impact.probe.outage_count", "plural.times"),
            "start": ("time", "impact.probe.first_start"),
            "end": ("time", "impact.probe.last_end"),
            "downtime": ("dur", "impact.probe.downtime"),
            "zone": ("lit", c.cat.zone(c.tz)),
        }
        what.append(c.sentence("customers.what_probe", args))
    elif cf["resolved"]:
        args = {
            "kinds": kinds,
            "start": ("time", "incident.onset"),
            "end": ("time", "incident.end"),
            "zone": ("lit", c.cat.zone(c.tz)),
        }
        what.append(c.sentence("customers.what_resolved", args))
    else:
        what.append(
            c.sentence(
                "customers.what",
                {"kinds": kinds, "start": ("time", "incident.onset"), "zone": ("lit", c.cat.zone(c.tz))},
            )
        )
    cause = f["cause"]
    category = cause["category"] if cause else "unknown"
    if cause is not None and cause["score"] < cf["plausible_score"]:
        category = "unknown"
    args = {}
    key = f"customers.cause.{category}"
    if cf["datacenter"] and category != "unknown":
        args["dc"] = ("text", "customers.datacenter")
        key += "_dc"
    if category == "external_maintenance" and cf["network"]:
        key += "_network"
    if category == "application_release" and cause and cause["start"]:
        args["at"] = ("time", "cause.start")
    what.append(c.sentence(key, args))
    since = []
    if cf["resolved"]:
        end = "impact.probe.last_end" if f["impact"]["probe"] else "incident.end"
        since.append(c.sentence("customers.resolved", {"end": ("time", end)}))
    else:
        since.append(c.sentence("customers.ongoing", {"start": ("time", "incident.onset")}))
    done = []
    restarts = f["reactions"]["by_kind"].get("restart", 0)
    if restarts:
        done.append(c.sentence("customers.done_restarts", {}, plural="reactions.by_kind.restart"))
    done.append(c.sentence("customers.done_resolved" if cf["resolved"] else "customers.done_ongoing"))
    nxt = [
        c.sentence("customers.next_resolved")
        if cf["resolved"]
        else c.sentence("customers.next_update", {"at": ("time", "customers.next_update")})
    ]
    return [
        section(c.cat, "customers_what", [block("paragraph", what)]),
        section(c.cat, "customers_since", [block("paragraph", since)]),
        section(c.cat, "customers_done", [block("paragraph", done)]),
        section(c.cat, "customers_next", [block("paragraph", nxt)]),
    ]


def statuspage(title: str, cf: dict[str, Any], sections: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"name", "status", "impact", "body"}`` — Statuspage's incident fields — and the same
    as its API takes it (``POST /v1/pages/{page_id}/incidents``: ``impact_override``)."""
    body = "\n\n".join(" ".join(s["text"] for b in sec["blocks"] for s in b["sentences"]) for sec in sections)
    fields = {"name": title, "status": cf["status"], "impact": cf["impact"], "body": body}
    request = {
        "incident": {"name": title, "status": cf["status"], "impact_override": cf["impact"], "body": body}
    }
    return {**fields, "request": request}
