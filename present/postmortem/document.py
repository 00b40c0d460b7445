"""The team's postmortem as the JSON form: ``facts`` (every fact a field) and ``sections``
of sentences, each naming the fields and the records it was built from.

::

    {"kind": "postmortem", "audience": "team", "lang": "fr", "tz": "Europe/Paris",
     "incident_id": "...", "title": "...", "subtitle": "...",
     "facts": {...},                          # facts.facts_json
     "sections": [{"id", "title", "blocks": [{"style": "paragraph" | "list",
                                              "intro"?: <sentence>,
                                              "sentences": [<sentence>, ...]}]}]}
    <sentence> = {"id", "text", "fields": ["impact.probe.outage_count", ...],
                  "records": [{"table": "states", "service", "check", "start", "end", ...}],
                  "link"?: {"href", "text"}}

Markdown and HTML (:mod:`whatchanged.dashboards.postmortem`) are rendered from this form
only.  Sections: summary, impact, timeline, cause, ruled_out, related, helped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from whatchanged.engine.postmortem.model import Postmortem
from whatchanged.present.postmortem.compose import Composer, Spec, block, cause_what, recs, section, where
from whatchanged.present.postmortem.facts import record_json
from whatchanged.present.postmortem.reasons import (
    cause_section,
    helped_section,
    related_section,
    ruled_out_section,
)


def window(f: Mapping[str, Any]) -> tuple[str, str]:
    """The paths of the span the text gives the incident: the probe's outages, else onset–end."""
    if f["impact"]["probe"]:
        return "impact.probe.first_start", "impact.probe.last_end"
    return "incident.onset", ("incident.end" if f["incident"]["end"] else "incident.onset")


def _summary(c: Composer, pm: Postmortem) -> dict[str, Any]:
    f, tz = c.facts, c.tz
    start, end = window(f)
    out = []
    if f["impact"]["probe"]:
        args: dict[str, Spec] = {
            "date": ("date", start),
            "check": ("quote", "impact.probe.checks[0].check"),
            "service": ("text", "impact.probe.checks[0].service"),
            "times": ("plural", "impact.probe.outage_count", "plural.times"),
            "start": ("time", start),
            "end": ("time", end),
            "downtime": ("dur", "impact.probe.downtime"),
        }
        out.append(
            c.sentence(
                "summary.probe", args, records=recs(pm.impact.probe.records if pm.impact.probe else (), tz)
            )
        )
    else:
        key = "summary.checks" if f["incident"]["end"] else "summary.checks_ongoing"
        args = {"date": ("date", start), "start": ("time", start), "end": ("time", end)}
        out.append(c.sentence(key, args))
    crit = {
        "critical": ("num", "impact.critical_services"),
        "monitored": ("num", "impact.monitored_services"),
    }
    if f["impact"]["critical_domain"]:
        crit["where"] = where("impact.critical_domain")
        out.append(c.sentence("summary.critical_in", crit, records=recs(pm.impact.records, tz)))
    else:
        out.append(c.sentence("summary.critical", crit, records=recs(pm.impact.records, tz)))
    cause = f["cause"]
    if cause:
        args = {"what": cause_what(c, "cause")}
        cause_records = (
            [{"table": "changes", "change_id": cause["change_id"]}] if cause["change_id"] else []
        ) + recs((r for p in (pm.cause.evidence_for if pm.cause else ()) for r in p.records), tz)
        if cause["kind"] in ("maintenance", "provider_incident") and cause["end"]:
            args |= {"start": ("time", "cause.start"), "end": ("time", "cause.end")}
            out.append(c.sentence("summary.cause_window", args, records=cause_records))
        else:
            out.append(c.sentence("summary.cause", args, records=cause_records))
        for i, p in enumerate(cause["evidence_for"]):
            if p["code"] == "network_drop":
                pre = f"cause.evidence_for[{i}]"
                args = {
                    "metric": ("text", f"{pre}.metric"),
                    "expected": ("qty", f"{pre}.expected", f"{pre}.unit"),
                    "observed": ("qty", f"{pre}.observed", f"{pre}.unit"),
                }
                out.append(c.sentence("summary.network", args))
    restarts = f["reactions"]["by_kind"].get("restart", 0)
    if restarts:
        out.append(c.sentence("summary.restarts", {}, plural="reactions.by_kind.restart"))
    return section(c.cat, "summary", [block("paragraph", out)])


