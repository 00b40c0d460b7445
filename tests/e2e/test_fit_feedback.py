"""Learning from verdicts end to end: scenarios → warehouse → verdicts over HTTP → ``fit --from-feedback``.

Six seeded scenarios (``data/scenarios.py``) are ingested into one warehouse
through the real readers (their background release ids made unique, since each
scenario numbers its own from REL-1001).  Responders' verdicts are POSTed to a
real server (``POST /api/v1/incidents/{id}/feedback``), then the real CLI runs
``whatchanged fit --from-feedback`` on them:

* true verdicts: the printed before/after top-1 of the held-out newer verdicts
  and top-1/top-3 of the scenario suite are the figures of the backtest;
* verdicts that contradict the truth (each incident blamed on a wrong
  candidate, posted later so that they win): the fit makes the suite worse and
  is refused (exit 1, nothing saved, the reason printed) — and saved with
  ``--force``;
* ``explain --json`` then names the weights it used: the model file and its
  fit time (``"default"`` before).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import TOKENS, start_server
from tests.helpers import run_cli
from whatchanged.data.scenario_kit import ScenarioTruth
from whatchanged.data.scenarios import SCENARIOS, truths_of
from whatchanged.engine.settings import Settings
from whatchanged.engine.warehouse import Warehouse
from whatchanged.ingest.base import ReadContext
from whatchanged.ingest.pipeline import ingest

NAMES = (
    "bad_release",
    "maintenance_vs_nearby_release",
    "host_failure_no_change",
    "maintenance_overrun",
    "switch_failure",
    "release_then_rollback",
)
#: the backtest's suite: four scenarios (the whole suite takes ~40 s; the CLI caches it per home)
SUITE = "bad_release,host_failure_no_change,maintenance_overrun,switch_failure"
TZ = "Europe/Paris"
AUTH = {"Authorization": f"Bearer {TOKENS[0]}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ScenarioTruth]]:
    root = tmp_path_factory.mktemp("fit-feedback")
    wh = Warehouse(root / "warehouse")
    wh.init()
    truths: list[ScenarioTruth] = []
    for i, name in enumerate(NAMES, start=1):
        folder = root / "in" / name
        truths += truths_of(SCENARIOS[name](folder))
        deploys = folder / "deploys.csv"  # REL-1001… in every scenario: make them REL-<i>x001…
        deploys.write_text(re.sub(r"^REL-1(\d{3}),", rf"REL-{i}x\1,", deploys.read_text(), flags=re.M))
        ingest(wh, [folder], ReadContext(tz=TZ))
    return wh.home, truths


@pytest.fixture(scope="module")
def client(world: tuple[Path, list[ScenarioTruth]]) -> Iterator[httpx.Client]:
    home, _ = world
    live = start_server(Settings(home=home, tz="UTC", api_tokens=",".join(TOKENS)))
    try:
        with httpx.Client(base_url=live.api, timeout=120) as c:
            yield c
    finally:
        live.stop()


def _explain(client: httpx.Client, t: ScenarioTruth) -> dict[str, Any]:
    r = client.get("/explain", params={"at": t.at_local, "tz": t.tz})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _post(client: httpx.Client, incident_id: str, verdict: dict[str, str]) -> None:
    r = client.post(f"/incidents/{incident_id}/feedback", json=verdict, headers=AUTH)
    assert r.status_code == 201, r.text


def _true_verdict(t: ScenarioTruth) -> dict[str, str]:
    # a change by its id; a hosting cause by its class only (the best hosting candidate)
    return {"cause_change_id": t.change_id} if t.change_id else {"category": t.category}


def _wrong_verdict(body: dict[str, Any], t: ScenarioTruth) -> dict[str, str]:
    """Blame the incident on a candidate that is not the true cause (or on nothing)."""
    for c in body["causes"]:
        if c["category"] == "unknown" or c["category"] == t.category:
            continue
        return {"cause_change_id": c["change_id"]} if c["change_id"] else {"category": c["category"]}
    return {"category": "unknown"}  # its only candidate is the truth: say nothing explains it


def _fit(home: Path, *extra: str) -> tuple[int, str]:
    done = run_cli("fit", "--from-feedback", "--scenarios", SUITE, *extra, home=home)
    print(done.stdout, done.stderr)  # shown when the test fails
    return done.returncode, done.stdout + done.stderr


def done_explain(home: Path, t: ScenarioTruth) -> str:
    done = run_cli("explain", "--at", t.at_local, "--tz", t.tz, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _figures(out: str) -> dict[str, tuple[int, int, int]]:
    """``{"newer top-1": (before, after, n), "suite top-1": …, "suite top-3": …}`` from the printed lines."""
    found = {}
    for what, k, b, a, n in re.findall(
        r"^(newer verdicts|scenario suite)\s+top-(\d)\s+before (\d+)/\d+\s+after (\d+)/(\d+)$",
        out,
        flags=re.M,
    ):
        found[f"{what.split()[0]} top-{k}"] = (int(b), int(a), int(n))
    return found


def test_fit_from_feedback_backtests_refuses_worse_and_names_the_weights(
    world: tuple[Path, list[ScenarioTruth]], client: httpx.Client
) -> None:
    home, truths = world
    model = home / "model" / "rank.json"
    bodies = {t.name: _explain(client, t) for t in truths}
    for t in truths:
        body = bodies[t.name]
        assert body["incident"] is not None, t.name
        assert body["weights"] == {"source": "default", "fitted_at": None}
    first = bodies[truths[0].name]["incident"]["id"]
    assert client.get(f"/incidents/{first}").json()["weights"] == {"source": "default", "fitted_at": None}

    # nothing to learn from yet
    done = run_cli("fit", "--from-feedback", home=home)
    assert done.returncode == 2
    assert "no usable verdict in the feedback table" in done.stderr
    assert not model.exists()

    # 1. true verdicts, oldest first
    for t in truths:
        _post(client, bodies[t.name]["incident"]["id"], _true_verdict(t))
    code, out = _fit(home)
    figures = _figures(out)
    assert "verdicts: 6 usable, 0 skipped" in out, out
    assert "fitted on the 4 older verdicts, tested on the 2 newer" in out, out
    # the default weights get every truth right, and weights fitted on true verdicts (held to
    # the defaults, engine/learn.fit_towards) lose none of it: saved
    assert figures == {"newer top-1": (2, 2, 2), "scenario top-1": (4, 4, 4), "scenario top-3": (4, 4, 4)}, (
        out
    )
    assert code == 0, out
    assert f"nothing got worse: saved fitted ranking weights to {model}" in out, out
    assert json.loads(done_explain(home, truths[0]))["weights"]["source"] == str(model)
    model.unlink()

    # 2. verdicts that contradict the truth, posted later (the latest verdict per incident wins)
    for t in truths:
        _post(client, bodies[t.name]["incident"]["id"], _wrong_verdict(bodies[t.name], t))
    code, out = _fit(home)
    figures = _figures(out)
    assert code == 1, out
    assert figures["newer top-1"][0] == 0, out  # the default weights disagree with every wrong verdict
    assert figures["scenario top-1"][0] == 4, out
    assert figures["scenario top-1"][1] < 4, out
    assert re.search(r"^refused: .*scenario suite top-1 4/4 -> \d/4.* got worse; nothing saved", out, re.M), (
        out
    )
    assert not model.exists()

    # 3. --force saves it anyway, and says so
    code, out = _fit(home, "--force")
    assert code == 0, out
    assert f"saved anyway (--force) to {model}" in out, out
    saved = json.loads(model.read_text())
    assert saved["fitted_at"]
    assert set(saved["weights"]) >= {"application_release", "hosting"}

    # 4. explain names the weights it used (JSON field, and one line for people)
    t = truths[0]
    assert json.loads(done_explain(home, t))["weights"] == {
        "source": str(model),
        "fitted_at": saved["fitted_at"],
    }
    # the server answered this question before with the defaults; a new model is not a
    # warehouse commit, and its cached answer must not outlive it
    assert _explain(client, t)["weights"] == {"source": str(model), "fitted_at": saved["fitted_at"]}
    incident_id = bodies[t.name]["incident"]["id"]
    assert client.get(f"/incidents/{incident_id}").json()["weights"]["source"] == str(model)
    done = run_cli("explain", "--at", t.at_local, "--tz", t.tz, home=home)
    assert f"weights: {model} (fitted {saved['fitted_at']})" in done.stdout, done.stdout

    # the old form still works: fit LABELS
    labels = home.parent / "labels.json"
    labels.write_text(
        json.dumps(
            [
                {"category": "hosting", "is_cause": True, "features": {"time": 1, "hard": 1, "precision": 1}},
                {"category": "hosting", "is_cause": False, "features": {"time": 0.2}},
            ]
        )
    )
    done = run_cli("fit", str(labels), home=home)
    assert done.returncode == 0, done.stderr
    assert f"saved fitted ranking weights to {model}" in done.stdout, done.stderr
