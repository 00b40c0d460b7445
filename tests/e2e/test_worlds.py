"""The second scenario generator (``whatchanged.data.worlds``): a test of generalisation.

Each world's raw files are written to a temporary folder, ingested with the
real ``whatchanged ingest`` (webhook bodies are POSTed to a real
``whatchanged serve`` on loopback after the metrics are in), and each truth
is asked with the real ``whatchanged explain --at T --tz ZONE --json``.  The
answer must name the true cause first (class, and change id or component),
place the incident's onset within 2 minutes of the truth, and count the
outages the probes (or Nagios) saw.

The worlds were written without reading the ranking code.  Those the current
engine gets wrong are strict expected failures whose reason says what goes
wrong: when a fix makes one pass, the strict mark fails the suite and the
mark is removed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from whatchanged.data.world_run import Answer, describe, run_world
from whatchanged.data.worlds import WORLDS, all_truths, build

#: truth name → what the current engine gets wrong (issue #12)
WRONG: dict[str, str] = {}

TRUTHS = {t.name: (world, t) for world, t in all_truths()}
#: worlds run side by side (each is two or three CLI processes, mostly start-up time)
JOBS = int(os.environ.get("WHATCHANGED_WORLDS_JOBS", "2"))


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[list[Answer]]]]:
    """One run per world selected in this session, started at once on a small pool, in test order."""
    wanted: dict[str, None] = {}
    for item in request.session.items:
        params = getattr(item, "callspec", None)
        if (
            item.module is sys.modules[__name__]
            and params is not None
            and params.params.get("name") in TRUTHS
        ):
            wanted.setdefault(TRUTHS[params.params["name"]][0], None)
    pool = ThreadPoolExecutor(max_workers=max(1, JOBS))
    futures = {w: pool.submit(run_world, w, tmp_path_factory.mktemp(w)) for w in wanted}
    yield futures
    pool.shutdown(cancel_futures=True)


def _param(name: str) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=WRONG[name])] if name in WRONG else []
    return pytest.param(name, marks=marks, id=name)


def test_the_suite_has_at_least_twenty_truths_over_varied_worlds() -> None:
    assert len(TRUTHS) >= 20
    assert set(WRONG) <= set(TRUTHS)
    categories = {t.category for _, t in TRUTHS.values()}
    assert categories == {"hosting", "application_release", "external_maintenance", "unknown"}
    zones = {t.tz for _, t in TRUTHS.values()}
    assert {"UTC", "America/New_York", "Asia/Tokyo", "Europe/Paris"} <= zones


def test_worlds_are_deterministic() -> None:
    a, b = build("dst_autumn_paris_release"), build("dst_autumn_paris_release")
    assert a.files == b.files
    assert a.truths == b.truths
    assert build("host_dies_no_change").files != build("cancelled_maintenance_host_fails").files


@pytest.mark.parametrize("name", [_param(n) for n in sorted(TRUTHS)])
def test_world_answer(name: str, runs: dict[str, Future[list[Answer]]]) -> None:
    world, truth = TRUTHS[name]
    assert world in WORLDS
    answer = next(a for a in runs[world].result() if a.truth.name == name)
    line = describe(answer)
    assert answer.error is None, line
    top = answer.top
    assert top is not None, line
    assert top[0] == truth.category, line
    if truth.cause is not None:
        assert truth.accepts(top[1]), line
    assert answer.onset_ok, line
    assert answer.outages == truth.outages, line
