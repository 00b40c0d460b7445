"""Pingdom export: ``checks.json`` beside one ``summary.outage.<id>.json`` per check.

``checks.json`` is the ``GET /checks`` response::

    {"checks": [{"id": 8812345, "name": "www-0001 https", "hostname": "www-0001.example.net",
                 "status": "up", "tags": [{"name": "svc-www-0001", "type": "u"}]}]}

``summary.outage.8812345.json`` is the ``GET /summary.outage/8812345`` response::

    {"summary": {"states": [{"status": "up", "timefrom": 1290000000, "timeto": 1290019380},
                            {"status": "down", "timefrom": 1290019380, "timeto": 1290019620}]}}

Each state interval becomes one ``states`` row at ``timefrom`` (Unix seconds,
UTC) with ``state`` ``up``/``down``/``unknown``, ``check`` = the check name and
``source`` ``pingdom``; the interval's end and length go to ``message``.
The service is the user tag ``svc-<name>`` when there is one, else the check
name.  The reader is started on ``checks.json`` and consumes the summary
files itself (they are its ``companions``); a check without a summary file
has no rows.  A summary file read alone — or naming a check id that is not in
``checks.json`` — is an error: the check names live in ``checks.json``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import STATES, TS
from whatchanged.engine.timerange import EARLIEST as EPOCH
from whatchanged.engine.timerange import OutOfRange
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.changes_common import parse_json

SOURCE = "pingdom"
STATES_ALLOWED = ("up", "down", "unknown")
SERVICE_TAG = "svc-"
_SUMMARY = re.compile(r"^summary\.outage\.(\d+)\.json$")


def _head(head: bytes) -> str:
    return head.decode("utf-8", "replace").lstrip("\ufeff").lstrip()


def sniff(path: Path, head: bytes) -> bool:
    text = _head(head)
    if not text.startswith("{"):
        return False
    if re.match(r'^\{\s*"checks"\s*:', text):
        return True
    return bool(_SUMMARY.match(path.name)) or bool(re.match(r'^\{\s*"summary"\s*:\s*\{\s*"states"', text))


def _load(path: Path) -> Any:
    try:
        return parse_json(path.read_text(encoding="utf-8-sig"), file=str(path))
    except UnicodeDecodeError as exc:
        raise InputError(
            "not valid JSON",
            file=str(path),
            line=getattr(exc, "lineno", None),
            expected="JSON",
            found=str(exc),
        ) from None
    except OSError as exc:
        raise InputError("cannot read file", file=str(path), found=exc.strerror) from None


def _is_checks(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return bool(re.match(r'^\{\s*"checks"\s*:', _head(fh.read(4096))))
    except OSError:
        return False


def _check_ids(path: Path) -> list[int]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
        return [int(c["id"]) for c in doc["checks"]]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return []  # read() says what is wrong with it


def companions(path: Path) -> list[Path]:
    """The summary files of the checks listed in ``checks.json``."""
    if not _is_checks(path):
        return []
    return [p for i in _check_ids(path) if (p := path.with_name(f"summary.outage.{i}.json")).is_file()]


def service_of(check: dict[str, Any]) -> str:
    for tag in check.get("tags") or []:
        name = str(tag.get("name", "")) if isinstance(tag, dict) else str(tag)
        kind = tag.get("type", "u") if isinstance(tag, dict) else "u"
        if name.startswith(SERVICE_TAG) and len(name) > len(SERVICE_TAG) and kind == "u":
            return name[len(SERVICE_TAG) :]
    return str(check["name"])


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    if not _is_checks(path):
        raise InputError(
            "a Pingdom summary.outage file cannot be read alone: the check names and services are in "
            "checks.json (GET /checks); ingest the export folder with checks.json beside the summary files",
            file=str(path),
            expected="checks.json beside it",
            found=path.name,
        )
    doc = _load(path)
    checks = doc.get("checks") if isinstance(doc, dict) else None
    if not isinstance(checks, list):
        raise InputError(
            "not a Pingdom checks list", file=str(path), field="checks", expected="a list", found=checks
        )
    cols: dict[str, list[object]] = {n: [] for n in STATES.names}
    for c, check in enumerate(checks):
        where = f"checks[{c}]"
        if not isinstance(check, dict) or not isinstance(check.get("id"), int) or not check.get("name"):
            ctx.reject(
                InputError(
                    "bad check",
                    file=str(path),
                    field=where,
                    expected="an object with 'id' and 'name'",
                    found=check,
                )
            )
            continue
        summary_path = path.with_name(f"summary.outage.{check['id']}.json")
        if not summary_path.is_file():
            continue
        service, name = service_of(check), str(check["name"])
        summary = _load(summary_path)
        states = summary.get("summary", {}).get("states") if isinstance(summary, dict) else None
        if not isinstance(states, list):
            ctx.reject(
                InputError(
                    f"not a Pingdom outage summary (check {check['id']} in {path.name})",
                    file=str(summary_path),
                    field="summary.states",
                    expected="a list of {status, timefrom, timeto}",
                    found=type(states).__name__,
                )
            )
            continue
        for s, st in enumerate(states):
            error = _bad_state(st)
            if error:
                ctx.reject(
                    InputError(
                        f"bad state interval of check {check['id']} (listed in {path.name})",
                        file=str(summary_path),
                        field=f"summary.states[{s}]",
                        expected=error,
                        found=st,
                    )
                )
                continue
            try:
                us = ctx.times.epoch_us(st["timefrom"])
                end_us = ctx.times.epoch_us(st["timeto"])
            except OutOfRange as exc:
                ctx.reject(
                    InputError(
                        f"time out of range in check {check['id']} (listed in {path.name})",
                        file=str(summary_path),
                        field=f"summary.states[{s}]",
                        expected=f"timefrom and timeto: {exc.expected}",
                        found=st,
                    )
                )
                continue
            t0, t1 = us // 1_000_000, end_us // 1_000_000
            end = (EPOCH + timedelta(microseconds=end_us)).isoformat().replace("+00:00", "Z")
            cols["ts"].append(us)
            cols["service"].append(service)
            cols["check"].append(name)
            cols["state"].append(st["status"])
            cols["state_type"].append(None)
            cols["source"].append(SOURCE)
            cols["message"].append(f"{st['status']} for {t1 - t0} s until {end} (check {check['id']})")
    arrays = [pa.array(cols["ts"], pa.int64()).cast(TS)] + [
        pa.array(cols[f.name], f.type) for f in STATES if f.name != "ts"
    ]
    return {"states": pa.Table.from_arrays(arrays, schema=STATES)}


def _bad_state(st: Any) -> str | None:
    if not isinstance(st, dict):
        return "an object {status, timefrom, timeto}"
    if st.get("status") not in STATES_ALLOWED:
        return "status " + " / ".join(STATES_ALLOWED)
    for key in ("timefrom", "timeto"):
        v = st.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            return f"'{key}' as Unix seconds"
    if st["timeto"] < st["timefrom"]:
        return "timeto not before timefrom"
    return None


READER = Reader(
    name="pingdom",
    description="Pingdom export: checks.json (GET /checks) beside summary.outage.<id>.json files",
    sniff=sniff,
    read=read,
    companions=companions,
)
