"""The postmortem catalogues: one TOML file per language, the same keys and placeholders in
each, and the conventions of each language (decimal sign, percent, 24-hour times, durations,
plurals).  A third language is a file: dropped in a folder, it is listed and used, English
standing in for what it does not translate yet."""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from whatchanged.engine.errors import ConfigError
from whatchanged.present.postmortem.catalogue import FOLDER, Catalogue, duration_parts, flat_keys, languages
from whatchanged.present.postmortem.compose import get

FIELD = re.compile(r"\{(\w+)")


def _load(lang: str) -> dict[str, Any]:
    with open(FOLDER / f"{lang}.toml", "rb") as fh:
        return tomllib.load(fh)


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, Mapping):
        return set().union(*(_placeholders(v) for v in value.values()))
    if isinstance(value, list):
        return set()
    return set(FIELD.findall(str(value)))


def test_english_and_french_are_the_two_catalogues() -> None:
    assert languages() == ("en", "fr")
    assert {p.name for p in FOLDER.iterdir()} == {"en.toml", "fr.toml"}


def test_every_key_in_both_with_the_same_placeholders() -> None:
    en, fr = _load("en"), _load("fr")
    assert flat_keys(en) == flat_keys(fr)
    for key in sorted(flat_keys(en)):
        if key.startswith(("format.", "plural.one", "meta.")):
            continue
        a, b = get(en, key), get(fr, key)
        assert _placeholders(a) == _placeholders(b), key


def test_no_english_left_in_french() -> None:
    fr = _load("fr")
    texts = [str(get(fr, k)) for k in flat_keys(fr) if not k.startswith(("format.", "meta."))]
    for word in (" the ", " and ", " of the ", " was ", " were "):
        assert not [t for t in texts if word in f" {t} "], word
    assert any("é" in t for t in texts)
    assert any("à" in t for t in texts)


def test_numbers_percent_times_and_durations() -> None:
    en, fr = Catalogue.load("en"), Catalogue.load("fr")
    assert (en.percent(99.98), fr.percent(99.98)) == ("99.98%", "99,98\u202f%")
    assert (en.number(1002), fr.number(1002)) == ("1002", "1002")
    assert (en.number(12345), fr.number(12345)) == ("12,345", "12\u202f345")
    assert (en.number(0.93), fr.number(0.93), fr.number(94.3)) == ("0.93", "0,93", "94,3")
    onset = datetime(2010, 11, 17, 18, 23, tzinfo=UTC)
    assert (en.time(onset, "Europe/Paris"), fr.time(onset, "Europe/Paris")) == ("19:23", "19\u00a0h\u00a023")
    assert fr.time(datetime(2010, 11, 17, 8, 5, tzinfo=UTC), "Europe/Paris") == "9\u00a0h\u00a005"
    assert en.date(onset, "Europe/Paris") == "Wednesday 17 November 2010"
    assert fr.date(onset, "Europe/Paris") == "mercredi 17 novembre 2010"
    assert fr.date(datetime(2009, 12, 31, 23, tzinfo=UTC), "Europe/Paris") == "vendredi 1er janvier 2010"
    assert (en.duration(duration_parts(3240)), fr.duration(duration_parts(3240))) == ("54 min", "54\u00a0min")
    assert en.duration(duration_parts(36660)) == "10 h 11 min"
    assert fr.duration(duration_parts(36660)) == "10\u00a0h\u00a011"
    assert en.duration(duration_parts(45)) == "45 s"
    assert en.duration(duration_parts(7200)) == "2 h"
    assert duration_parts(3240) == {"seconds": 3240, "hours": 0, "minutes": 54}


def test_plurals_follow_each_language() -> None:
    en, fr = Catalogue.load("en"), Catalogue.load("fr")
    assert [en.plural("plural.outages", n) for n in (0, 1, 14)] == ["0 outages", "1 outage", "14 outages"]
    assert [fr.plural("plural.outages", n) for n in (0, 1, 14)] == ["0 coupure", "1 coupure", "14 coupures"]
    assert en.plural("plural.times", 1) == "once"
    assert fr.plural("plural.times", 14) == "14 reprises"


def test_a_third_language_is_a_file(tmp_path: Path) -> None:
    shutil.copy(FOLDER / "en.toml", tmp_path / "en.toml")
    (tmp_path / "de.toml").write_text(
        '[format]\ndecimal = ","\npercent = "{n} %"\n[section]\nsummary = "Zusammenfassung"\n',
        encoding="utf-8",
    )
    assert languages(tmp_path) == ("de", "en")
    de = Catalogue.load("de", tmp_path)
    assert de.text("section.summary") == "Zusammenfassung"
    assert de.percent(99.98) == "99,98 %"
    assert de.text("section.impact") == "Impact"  # not translated yet: English
    with pytest.raises(ConfigError, match=r"lang: expected one of de, en, found 'xx'"):
        Catalogue.load("xx", tmp_path)


def test_a_missing_key_or_placeholder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no entry .summary\.nothing."):
        Catalogue.load("fr").text("summary.nothing")
    (tmp_path / "de.toml").write_text('[section]\ntimeline = "Ablauf ({tz})"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'section\.timeline'.*KeyError.*placeholders can be \{zone\}"):
        Catalogue.load("de", tmp_path).text("section.timeline", zone="Paris time")
