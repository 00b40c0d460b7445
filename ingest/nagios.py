"""Nagios / Icinga 1 log (``nagios.log``, ``icinga.log``): alerts and current states.

::

    [1290015780] CURRENT SERVICE STATE: bo-primary;HTTP;OK;HARD;1;HTTP OK: 200 in 0.12 s
    [1290015780] SERVICE ALERT: bo-primary;HTTP;CRITICAL;SOFT;1;connect to port 443 failed
    [1290015840] HOST ALERT: p19-sw-04;DOWN;HARD;3;PING CRITICAL - Packet loss = 100%
    [1290015900] SERVICE NOTIFICATION: oncall;bo-primary;HTTP;CRITICAL;notify-by-email;…

Read: ``SERVICE ALERT``, ``HOST ALERT``, ``CURRENT SERVICE STATE`` and
``CURRENT HOST STATE``.  The bracketed time is epoch seconds (UTC).
``states.service`` is the Nagios host name (hosts are named after our
inventory services), ``states.check`` is the Nagios service description,
``HOST`` for host alerts.  Host states map to check states: ``UP`` → ``OK``,
``DOWN`` → ``CRITICAL``, ``UNREACHABLE`` → ``CRITICAL`` (from where users
stand, a host behind a failed parent is just as unreachable); the original
state stays at the start of ``message`` (``host DOWN: …``).  ``state_type``
is ``HARD``/``SOFT``; ``source`` is ``nagios``.

Every other log line (notifications, external commands, log rotation,
flapping, …) is ignored; an alert line with missing fields, an unknown
state or a bad time is an error naming the line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import STATES, TS
from whatchanged.engine.timerange import OutOfRange, TimeRange
from whatchanged.ingest.base import ReadContext, Reader
from whatchanged.ingest.text import lines

SOURCE = "nagios"
HOST_CHECK = "HOST"
SERVICE_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
HOST_STATES = {"UP": "OK", "DOWN": "CRITICAL", "UNREACHABLE": "CRITICAL"}
STATE_TYPES = ("HARD", "SOFT")
_LINE = re.compile(r"^\[(?P<ts>[^\]]*)\]\s?(?P<text>.*)$")
_KINDS = ("SERVICE ALERT", "HOST ALERT", "CURRENT SERVICE STATE", "CURRENT HOST STATE")
_ALERT = re.compile(r"^(?P<kind>" + "|".join(_KINDS) + r"):\s*(?P<body>.*)$")
_LOOKS_LIKE = re.compile(r"^(SERVICE|HOST|CURRENT SERVICE|CURRENT HOST)\s+(ALERT|STATE)\b")


def sniff(_path: Path, head: bytes) -> bool:
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    for line in text.splitlines():
        if line.strip():
            return bool(re.match(r"^\[\d{9,11}\] [A-Z][A-Z ]+:", line))
    return False


def read(path: Path, ctx: ReadContext) -> dict[str, pa.Table]:
    file = str(path)
    cols: dict[str, list[object]] = {n: [] for n in STATES.names}
    for number, raw in lines(path, ctx, errors="replace"):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        row = _parse(line, file, number, ctx.times)
        if isinstance(row, InputError):
            ctx.reject(row)
            continue
        if row is None:
            continue
        for name, value in zip(STATES.names, row, strict=True):
            cols[name].append(value)
    arrays = [pa.array(cols["ts"], pa.int64()).cast(TS)] + [
        pa.array(cols[f.name], f.type) for f in STATES if f.name != "ts"
    ]
    return {"states": pa.Table.from_arrays(arrays, schema=STATES)}


def _parse(line: str, file: str, number: int, times: TimeRange) -> tuple[object, ...] | InputError | None:
    """One log line → a states row, None for a line we ignore, or the error."""
    m = _LINE.match(line)
    if not m:
        return InputError(
            "not a Nagios log line", file=file, line=number, expected="'[epoch] TEXT'", found=line[:80]
        )
    text = m.group("text")
    alert = _ALERT.match(text)
    if not alert:
        if _LOOKS_LIKE.match(text):
            return InputError(
                "malformed alert line",
                file=file,
                line=number,
                expected="'" + "', '".join(_KINDS) + "' followed by ': '",
                found=text[:80],
            )
        return None
    stamp = m.group("ts").strip()
    if not re.fullmatch(r"\d{1,11}", stamp):
        return InputError(
            "bad time", file=file, line=number, field="timestamp", expected="epoch seconds", found=stamp
        )
    try:
        us = times.epoch_us(int(stamp))
    except OutOfRange as exc:
        return InputError(
            "time out of range", file=file, line=number, field="timestamp", expected=exc.expected, found=stamp
        )
    kind, body = alert.group("kind"), alert.group("body")
    host_kind = "HOST" in kind
    n_fields = 5 if host_kind else 6
    fields = body.split(";", n_fields - 1)
    layout = (
        "host;STATE;HARD|SOFT;attempt;output" if host_kind else "host;service;STATE;HARD|SOFT;attempt;output"
    )
    if len(fields) < n_fields - 1:
        return InputError(
            f"{kind} with missing fields",
            file=file,
            line=number,
            expected=f"{n_fields} fields '{layout}'",
            found=f"{len(fields)} fields: {body[:80]}",
        )
    if len(fields) == n_fields - 1:  # no output text at all
        fields.append("")
    if host_kind:
        host, state, state_type, attempt, output = fields
        check = HOST_CHECK
    else:
        host, check, state, state_type, attempt, output = fields
    host, check, state, state_type = host.strip(), check.strip(), state.strip(), state_type.strip()
    if not host:
        return InputError(
            "empty host name", file=file, line=number, field="host", expected="a host", found=""
        )
    if not check:
        return InputError(
            "empty service description", file=file, line=number, field="service", expected="a name", found=""
        )
    allowed = tuple(HOST_STATES) if host_kind else SERVICE_STATES
    if state not in allowed:
        return InputError(
            f"unknown {'host' if host_kind else 'service'} state",
            file=file,
            line=number,
            field="state",
            expected=" or ".join(allowed),
            found=state,
        )
    if state_type not in STATE_TYPES:
        return InputError(
            "unknown state type",
            file=file,
            line=number,
            field="state_type",
            expected="HARD or SOFT",
            found=state_type,
        )
    if not attempt.strip().isdigit():
        return InputError(
            "bad attempt number",
            file=file,
            line=number,
            field="attempt",
            expected="an integer",
            found=attempt,
        )
    if host_kind:
        message = f"host {state}: {output}" if output else f"host {state}"
        state = HOST_STATES[state]
    else:
        message = output
    return (us, host, check, state, state_type, SOURCE, message or None)


READER = Reader(
    name="nagios",
    description="Nagios/Icinga log lines '[epoch] SERVICE ALERT: host;service;STATE;HARD;1;output'",
    sniff=sniff,
    read=read,
)
