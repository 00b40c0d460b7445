"""The team postmortem's reasoning sections: the cause with its evidence, the classes ruled
out, the related incidents and what would have helped (:mod:`.document` has the others).

Each evidence point or reason of the facts (``{"code", …values}``) becomes one sentence,
``point.<code>`` or ``ruled.<code>`` in the catalogue, its values formatted by their kind
(durations, times, counts, names).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from whatchanged.engine.postmortem.model import Postmortem
from whatchanged.present.postmortem.compose import Composer, Spec, block, cause_what, recs, section, where


def points(c: Composer, prefix: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One sentence per evidence point or reason at ``prefix[i]``."""
    out = []
    for i, p in enumerate(items):
        pre = f"{prefix}[{i}]"
        out.append(point_sentence(c, pre, p))
    return out


def point_sentence(c: Composer, pre: str, p: dict[str, Any], *, key_prefix: str = "point") -> dict[str, Any]:
    args: dict[str, Spec] = {}
    key = f"{key_prefix}.{p['code']}"
    for name, v in p.items():
        if name in ("code", "category", "best_score", "engine_reason") or v is None:
            continue
        path = f"{pre}.{name}"
        if isinstance(v, dict) and "seconds" in v:
            args[name] = ("dur", path)
        elif name in ("at", "start", "end", "onset", "first_at"):
            args[name] = ("time", path)
        elif name == "title":
            args[name] = ("quote", path)
        elif name == "level":
            args[name] = ("term", path, "level")
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int | float):
            args[name] = ("num", path)
        elif isinstance(v, list):
            args[name] = ("names", path)
        else:
            args[name] = ("text", path)
    if p.get("level") and p.get("name") and c.cat.has(key + "_in"):
        key += "_in"
        args["where"] = ("where", f"{pre}.level", f"{pre}.name")
    if "unit" in p:  # levels of a metric: with their unit
        for name in ("expected", "observed"):
            if name in p:
                args[name] = ("qty", f"{pre}.{name}", f"{pre}.unit")
    if p["code"] == "nearest_notice":
        args["side"] = ("lit", c.cat.text("side.after" if p["after"] else "side.before"), [f"{pre}.after"])
    if p["code"] == "releases_missed_affected":
        key += "_within" if p["within"] else "_none_within"
        args["nearest"] = (
            "phrase",
            "point.nearest_release" if p["hit"] else "point.nearest_release_unaffected",
            {k: args[k] for k in ("change_id", "title", "at", "lead", "reached", "hit")},
        )
    if p["code"] == "failed_first" and p.get("host"):
        key += "_host"
    return c.sentence(key, args)


def cause_section(c: Composer, _pm: Postmortem) -> dict[str, Any]:
    f = c.facts
    cause = f["cause"]
    if cause is None:
        return section(c.cat, "cause", [block("paragraph", [c.sentence("cause.none")])])
    head = [
        c.sentence(
            "cause.head",
            {"what": cause_what(c, "cause"), "score": ("num", "cause.score")},
            records=[{"table": "changes", "change_id": cause["change_id"]}] if cause["change_id"] else [],
        )
    ]
    pro = points(c, "cause.evidence_for", cause["evidence_for"])
    con = points(c, "cause.evidence_against", cause["evidence_against"])
    blocks = [
        block("paragraph", head),
        block("list", pro, c.sentence("cause.for")),
        block("list", con, c.sentence("cause.against"))
        if con
        else block("paragraph", [c.sentence("cause.nothing_against")]),
    ]
    runner = f["runner_up"]
    if runner:
        args: dict[str, Spec] = {"what": cause_what(c, "runner_up"), "score": ("num", "runner_up.score")}
        if runner["evidence_against"]:
            first = point_sentence(c, "runner_up.evidence_against[0]", runner["evidence_against"][0])
            args["against"] = ("lit", first["text"], first["fields"])
            blocks.append(block("paragraph", [c.sentence("cause.runner_up_against", args)]))
        else:
            blocks.append(block("paragraph", [c.sentence("cause.runner_up", args)]))
    return section(c.cat, "cause", blocks)


def ruled_out_section(c: Composer, pm: Postmortem) -> dict[str, Any]:
    items = []
    for i, r in enumerate(c.facts["ruled_out"]):
        reason = point_sentence(c, f"ruled_out[{i}]", r, key_prefix="ruled")
        args: dict[str, Spec] = {
            "category": ("term", f"ruled_out[{i}].category", "ruled_class"),
            "reason": ("lit", reason["text"], reason["fields"]),
        }
        items.append(c.sentence("ruled.item", args, records=recs(pm.ruled_out[i].reason.records, c.tz, 20)))
    if not items:
        return section(c.cat, "ruled_out", [block("paragraph", [c.sentence("ruled.none")])])
    return section(c.cat, "ruled_out", [block("list", items, c.sentence("ruled.intro"))])


def related_section(c: Composer, _pm: Postmortem) -> dict[str, Any]:
    items = []
    for i, r in enumerate(c.facts["related"]):
        pre = f"related[{i}]"
        args: dict[str, Spec] = {
            "id": ("text", f"{pre}.id"),
            "onset": ("time", f"{pre}.onset"),
            "critical": ("plural", f"{pre}.critical_services", "plural.critical"),
        }
        if r["end"]:
            args["end"] = ("time", f"{pre}.end")
        if r["top_cause"]:
            args["what"] = cause_what(c, f"{pre}.top_cause")
            args["score"] = ("num", f"{pre}.top_cause.score")
        key = "related.item" + ("" if r["end"] else "_ongoing") + ("" if r["top_cause"] else "_no_cause")
        link = {"href": r["path"], "text": c.cat.text("related.link")} if r["path"] else None
        items.append(c.sentence(key, args, records=[{"table": "incidents", "id": r["id"]}], link=link))
    if not items:
        return section(c.cat, "related", [block("paragraph", [c.sentence("related.none")])])
    return section(c.cat, "related", [block("list", items)])


