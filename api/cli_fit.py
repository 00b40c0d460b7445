"""``fit``: learn the ranking weights from labelled candidates, or from responders' verdicts.

``whatchanged fit LABELS`` fits on a labels file and saves (as before).
``whatchanged fit --from-feedback`` turns the verdicts in the ``feedback`` table
into labelled candidates (:mod:`whatchanged.engine.learn`), backtests the
fitted weights against the ones in use — on a time split of the verdicts and on
the seeded scenario suite — prints top-1 (and top-3) before and after, and
saves only if nothing got worse (``--force`` saves anyway).  A refusal exits
with status 1 and says what got worse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from whatchanged.api.cli_common import HomeOpt, JsonOpt, settings_from
from whatchanged.api.output import console, emit
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.warehouse import Warehouse


def _score(s: Any) -> dict[str, int]:
    return {"n": s.n, "top1": s.top1, "top3": s.top3}


def fit_from_feedback(
    home: Path, *, holdout: float, scenarios: list[str] | None, suite: bool, force: bool
) -> dict[str, Any]:
    """The backtest report (JSON-friendly); saves the fitted model when it is safe or forced."""
    from whatchanged.engine.learn import backtest, cases_from_feedback
    from whatchanged.engine.rank import load_model, save_model

    settings = settings_from(home)
    wh = Warehouse(settings.home)
    wh.require()
    con = wh.snapshot()
    try:
        cases, skipped = cases_from_feedback(con, settings=settings)
    finally:
        con.close()
    if not cases:
        raise ConfigError(
            "fit --from-feedback: no usable verdict in the feedback table "
            f"({len(skipped)} skipped{': ' + '; '.join(skipped) if skipped else ''}); "
            "post some with POST /api/v1/incidents/{id}/feedback"
        )
    suite_cases = None
    if suite:
        from whatchanged.data.suite import scenario_cases

        try:
            suite_cases = scenario_cases(scenarios, cache_dir=settings.home / "_cache")
        except KeyError as exc:
            raise ConfigError(f"--scenarios: {exc.args[0]}") from None
    bt = backtest(cases, load_model(settings.home), holdout=holdout, suite=suite_cases)
    saved = str(save_model(bt.fitted, settings.home)) if bt.decision.save or force else None
    split = bt.split
    return {
        "verdicts": len(cases),
        "skipped": skipped,
        "current": bt.current.source,
        "time_split": None
        if split is None
        else {
            "train": split.train,
            "test": split.test,
            "cut": split.cut.isoformat() if split.cut else None,
            "before": _score(split.before),
            "after": _score(split.after),
        },
        "suite": None
        if bt.suite_before is None or bt.suite_after is None
        else {"before": _score(bt.suite_before), "after": _score(bt.suite_after)},
        "worse": bt.decision.reasons,
        "saved": saved,
        "forced": saved is not None and not bt.decision.save,
        "weights": bt.fitted.weights,
    }


def _say(text: str) -> None:
    """One line, never wrapped (paths and times are copied from it)."""
    console.print(text, soft_wrap=True, highlight=False)


def render_report(r: dict[str, Any]) -> None:
    def frac(s: dict[str, int], k: str) -> str:
        return f"{s[k]}/{s['n']}"

    _say(f"verdicts: {r['verdicts']} usable, {len(r['skipped'])} skipped")
    for why in r["skipped"]:
        _say(f"  skipped: {why}")
    _say(f"weights in use: {r['current']}")
    ts = r["time_split"]
    if ts is None:
        _say("time split: too few verdicts to hold any out (need 2)")
    else:
        _say(
            f"time split: fitted on the {ts['train']} older verdicts, tested on the {ts['test']} newer "
            f"(from {ts['cut']})"
        )
        _say(f"newer verdicts  top-1  before {frac(ts['before'], 'top1')}  after {frac(ts['after'], 'top1')}")
    s = r["suite"]
    if s is None:
        _say("scenario suite: not run (--no-suite)")
    else:
        for k in ("top1", "top3"):
            _say(f"scenario suite  top-{k[-1]}  before {frac(s['before'], k)}  after {frac(s['after'], k)}")
    if r["saved"] and r["forced"]:
        _say(f"worse ({'; '.join(r['worse'])}), saved anyway (--force) to {r['saved']}")
    elif r["saved"]:
        _say(f"nothing got worse: saved fitted ranking weights to {r['saved']}")
    else:
        _say(f"refused: {'; '.join(r['worse'])} got worse; nothing saved (--force saves anyway)")


def cmd_fit(
    labels: Annotated[
        Path | None, typer.Argument(help="Labelled candidates (JSON list or CSV); or use --from-feedback.")
    ] = None,
    from_feedback: Annotated[
        bool,
        typer.Option(
            "--from-feedback",
            help="Learn from the verdicts in the feedback table; backtest and save only if nothing gets worse.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --from-feedback: save even if the backtest got worse.")
    ] = False,
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout",
            min=0.01,
            max=0.99,
            help="With --from-feedback: share of the newest verdicts held out.",
        ),
    ] = 0.33,
    scenarios: Annotated[
        str | None,
        typer.Option(
            "--scenarios",
            help="With --from-feedback: comma-separated scenarios to backtest on [default: all].",
        ),
    ] = None,
    suite: Annotated[
        bool, typer.Option("--suite/--no-suite", help="With --from-feedback: backtest on the scenario suite.")
    ] = True,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the ranking weights on labelled candidates or on responders' verdicts and save them in the warehouse."""
    if (labels is None) == (not from_feedback):
        raise ConfigError("fit: give a LABELS file or --from-feedback (one of them)")
    if labels is not None:
        from whatchanged.engine.rank import fit, load_labels, save_model

        path = save_model(fit(load_labels(labels)), settings_from(home).home)
        _say(f"saved fitted ranking weights to {path}")
        return
    names = [n.strip() for n in scenarios.split(",") if n.strip()] if scenarios else None
    report = fit_from_feedback(
        settings_from(home).home, holdout=holdout, scenarios=names, suite=suite, force=force
    )
    emit(report, as_json=as_json, render=render_report)
    if not report["saved"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("fit")(cmd_fit)
