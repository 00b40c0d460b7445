"""Which reader reads which file: autodetection and ``--format``.

Readers are tried in the order of :data:`READER_MODULES`; the first whose
``sniff`` accepts the file reads it.  When none does, the error lists what
each one expected.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from whatchanged.engine.errors import ConfigError, InputError
from whatchanged.ingest.base import Reader

#: Reader modules, most specific first.  Each defines ``READER``.
READER_MODULES: tuple[str, ...] = (
    # inventory, metrics and check states (issue 2)
    "services_csv",
    "dependencies_csv",
    "prometheus_json",
    "prometheus_text",
    "nagios",
    "pingdom",
    # change events: deploys and maintenance notices (issue 3)
    "works",
    "ical",
    "feed",
    "statuspage",
    "pagerduty",
    "github_deploy",
    "datadog",
    "grafana",
    "git_log",
    "deploy_jsonl",
    "deploy_csv",
    "metrics_stacked",
    # generic tabular metrics last: they accept any CSV with a timestamp column
    "metrics_parquet",
    "metrics_csv",
)

SNIFF_BYTES = 8192


def readers() -> list[Reader]:
    out = []
    for name in READER_MODULES:
        module = importlib.import_module(f"whatchanged.ingest.{name}")
        out.append(module.READER)
    return out


def by_name(name: str) -> Reader:
    for reader in readers():
        if reader.name == name:
            return reader
    known = ", ".join(r.name for r in readers())
    raise ConfigError(f"--format: expected one of {known}, found {name!r}")


def detect(path: Path) -> Reader:
    """The reader for ``path``, or an InputError saying why none fits."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", file=str(path)) from None
    for reader in readers():
        if reader.sniff(path, head):
            return reader
    tried = "; ".join(f"{r.name} ({r.description})" for r in readers())
    raise InputError(
        "format not recognised; use --format to force one",
        file=str(path),
        expected=f"one of: {tried}",
        found=repr(head[:60].decode("utf-8", "replace")),
    )
