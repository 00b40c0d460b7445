"""The reference night written up for people, through the real command line: ``whatchanged
demo`` builds the warehouse from the generated inputs, then ``postmortem`` drafts the account
of 19:23 (and 18:43) and ``fate`` audits the inventory.

Expected values come from the generator's files (``services.csv``, ``.truth.json``, the works
page) and from the warehouse's rows, never from the code under test; each fact is asserted on
a field of the JSON form, not on the wording.  Every number of the Markdown must be a field of
the JSON form, and every number of a sentence a value of the fields it names.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyarrow as pa
import pytest

from tests.helpers import run_cli
from whatchanged.engine.warehouse import FEEDBACK, Warehouse
from whatchanged.present.postmortem.compose import get

TZ = "Europe/Paris"
LANGS = ("en", "fr")


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("night")
    home, inputs = root / "wh", root / "in"
    done = run_cli("demo", "--home", str(home), "--inputs", str(inputs), timeout=600)
    assert done.returncode == 0, done.stderr
    truth = json.loads((inputs / ".truth.json").read_text())
    return home, inputs, truth


def inventory(inputs: Path) -> list[dict[str, str]]:
    with open(inputs / "services.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def cli_json(home: Path, *args: str) -> Any:
    done = run_cli(*args, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_fate_finds_the_back_office_pair_in_one_datacenter(night: tuple[Path, Path, dict[str, Any]]) -> None:
    home, inputs, _ = night
    rows = inventory(inputs)
    by = {r["service"]: r for r in rows}
    group = by["bo-primary"]["redundancy_group"]
    d = cli_json(home, "fate", "--group", group)
    [g] = d["groups"]
    assert {m["service"] for m in g["members"]} == {
        r["service"] for r in rows if r["redundancy_group"] == group
    }
    dc = by["bo-primary"]["datacenter"]
    in_dc = sum(1 for r in rows if r["datacenter"] == dc)
    assert [(s["level"], s["name"], s["services"]) for s in g["shared"]] == [("datacenter", dc, in_dc)]
    # the largest domain is that datacenter; a maintenance on its switches reaches all it holds
    switches = {r["switch"] for r in rows if r["datacenter"] == dc}
    behind = sum(1 for r in rows if r["switch"] in switches)
    largest = d["largest"]
    assert (largest["level"], largest["name"]) == ("datacenter", dc)
    assert largest["switches"] == len(switches)
    assert largest["behind_switches"] == behind
    assert (d["services"], largest["services"], behind) == (len(rows), in_dc, in_dc)
    assert (len(rows), in_dc) == (1002, 945)  # the figures of the team's account


def test_fate_table_names_every_group(night: tuple[Path, Path, dict[str, Any]]) -> None:
    home, inputs, _ = night
    done = run_cli("fate", home=home, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    groups = {r["redundancy_group"] for r in inventory(inputs)} - {""}
    assert groups
    assert all(g in done.stdout for g in groups)
    assert "none: spread" in done.stdout  # dns and inbound mail sit in two datacenters
    unknown = run_cli("fate", "--group", "no-such-group", home=home)
    assert unknown.returncode == 2
    assert "no-such-group" in unknown.stderr
    assert "Traceback" not in unknown.stderr


# -- helpers -------------------------------------------------------------------------------------


def works(inputs: Path) -> dict[str, dict[str, str]]:
    """The works page's notices by id (``ovh:FS#…``, as the reader stores them)."""
    out = {}
    for block in (inputs / "travaux-ovh.works.txt").read_text().split("\n---\n"):
        lines = block.strip().splitlines()
        fs, _, title = lines[0].partition(" | ")
        rec = {"title": title}
        for line in lines[1:]:
            key, sep, value = line.partition(": ")
            if sep:
                rec[key] = value
        out[f"ovh:{fs}"] = rec
    return out


def local(iso: str) -> str:
    """``YYYY-MM-DD HH:MM`` of an ISO time, in the night's zone."""
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(TZ)).strftime("%Y-%m-%d %H:%M")