def _impact(c: Composer, pm: Postmortem) -> dict[str, Any]:
    f, tz = c.facts, c.tz
    imp = f["impact"]
    head = [
        c.sentence(
            "impact.services",
            {
                "affected": ("num", "impact.affected_services"),
                "critical": ("num", "impact.critical_services"),
                "monitored": ("num", "impact.monitored_services"),
            },
            records=recs(pm.impact.records[:1], tz),
        )
    ]
    if imp["critical_domain"]:
        args: dict[str, Spec] = {
            "where": where("impact.critical_domain"),
            "size": ("num", "impact.critical_domain.services"),
            "share": ("pct1", "impact.critical_domain.share_pct"),
        }
        head.append(c.sentence("impact.domain", args))
    if imp["probe"]:
        args = {
            "checks": ("quote", "impact.probe.checks[0].check"),
            "service": ("text", "impact.probe.checks[0].service"),
            "outages": ("plural", "impact.probe.outage_count", "plural.outages"),
            "start": ("time", "impact.probe.first_start"),
            "end": ("time", "impact.probe.last_end"),
            "downtime": ("dur", "impact.probe.downtime"),
        }
        head.append(
            c.sentence(
                "impact.probe", args, records=recs(pm.impact.probe.records if pm.impact.probe else (), tz)
            )
        )
    else:
        head.append(c.sentence("impact.no_probe"))
    for i, y in enumerate(imp["availability_ytd"]):
        pre = f"impact.availability_ytd[{i}]"
        args = {
            "check": ("quote", f"{pre}.check"),
            "service": ("text", f"{pre}.service"),
            "from": ("date", f"{pre}.from"),
            "before": ("pct", f"{pre}.before.percent"),
            "after": ("pct", f"{pre}.after.percent"),
            "outages": ("plural", f"{pre}.after.outage_count", "plural.outages"),
            "downtime": ("dur", f"{pre}.after.downtime"),
        }
        rec = {
            "table": "states",
            "service": y["service"],
            "check": y["check"],
            "from": y["from"],
            "to": y["after"]["to"],
        }
        head.append(c.sentence("impact.ytd", args, records=[rec]))
    signals = []
    for i, s in enumerate(imp["signals"]):
        pre = f"impact.signals[{i}]"
        args = {
            "metric": ("text", f"{pre}.metric"),
            "moves": ("term", f"{pre}.direction", "moves"),
            "services": ("plural", f"{pre}.services", "plural.services"),
            "expected": ("qty", f"{pre}.expected", f"{pre}.unit"),
            "observed": ("qty", f"{pre}.observed", f"{pre}.unit"),
        }
        rec = {"table": "metrics", "metric": s["metric"], "services": s["service_names"], "from": s["onset"]}
        key = "impact.signal_summed" if s["summed"] else "impact.signal_worst"
        signals.append(c.sentence(key, args, records=[rec]))
    worst = []
    for i, h in enumerate(pm.impact.worst):
        pre = f"impact.worst_hit[{i}]"
        args = {
            "service": ("text", f"{pre}.service"),
            "downtime": ("dur", f"{pre}.downtime"),
            "checks": ("names", f"{pre}.checks"),
        }
        worst.append(c.sentence("impact.worst", args, records=recs(h.records, tz, 10)))
    return section(
        c.cat,
        "impact",
        [
            block("paragraph", head),
            block("list", signals, c.sentence("impact.signals_intro")),
            block("list", worst, c.sentence("impact.worst_intro")),
        ],
    )