def helped_section(c: Composer, pm: Postmortem) -> dict[str, Any]:
    f, tz = c.facts, c.tz
    h = f["helped"]
    out = []
    scope = h["failed_scope"]
    base: dict[str, Spec] = {
        "size": ("num", "helped.failed_scope.services"),
        "monitored": ("num", "impact.monitored_services"),
        "share": ("pct1", "helped.failed_scope.share_pct"),
    }
    if scope["level"]:
        base["where"] = where("helped.failed_scope")
        out.append(c.sentence("helped.scope_domain", base))
    else:
        out.append(c.sentence("helped.scope_services", base))
    if not h["groups_in_inventory"]:
        out.append(c.sentence("helped.no_groups"))
    elif h["groups_inside"]:
        members = [m for g in h["groups_inside"] for m in g["members"]]
        args: dict[str, Spec] = {
            "groups": (
                "lit",
                c.cat.join([g["name"] for g in h["groups_inside"]]),
                [f"helped.groups_inside[{i}].name" for i in range(len(h["groups_inside"]))],
            ),
            "members": (
                "lit",
                c.cat.join(members),
                [f"helped.groups_inside[{i}].members" for i in range(len(h["groups_inside"]))],
            ),
        }
        out.append(c.sentence("helped.groups_inside", args, records=recs(pm.helped.records, tz)))
    else:
        out.append(c.sentence("helped.no_group_inside"))
    if h["standby"]:
        args = {"services": ("names", "helped.standby.services"), "duration": ("dur", "incident.duration")}
        key = "helped.standby_group" if h["standby"]["group"] else "helped.standby_app"
        if h["standby"]["group"]:
            args["group"] = ("text", "helped.standby.group")
        out.append(c.sentence(key, args))
    if h["notice"]:
        args = {
            "id": ("text", "helped.notice.change_id"),
            "at": ("time", "helped.notice.at"),
            "lead": ("dur", "helped.notice.lead"),
        }
        if (
            datetime.fromisoformat(h["notice"]["at"]).astimezone(ZoneInfo(tz)).date()
            != datetime.fromisoformat(f["incident"]["onset"]).astimezone(ZoneInfo(tz)).date()
        ):
            args["at"] = (
                "phrase",
                "format.day_time",
                {"date": ("date", "helped.notice.at"), "time": ("time", "helped.notice.at")},
            )
        out.append(
            c.sentence("helped.notice_before" if h["notice"]["before_onset"] else "helped.notice_after", args)
        )
    elif f["cause"] and f["cause"]["kind"] in ("maintenance", "provider_incident"):
        out.append(c.sentence("helped.notice_undated", {"id": ("text", "cause.change_id")}))
    else:
        out.append(c.sentence("helped.no_notice"))
    alert = h["first_alert"]
    if alert is None:
        out.append(c.sentence("helped.no_alert"))
    else:
        args = {
            "check": ("quote", "helped.first_alert.check"),
            "service": ("text", "helped.first_alert.service"),
            "at": ("time", "helped.first_alert.at"),
        }
        if h["signals_before_first_alert"]:
            items = []
            fields: list[str] = []
            for i in range(len(h["signals_before_first_alert"])):
                pre = f"helped.signals_before_first_alert[{i}]"
                text, used = c.fill(
                    "helped.signal_item",
                    {
                        "metric": ("text", f"{pre}.metric"),
                        "services": ("plural", f"{pre}.services", "plural.services"),
                        "lead": ("dur", f"{pre}.lead"),
                    },
                )
                items.append(text)
                fields += used
            args["signals"] = ("lit", c.cat.join(items), fields)
            out.append(c.sentence("helped.signals_before", args))
        elif h["first_anomaly"]:
            args["first"] = ("time", "helped.first_anomaly")
            out.append(c.sentence("helped.no_signal_before", args))
        else:
            out.append(c.sentence("helped.no_signal_at_all", args))
    fc = h["first_correct_cause"]
    inc_id: dict[str, Spec] = {"id": ("text", "incident.id")}
    if fc is None:
        out.append(c.sentence("helped.unconfirmed", inc_id))
    elif fc["confirmed"]:
        args = {
            "after": ("dur", "helped.first_correct_cause.after_onset"),
            "available": ("time", "helped.first_correct_cause.available_at"),
        }
        key = "helped.confirmed_by" if fc["author"] else "helped.confirmed"
        if fc["author"]:
            args["author"] = ("text", "helped.first_correct_cause.author")
        out.append(
            c.sentence(
                key,
                args,
                records=recs([pm.helped.first_correct.record] if pm.helped.first_correct else [], tz),
            )
        )
    else:
        verdict = "verdict_change_id" if fc["verdict_change_id"] else "verdict_category"
        args = {"verdict": ("text", f"helped.first_correct_cause.{verdict}")}
        out.append(
            c.sentence(
                "helped.contradicted",
                args,
                records=recs([pm.helped.first_correct.record] if pm.helped.first_correct else [], tz),
            )
        )
    return section(c.cat, "helped", [block("list", out)])