def postmortem(home: Path, *args: str, fmt: str = "json") -> Any:
    done = run_cli("postmortem", *args, "--tz", TZ, "--format", fmt, home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if fmt == "json" else done.stdout


@pytest.fixture(scope="module")
def drafts(night: tuple[Path, Path, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``postmortem --at 19:23 --tz Europe/Paris --lang <l> --format json`` for both languages."""
    home = night[0]
    return {lang: postmortem(home, "--at", "19:23", "--lang", lang) for lang in LANGS}


def sentences(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for sec in doc["sections"]:
        for b in sec["blocks"]:
            out += ([b["intro"]] if b.get("intro") else []) + b["sentences"]
    return out


# numbers as each language writes them: groups of three (from 10 000) and a decimal sign
NUMBER = {
    "en": (re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"), ",", "."),
    "fr": (re.compile(r"\d{1,3}(?:\u202f\d{3})+(?:,\d+)?|\d+(?:,\d+)?"), "\u202f", ","),
}
ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")


def numbers_in(text: str, lang: str) -> list[float]:
    pattern, group, decimal = NUMBER[lang]
    return [float(m.replace(group, "").replace(decimal, ".")) for m in pattern.findall(text)]


def values_of(node: Any) -> tuple[set[float], set[str]]:
    """The numbers a field holds (counts, duration parts, the parts of an ISO time) and its
    strings holding letters and digits (names, ids, titles, links: printed as they are)."""
    nums: set[float] = set()
    names: set[str] = set()
    if isinstance(node, bool) or node is None:
        pass
    elif isinstance(node, int | float):
        nums.add(float(node))
    elif isinstance(node, str):
        m = ISO.match(node)
        if m:
            nums |= {float(x) for x in m.groups()}
        elif re.search(r"\d", node) and re.search(r"[^\d\s.,:%-]", node):
            names.add(node)
    elif isinstance(node, dict):
        for v in node.values():
            n, s = values_of(v)
            nums |= n
            names |= s
    elif isinstance(node, list):
        for v in node:
            n, s = values_of(v)
            nums |= n
            names |= s
    return nums, names


def unexplained(text: str, lang: str, node: Any) -> list[float]:
    """Numbers of ``text`` that no value of ``node`` holds (names and ids taken out first)."""
    nums, names = values_of(node)
    text = re.sub(r"\\([\\`*_\[\]<>|])", r"\1", text)  # Markdown escapes
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    return [x for x in numbers_in(text, lang) if x not in nums]


# -- the acceptance facts, from the JSON form ----------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_1923_facts_are_fields_of_the_json_form(
    night: tuple[Path, Path, dict[str, Any]], drafts: dict[str, dict[str, Any]], lang: str
) -> None:
    home, inputs, truth = night
    doc = drafts[lang]
    f = doc["facts"]
    general = truth["general"]
    assert (doc["lang"], doc["tz"], doc["audience"]) == (lang, TZ, "team")
    # the same incident explain --at 19:23 names
    explained = json.loads(run_cli("explain", "--at", "19:23", "--tz", TZ, "--json", home=home).stdout)
    assert doc["incident_id"] == f["incident"]["id"] == explained["incident"]["id"]
    # 14 outages, 19:23–20:46, 54 min: what the external probe recorded
    probe = f["impact"]["probe"]
    assert probe["outage_count"] == general["outage_count"] == 14
    assert probe["downtime"]["seconds"] == general["downtime_s"]
    assert (probe["downtime"]["hours"], probe["downtime"]["minutes"]) == (0, general["downtime_s"] // 60)
    assert local(probe["first_start"]) == general["onset_local"]
    assert local(probe["last_end"])[-5:] == general["end_local"][-5:]
    assert [c["service"] for c in probe["checks"]] == [truth["probe_service"]]
    # ~30 CRITICAL of 1002 monitored
    assert f["impact"]["critical_services"] == general["critical_count"]
    assert sorted(f["impact"]["critical"]) == sorted(general["critical_services"])
    assert f["impact"]["monitored_services"] == truth["services"] == len(inventory(inputs))
    # the P19 maintenance, with the evidence for it
    cause = f["cause"]
    assert (cause["category"], cause["change_id"], cause["rank"]) == (
        "external_maintenance",
        general["change_id"],
        1,
    )
    notice = works(inputs)[general["change_id"]]
    assert cause["title"].endswith(notice["title"].split(":: ")[-1])
    assert (local(cause["start"]), local(cause["end"])) == (notice["Start"], notice["End"])
    assert cause["scope_domain"]["name"] == notice["Datacenter"]
    assert "window_covers_onset" in {p["code"] for p in cause["evidence_for"]}
    # the classes ruled out: the day's releases (with their count) and hosting
    ruled = {r["category"]: r for r in f["ruled_out"]}
    day = general["onset_local"][:10]
    with open(inputs / "deploys.csv", newline="") as fh:
        releases = [r for r in csv.DictReader(fh) if r["timestamp"].startswith(day)]
    assert ruled["application_release"]["that_day"] == len(releases) == 10
    assert ruled["hosting"]["critical"] == general["critical_count"]
    # 99.98 % year to date, after the night; planned maintenance included
    [ytd] = f["impact"]["availability_ytd"]
    assert ytd["after"]["percent"] == float(truth["ytd_availability_display"].rstrip("%")) == 99.98
    assert ytd["after"]["downtime"]["seconds"] == truth["ytd_downtime_s"]
    assert ytd["before"]["downtime"]["seconds"] == truth["ytd_downtime_s"] - general["downtime_s"]
    assert ytd["before"]["percent"] > ytd["after"]["percent"]
    assert ytd["planned_maintenance_included"]
    assert local(ytd["from"]) == "2010-01-01 00:00"
    # the 18:43 back-office incident is its own incident, linked
    bo = json.loads(run_cli("explain", "--at", "18:43", "--tz", TZ, "--json", home=home).stdout)["incident"]
    related = {r["id"]: r for r in f["related"]}
    assert bo["id"] in related
    assert bo["id"] != doc["incident_id"]
    linked = related[bo["id"]]
    assert local(linked["onset"]) == truth["backoffice"]["at_local"]
    assert (linked["top_cause"]["category"], linked["top_cause"]["component"]) == (
        truth["backoffice"]["category"],
        truth["backoffice"]["component"],
    )
    assert bo["id"] in linked["path"]
    assert f"lang={lang}" in linked["path"]


def test_what_would_have_helped_comes_from_the_data(
    night: tuple[Path, Path, dict[str, Any]], drafts: dict[str, dict[str, Any]]
) -> None:
    _, inputs, truth = night
    h = drafts["en"]["facts"]["helped"]
    rows = inventory(inputs)
    by = {r["service"]: r for r in rows}
    dc = works(inputs)[truth["general"]["change_id"]]["Datacenter"]
    # shared fate: the failed scope is the datacenter; the back-office pair sat inside it
    assert (h["failed_scope"]["level"], h["failed_scope"]["name"]) == ("datacenter", dc)
    assert h["failed_scope"]["services"] == sum(1 for r in rows if r["datacenter"] == dc) == 945
    groups = {g["name"]: set(g["members"]) for g in h["groups_inside"]}
    pair = by["bo-primary"]["redundancy_group"]
    assert groups[pair] == {"bo-primary", "bo-standby"}
    assert all(by[m]["datacenter"] == dc for members in groups.values() for m in members)
    # the notice was on record hours before the onset (its "Updated" time on the works page)
    notice = works(inputs)[truth["general"]["change_id"]]
    onset = datetime.fromisoformat(truth["general"]["at_local"]).replace(tzinfo=ZoneInfo(TZ))
    updated = datetime.fromisoformat(notice["Updated"]).replace(tzinfo=ZoneInfo(TZ))
    assert local(h["notice"]["at"]) == notice["Updated"]
    assert h["notice"]["lead"]["seconds"] == (onset - updated).total_seconds() > 0
    # the first alert is the probe's first outage; nothing moved strictly before it
    assert local(h["first_alert"]["at"]) == truth["general"]["onset_local"]
    assert h["signals_before_first_alert"] == []
    assert h["first_correct_cause"] is None  # no responder has confirmed it yet


def test_the_backoffice_draft_names_the_standby_that_did_not_take_over(
    night: tuple[Path, Path, dict[str, Any]],
) -> None:
    home, inputs, truth = night
    doc = postmortem(home, "--at", "18:43", "--lang", "fr")
    f = doc["facts"]
    assert (f["cause"]["category"], f["cause"]["component"]) == ("hosting", truth["backoffice"]["component"])
    assert f["impact"]["probe"] is None  # the public sites stayed up
    by = {r["service"]: r for r in inventory(inputs)}
    group = by["bo-primary"]["redundancy_group"]
    assert f["helped"]["standby"] == {"group": group, "services": ["bo-standby"]}
    assert f["helped"]["groups_inside"] == []  # the standby sat on another host
    # the latency and the mail queue moved before the first HARD alert
    assert {s["metric"] for s in f["helped"]["signals_before_first_alert"]} >= {"latency_ms"}
    assert any(r["top_cause"]["change_id"] == truth["general"]["change_id"] for r in f["related"])


# -- traceability ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_number_of_the_markdown_is_a_field_of_the_json_form(
    night: tuple[Path, Path, dict[str, Any]], drafts: dict[str, dict[str, Any]], lang: str
) -> None:
    home = night[0]
    md = postmortem(home, "--incident", drafts[lang]["incident_id"], "--lang", lang, fmt="md")
    assert md.count("\n## ") == 7
    missing = unexplained(md, lang, drafts[lang]["facts"])
    assert missing == [], f"numbers in the Markdown that are no field of the JSON form: {missing}"
    assert len(numbers_in(md, lang)) > 50  # the check has something to check


@pytest.mark.parametrize("lang", LANGS)
def test_every_sentence_names_the_fields_holding_its_numbers(
    drafts: dict[str, dict[str, Any]], lang: str
) -> None:
    doc = drafts[lang]
    for s in sentences(doc):
        values = [get(doc["facts"], path) for path in s["fields"]]  # every path resolves
        assert unexplained(s["text"], lang, values) == [], s
        if numbers_in(s["text"], lang):
            assert s["fields"], s
    lines = [
        s for sec in doc["sections"] if sec["id"] == "timeline" for b in sec["blocks"] for s in b["sentences"]
    ]
    assert len(lines) == len(doc["facts"]["timeline"]) >= 14
    assert all(s["records"] and s["records"][0]["table"] for s in lines)


def test_both_languages_hold_the_same_facts(drafts: dict[str, dict[str, Any]]) -> None:
    en, fr = (
        json.loads(json.dumps(drafts[lang]["facts"]).replace(f"lang={lang}", "lang=*")) for lang in LANGS
    )
    assert en == fr


def test_french_is_idiomatic(
    night: tuple[Path, Path, dict[str, Any]], drafts: dict[str, dict[str, Any]]
) -> None:
    md = postmortem(night[0], "--at", "19:23", "--lang", "fr", fmt="md")
    f = drafts["fr"]["facts"]
    assert "mercredi 17 novembre 2010" in md
    assert "Chronologie" in md
    assert "Pistes écartées" in md
    assert re.search(r"\b19\u00a0h\u00a023\b", md)
    assert re.search(r"\b20\u00a0h\u00a046\b", md)
    assert f"{f['impact']['probe']['downtime']['minutes']}\u00a0min" in md  # 54 min
    percent = f"{f['impact']['availability_ytd'][0]['after']['percent']:.2f}".replace(".", ",")
    assert re.search(percent + r"[\u202f\u00a0 ]%", md)  # 99,98 %
    assert "«\u00a0" in md
    assert "\u00a0: " in md
    for english in (" the ", " and ", " outage", " between ", "Summary", "Timeline", " min down"):
        assert english not in md, english
    en = postmortem(night[0], "--at", "19:23", "--lang", "en", fmt="md")
    assert "99.98%" in en
    assert "19:23" in en
    assert "54 min" in en


def test_a_third_language_is_a_file(night: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    """A catalogue dropped in a folder writes the whole draft: its own words where it has them,
    English for the rest, the same facts."""
    from whatchanged.engine.incidents import get_incident
    from whatchanged.engine.postmortem import build_postmortem
    from whatchanged.engine.settings import load_settings
    from whatchanged.present.postmortem import postmortem_document
    from whatchanged.present.postmortem.catalogue import FOLDER

    shutil.copy(FOLDER / "en.toml", tmp_path / "en.toml")
    (tmp_path / "de.toml").write_text(
        '[format]\ndecimal = ","\npercent = "{n} %"\nzone_city = "Ortszeit {city}"\n'
        '[section]\nsummary = "Zusammenfassung"\ntimeline = "Ablauf ({zone})"\n',
        encoding="utf-8",
    )
    home = night[0]
    settings = load_settings(home=home, tz=TZ)
    con = Warehouse(home).snapshot()
    try:
        incident = json.loads(run_cli("explain", "--at", "19:23", "--tz", TZ, "--json", home=home).stdout)[
            "incident"
        ]
        pm = build_postmortem(con, get_incident(con, incident["id"]), settings=settings)
    finally:
        con.close()
    de = postmortem_document(pm, lang="de", tz=TZ, folder=tmp_path)
    en = postmortem_document(pm, lang="en", tz=TZ)
    assert [s["title"] for s in de["sections"]][:3] == [
        "Zusammenfassung",
        "Impact",
        "Ablauf (Ortszeit Paris)",
    ]
    assert "99,98 %" in json.dumps([s["text"] for s in sentences(de)], ensure_ascii=False)
    strip = json.dumps(de["facts"]).replace("lang=de", "lang=*")
    assert strip == json.dumps(en["facts"]).replace("lang=en", "lang=*")


# -- customers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_customer_update_and_statuspage_body(night: tuple[Path, Path, dict[str, Any]], lang: str) -> None:
    home, _, truth = night
    doc = postmortem(home, "--at", "19:23", "--lang", lang, "--audience", "customers")
    assert doc["audience"] == "customers"
    assert [s["id"] for s in doc["sections"]] == [
        "customers_what",
        "customers_since",
        "customers_done",
        "customers_next",
    ]
    sp = doc["statuspage"]
    assert set(sp) == {"name", "status", "impact", "body", "request"}
    assert (sp["status"], sp["impact"]) == ("resolved", "major")  # over before the data ends; probe down
    assert sp["request"] == {
        "incident": {"name": sp["name"], "status": "resolved", "impact_override": "major", "body": sp["body"]}
    }
    assert sp["name"] == doc["title"]
    assert "\\" not in sp["body"]
    assert unexplained(sp["body"], lang, doc["facts"]) == []
    restarts = len(truth["general"]["reactions"])
    assert doc["facts"]["reactions"]["by_kind"]["restart"] == restarts
    md = postmortem(home, "--at", "19:23", "--lang", lang, "--audience", "customers", fmt="md")
    assert '"impact_override": "major"' in md


# -- feedback confirms the cause --------------------------------------------------------------------


def test_a_confirmed_cause_measures_how_soon_the_data_named_it(
    night: tuple[Path, Path, dict[str, Any]], drafts: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    home, inputs, truth = night
    copy = tmp_path / "wh"
    shutil.copytree(home, copy)
    incident = drafts["en"]["incident_id"]
    verdict = {
        "feedback_id": "f1",
        "incident_id": incident,
        "cause_change_id": truth["general"]["change_id"],
        "category": "external_maintenance",
        "comment": "the provider confirmed",
        "author": "alice",
        "created": datetime(2010, 11, 17, 21, 30, tzinfo=UTC),
    }
    Warehouse(copy).commit({"feedback": pa.Table.from_pylist([verdict], schema=FEEDBACK)})
    fc = postmortem(copy, "--incident", incident)["facts"]["helped"]["first_correct_cause"]
    assert fc["confirmed"]
    assert fc["author"] == "alice"
    notice = works(inputs)[truth["general"]["change_id"]]
    assert local(fc["known_at"]) == notice["Updated"]  # on record since its last update
    onset = datetime.fromisoformat(drafts["en"]["facts"]["incident"]["onset"])
    available = datetime.fromisoformat(fc["available_at"])
    assert available == max(datetime.fromisoformat(fc["visible_at"]), datetime.fromisoformat(fc["known_at"]))
    assert fc["after_onset"]["seconds"] == (available - onset).total_seconds()
    assert timedelta(0) <= available - onset <= timedelta(minutes=3)  # the probe's first outage
    # a verdict naming another change is not a confirmation
    other = {
        **verdict,
        "feedback_id": "f2",
        "cause_change_id": "REL-4146",
        "created": verdict["created"] + timedelta(hours=1),
    }
    Warehouse(copy).commit({"feedback": pa.Table.from_pylist([other], schema=FEEDBACK)})
    fc = postmortem(copy, "--incident", incident)["facts"]["helped"]["first_correct_cause"]
    assert not fc["confirmed"]
    assert fc["after_onset"] is None


# -- one core behind the CLI and the API --------------------------------------------------------------


def test_the_api_gives_the_cli_answer(
    night: tuple[Path, Path, dict[str, Any]], drafts: dict[str, dict[str, Any]]
) -> None:
    from tests.api.conftest import start_server
    from whatchanged.engine.settings import Settings

    home = night[0]
    server = start_server(Settings(home=home, tz="UTC"))
    try:
        incident = drafts["fr"]["incident_id"]
        url = f"{server.api}/incidents/{incident}/postmortem"
        with httpx.Client(timeout=120) as c:
            r = c.get(url, params={"lang": "fr", "tz": TZ})
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/json"
            assert r.json() == drafts["fr"]
            md = c.get(url, params={"lang": "fr", "tz": TZ, "format": "md"})
            assert md.headers["content-type"].startswith("text/markdown")
            cli = postmortem(home, "--incident", incident, "--lang", "fr", fmt="md")
            assert md.text == cli.replace("](/dashboards/", f"]({server.url}/dashboards/")
            page = c.get(url, params={"lang": "fr", "tz": TZ, "format": "html"})
            assert page.headers["content-type"].startswith("text/html")
            assert '<html lang="fr">' in page.text
            bad = c.get(url, params={"lang": "tlh"})
            assert bad.status_code == 422
            assert bad.headers["content-type"] == "application/problem+json"
    finally:
        server.stop()