_EVENT_ARGS: dict[str, tuple[str, ...]] = {
    "notice_published": ("change_id", "title", "start", "end", "status"),
    "notice_updated": ("change_id", "title", "start", "end", "status"),
    "window_start": ("change_id", "title"),
    "window_end": ("change_id", "title"),
    "release": ("change_id", "title", "kind"),
    "first_anomaly": ("service", "metric", "direction", "others"),
    "first_failure": ("service", "check", "state"),
    "probe_down": ("service", "check", "outages"),
    "probe_up": ("service", "check", "outages"),
    "first_alert": ("service", "check", "state", "count"),
    "reaction": ("change_id", "kind", "title", "author"),
    "service_ok": ("service", "check"),
    "end": ("service", "check"),
    "end_metric": ("service", "metric"),
}
_HOW = {
    "title": "quote",
    "start": "time",
    "end": "time",
    "status": ("term", "status"),
    "kind": ("term", "change_kind"),
    "direction": ("term", "moves"),
    "check": "quote",
    "state": ("term", "state"),
}


def _timeline(c: Composer, pm: Postmortem) -> dict[str, Any]:
    f, tz = c.facts, c.tz
    onset_day = datetime.fromisoformat(f["incident"]["onset"]).astimezone(ZoneInfo(tz)).date()
    lines = []
    for i, e in enumerate(f["timeline"]):
        pre = f"timeline[{i}]"
        args: dict[str, Spec] = {}
        for name in _EVENT_ARGS.get(e["event"], ()):
            if e.get(name) is None:
                args[name] = ("lit", "")
                continue
            how = _HOW.get(name, "num" if isinstance(e[name], int) else "text")
            args[name] = (
                (how[0], f"{pre}.{name}", how[1]) if isinstance(how, tuple) else (how, f"{pre}.{name}")
            )
        event = e["event"]
        if event == "first_alert" and e.get("external"):
            event = "first_alert_probe"
        if event == "reaction" and e.get("author"):
            event = "reaction_by"
        if event == "end" and e.get("metric"):
            event = "end_metric"
            args = {name: ("text", f"{pre}.{name}") for name in _EVENT_ARGS[event]}
        count = {
            "probe_down": "outages",
            "probe_up": "outages",
            "first_anomaly": "others",
            "first_alert": "count",
        }
        if e["event"] in count:
            text, used = c.fill(f"timeline.{event}", args, plural=(f"{pre}.{count[e['event']]}", 0))
        else:
            text, used = c.fill(f"timeline.{event}", args)
        day = datetime.fromisoformat(e["at"]).astimezone(ZoneInfo(tz)).date()
        when: Spec = ("time", f"{pre}.at")
        if day != onset_day:
            when = (
                "phrase",
                "format.day_time",
                {"date": ("date", f"{pre}.at"), "time": ("time", f"{pre}.at")},
            )
        line = {"time": when, "what": ("lit", text, used), "source": ("text", f"{pre}.source")}
        lines.append(
            c.sentence(
                "timeline.line",
                line,
                records=[record_json(pm.timeline[i].record, tz)],
                sid=f"timeline.{e['event']}",
            )
        )
    return section(c.cat, "timeline", [block("list", lines)], zone=c.cat.zone(tz))


def team_sections(c: Composer, pm: Postmortem) -> list[dict[str, Any]]:
    return [
        _summary(c, pm),
        _impact(c, pm),
        _timeline(c, pm),
        cause_section(c, pm),
        ruled_out_section(c, pm),
        related_section(c, pm),
        helped_section(c, pm),
    ]


def title(c: Composer, audience: str) -> tuple[str, str]:
    start, end = window(c.facts)
    ongoing = not c.facts["impact"]["probe"] and not c.facts["incident"]["end"]
    key = ("title.team_ongoing" if ongoing else "title.team") if audience == "team" else "title.customers"
    text, _ = c.fill(key, {"date": ("date", start), "start": ("time", start), "end": ("time", end)})
    args: dict[str, Spec] = {
        "id": ("text", "incident.id"),
        "tz": ("lit", c.tz),
        "zone": ("lit", c.cat.zone(c.tz)),
    }
    sub, _ = c.fill("title.subtitle", args)
    return text, sub
