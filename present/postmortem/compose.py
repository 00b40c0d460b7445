"""Sentences from facts: every value of a sentence is read from a field of the ``facts``
(by its path, ``impact.probe.outage_count``) and formatted by the language's catalogue, and
the sentence lists those paths (``fields``) and the warehouse rows behind them
(``records``).  The text cannot hold a figure that is not a field: it has nowhere else to
come from.

An argument is a tuple ``(how, path, …)``:

======================  ==================================================================
``("text", p)``         the value as it is (a name, an id)
``("quote", p)``        in the language's quotation marks (a title, a check name)
``("num", p)``          a number (decimal sign of the language; groups from 10 000)
``("pct", p)``          a percentage with two decimals (``99.98%``, ``99,98 %``)
``("pct1", p)``         a percentage with one decimal
``("time", p)``         the wall time of an ISO 8601 field in the zone (``19:23``, ``19 h 23``)
``("date", p)``         its date (``Wednesday 17 November 2010``)
``("dur", p)``          a duration fact (``54 min``, ``10 h 11 min``)
``("term", p, table)``  the catalogue's word for the value (``[table] value = "…"``)
``("plural", p, key)``  a count with its noun (``14 outages``, ``1 outage``)
``("names", p)``        a list of names joined (``a, b and c``)
``("phrase", key, {})`` a sub-template with its own arguments
``("where", lvl, name)``  a failure domain: ``[where] <level>`` with the name
``("qty", p, unit)``    a number and the unit at path ``unit`` (``50 Mbit/s``)
``("lit", text)``       literal text already formatted from fields given elsewhere
======================  ==================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from whatchanged.engine.postmortem.model import Record
from whatchanged.present.postmortem.catalogue import Catalogue
from whatchanged.present.postmortem.facts import record_json

Spec = tuple[Any, ...]
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def get(facts: Any, path: str) -> Any:
    """The value at ``path`` (``a.b[2].c``) in ``facts``; a KeyError names the path."""
    node = facts
    for name, index in _PART.findall(path):
        try:
            node = node[int(index)] if index else node[name]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"facts have no field {path!r}") from None
    return node


class Composer:
    """Builds the sentences of one document in one language over one ``facts`` dict."""

    def __init__(self, cat: Catalogue, facts: Mapping[str, Any], tz: str) -> None:
        self.cat = cat
        self.facts = facts
        self.tz = tz

    def value(self, path: str) -> Any:
        return get(self.facts, path)

    def arg(self, spec: Spec) -> tuple[str, list[str]]:
        how = spec[0]
        cat = self.cat
        if how == "lit":
            return str(spec[1]), list(spec[2]) if len(spec) > 2 else []
        if how == "phrase":
            return self.fill(spec[1], spec[2])
        if how == "qty":  # a number with the unit at another path ("50 Mbit/s"; no unit: "455")
            number, unit = cat.number(self.value(spec[1])), str(self.value(spec[2]) or "")
            text = cat.text("format.quantity", v=number, unit=unit) if unit else number
            return text, [spec[1], spec[2]]
        if how == "where":  # a domain by its level and name: "in datacenter P19"
            text, used = self.fill(f"where.{self.value(spec[1])}", {"name": ("text", spec[2])})
            return text, [spec[1], *used]
        path = spec[1]
        v = self.value(path)
        if how == "text":
            out = "" if v is None else str(v)
        elif how == "quote":
            out = cat.quote(str(v))
        elif how == "num":
            out = cat.number(v)
        elif how == "pct":
            out = cat.percent(v)
        elif how == "pct1":
            out = cat.text("format.percent", n=cat.number(v, 1))
        elif how == "time":
            out = cat.time(datetime.fromisoformat(v), self.tz)
        elif how == "date":
            out = cat.date(datetime.fromisoformat(v), self.tz)
        elif how == "dur":
            out = cat.duration(v)
        elif how == "term":
            out = cat.term(spec[2], str(v))
        elif how == "plural":
            out = cat.plural(spec[2], int(v))
        elif how == "names":
            out = cat.join([str(x) for x in v])
        else:  # pragma: no cover - a typo in this package
            raise ValueError(f"unknown argument kind {how!r}")
        return out, [path]

    def fill(
        self, key: str, args: Mapping[str, Spec], *, plural: tuple[str, int] | None = None
    ) -> tuple[str, list[str]]:
        """The template ``key`` with ``args`` (``plural``: a plural entry and its count's path)."""
        texts: dict[str, str] = {}
        fields: list[str] = []
        for name, spec in args.items():
            text, used = self.arg(spec)
            texts[name] = text
            fields += used
        if plural is not None:
            path, _ = plural
            fields.append(path)
            return self.cat.plural(key, int(self.value(path)), **texts), fields
        return self.cat.text(key, **texts), fields

    def sentence(
        self,
        key: str,
        args: Mapping[str, Spec] | None = None,
        *,
        records: Sequence[Mapping[str, Any]] = (),
        plural: str | None = None,
        sid: str | None = None,
        link: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``{"id", "text", "fields", "records"}`` (and ``link``: ``{"href", "text"}``)."""
        text, fields = self.fill(key, args or {}, plural=(plural, 0) if plural else None)
        out: dict[str, Any] = {
            "id": sid or key,
            "text": text,
            "fields": list(dict.fromkeys(fields)),
            "records": list(records),
        }
        if link is not None:
            out["link"] = dict(link)
        return out


def block(
    style: str, sentences: Sequence[dict[str, Any]], intro: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A paragraph or a list of sentences (``intro``: a sentence leading a list)."""
    out: dict[str, Any] = {"style": style, "sentences": list(sentences)}
    if intro is not None:
        out["intro"] = intro
    return out


def section(cat: Catalogue, sid: str, blocks: Sequence[dict[str, Any]], **title: str) -> dict[str, Any]:
    return {
        "id": sid,
        "title": cat.text(f"section.{sid}", **title),
        "blocks": [b for b in blocks if b["sentences"]],
    }


def where(prefix: str) -> Spec:
    """``in datacenter P19`` / ``dans le datacenter P19``: the domain whose ``level`` and
    ``name`` are the fields under ``prefix``."""
    return ("where", f"{prefix}.level", f"{prefix}.name")


def recs(records: Any, tz: str, limit: int = 60) -> list[dict[str, Any]]:
    """The JSON of ``records`` (at most ``limit``)."""
    rs: list[Record] = list(records)
    return [record_json(r, tz) for r in rs[:limit]]


def cause_what(c: Composer, prefix: str) -> Spec:
    """The cause at ``prefix`` in plain words (a phrase)."""
    d = c.value(prefix)
    cat = d["category"]
    if d.get("change_id"):
        key = f"cause_what.{cat}" if cat != "hosting" else "cause_what.hosting_change"
        return ("phrase", key, {"id": ("text", f"{prefix}.change_id"), "title": ("quote", f"{prefix}.title")})
    if d.get("component"):
        if cat == "hosting" and d.get("level") not in (None, "service"):
            return (
                "phrase",
                "cause_what.hosting_in",
                {"where": ("where", f"{prefix}.level", f"{prefix}.component")},
            )
        key = "cause_what.hosting" if cat == "hosting" else "cause_what.origin"
        return ("phrase", key, {"component": ("text", f"{prefix}.component")})
    return ("phrase", "cause_what.unknown", {})
