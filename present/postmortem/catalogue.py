"""The catalogues: one TOML file per language in ``present/postmortem/i18n/`` (``en.toml``,
``fr.toml``) holding every sentence and every convention (decimal sign, percent, times,
dates, durations, quotes, plurals).  A third language is a third file: :func:`languages`
lists the files, and a key missing from a file falls back to English.

Templates use ``{name}`` placeholders filled with already formatted values; a value is
never read as a template.  Plural entries are tables ``{one = "…", other = "…"}`` chosen
by ``[plural] one`` (the counts that take the singular: ``[1]`` in English, ``[0, 1]`` in
French).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from whatchanged.engine.errors import ConfigError

FOLDER = Path(__file__).resolve().parent / "i18n"
FALLBACK = "en"


def languages(folder: Path = FOLDER) -> tuple[str, ...]:
    """The languages with a catalogue file, sorted."""
    return tuple(sorted(p.stem for p in folder.glob("*.toml")))


@cache
def _read(path: Path, _mtime_ns: int) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not a valid TOML catalogue ({exc})") from None
    return data


def _load(lang: str, folder: Path) -> dict[str, Any]:
    path = folder / f"{lang}.toml"
    if not path.is_file():
        raise ConfigError(f"lang: expected one of {', '.join(languages(folder))}, found {lang!r}")
    return _read(path, path.stat().st_mtime_ns)


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def flat_keys(data: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Every leaf key of a catalogue, dotted (plural tables count as one leaf)."""
    out: set[str] = set()
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not {"one", "other"} >= set(v):
            out |= flat_keys(v, key + ".")
        else:
            out.add(key)
    return out


@dataclass(frozen=True)
class Catalogue:
    """The strings and conventions of one language (English behind it for missing keys)."""

    lang: str
    data: Mapping[str, Any]
    fallback: Mapping[str, Any]

    @classmethod
    def load(cls, lang: str, folder: Path = FOLDER) -> Catalogue:
        data = _load(lang, folder)
        fallback = _load(FALLBACK, FOLDER) if lang != FALLBACK or folder != FOLDER else data
        return cls(lang, data, fallback)

    def raw(self, key: str) -> Any:
        found = _lookup(self.data, key)
        if found is None:
            found = _lookup(self.fallback, key)
        if found is None:
            raise ConfigError(f"catalogue {self.lang}: no entry {key!r} (nor in {FALLBACK}.toml)")
        return found

    def has(self, key: str) -> bool:
        return _lookup(self.data, key) is not None or _lookup(self.fallback, key) is not None

    def text(self, key: str, **values: str) -> str:
        template = self.raw(key)
        if not isinstance(template, str):
            raise ConfigError(f"catalogue {self.lang}: {key!r} is not a string")
        return self._fill(key, template, values)

    def _fill(self, key: str, template: str, values: dict[str, str]) -> str:
        try:
            return template.format_map(values)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"catalogue {self.lang}: {key!r} = {template!r} cannot be filled ({type(exc).__name__}: {exc}); "
                f"its placeholders can be {', '.join('{' + v + '}' for v in sorted(values)) or 'none'}"
            ) from None

    def term(self, table: str, value: str) -> str:
        """The catalogue's word for a data value (a category, a kind, a status), else the value."""
        found = _lookup(self.data, f"{table}.{value}") or _lookup(self.fallback, f"{table}.{value}")
        return found if isinstance(found, str) else value

    def plural(self, key: str, n: int, **values: str) -> str:
        forms = self.raw(key)
        one = self.raw("plural.one")
        form = forms["one"] if isinstance(forms, Mapping) and n in one else forms["other"]
        return self._fill(key, str(form), {"n": self.number(n), **values})

    # -- numbers, times, durations --------------------------------------------------------
    def number(self, x: float, decimals: int | None = None) -> str:
        """``1002``, ``12,345`` / ``12 345`` (groups from 10 000), ``50.5`` / ``50,5``."""
        if decimals is None:  # as many decimals as the field holds (facts are stored rounded)
            shown = repr(float(x))
            decimals = 0 if float(x).is_integer() or "e" in shown else min(len(shown.partition(".")[2]), 3)
        text = f"{abs(x):.{decimals}f}"
        whole, _, frac = text.partition(".")
        if len(whole) > 4:
            group = str(self.raw("format.group"))
            parts: list[str] = []
            while whole:
                parts.insert(0, whole[-3:])
                whole = whole[:-3]
            whole = group.join(parts)
        out = whole + (str(self.raw("format.decimal")) + frac if frac else "")
        return ("-" if x < 0 else "") + out

    def percent(self, x: float) -> str:
        return self.text("format.percent", n=self.number(x, 2))

    def time(self, ts: datetime, tz: str) -> str:
        local = ts.astimezone(ZoneInfo(tz))
        return self.text("format.time", H=str(local.hour), HH=f"{local.hour:02d}", MM=f"{local.minute:02d}")

    def date(self, ts: datetime, tz: str) -> str:
        local = ts.astimezone(ZoneInfo(tz))
        weekdays: Sequence[str] = self.raw("format.weekdays")
        months: Sequence[str] = self.raw("format.months")
        return self.text(
            "format.date",
            weekday=weekdays[local.weekday()],
            d=str(self.raw("format.first_day"))
            if local.day == 1 and self.has("format.first_day")
            else str(local.day),
            month=months[local.month - 1],
            yyyy=str(local.year),
        )

    def duration(self, d: Mapping[str, int]) -> str:
        """A duration fact (:func:`duration_parts`) in words: ``45 s``, ``54 min``, ``10 h 11 min``."""
        h, m = d.get("hours", 0), d.get("minutes", 0)
        if not h and not m:
            return self.text("format.duration_s", s=self.number(d.get("seconds", 0)))
        if not h:
            return self.text("format.duration_min", m=self.number(m))
        if not m:
            return self.text("format.duration_h", h=self.number(h))
        return self.text("format.duration_hmin", h=self.number(h), mm=f"{m:02d}")

    def zone(self, tz: str) -> str:
        """The zone as people say it: ``Paris time`` / ``heure de Paris`` (``UTC`` as such)."""
        if tz.upper() in ("UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z"):
            return self.text("format.zone_utc")
        return self.text("format.zone_city", city=tz.rsplit("/", 1)[-1].replace("_", " "))

    def quote(self, text: str) -> str:
        return self.text("format.quote", s=text)

    def join(self, items: Sequence[str]) -> str:
        if not items:
            return ""
        if len(items) == 1:
            return items[0]
        return (
            str(self.raw("format.list_sep")).join(items[:-1]) + str(self.raw("format.list_and")) + items[-1]
        )


def duration_parts(seconds: float) -> dict[str, int]:
    """The duration fact the text shows: whole seconds, and the hours and minutes it is written
    with (under a minute: seconds only; else rounded to the minute)."""
    s = round(abs(seconds))
    if s < 60:
        return {"seconds": s, "hours": 0, "minutes": 0}
    hours, minutes = divmod(round(s / 60), 60)
    return {"seconds": s, "hours": hours, "minutes": minutes}
