"""Alertmanager webhook payload (version 4) → check states.

::

    {"version": "4", "status": "firing", "receiver": "whatchanged", "groupKey": "{}:{alertname=\\"Down\\"}",
     "alerts": [{"status": "firing", "labels": {"alertname": "Down", "service": "www-0001",
                 "severity": "critical"}, "annotations": {"summary": "www-0001 is down"},
                 "startsAt": "2026-12-04T19:23:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
                 "fingerprint": "c0ffee"}]}

Each alert becomes one ``states`` row: a firing alert at ``startsAt`` with state ``CRITICAL``
(``WARNING`` when its ``severity`` label is ``warning``/``warn``/``info``), a resolved one at
``endsAt`` with state ``OK``.  ``service`` is the first of the configured labels the alert
carries (default ``service``, then ``job``, then ``instance``), ``check`` the ``alertname``,
``source`` ``alertmanager``, ``message`` the summary (or description) annotation.  Alertmanager
re-sends a group on every ``group_interval``: the same alert maps to the same row, which the
warehouse stores once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from whatchanged.engine.errors import InputError
from whatchanged.engine.schema import STATES, conform

DEFAULT_SERVICE_LABELS = ("service", "job", "instance")
WARNING_SEVERITIES = {"warning", "warn", "info", "minor"}


def _time(text: Any, where: str) -> datetime:
    if not isinstance(text, str):
        raise InputError("bad time", field=where, expected="RFC 3339 text", found=text)
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    # Go writes nanoseconds; Python reads up to microseconds
    head, dot, rest = value.partition(".")
    if dot:
        n = len(rest) - len(rest.lstrip("0123456789"))  # the fraction's digits, not the offset's
        value = f"{head}.{rest[: min(n, 6)]}{rest[n:]}"
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InputError("bad time", field=where, expected="RFC 3339", found=text) from None
    if ts.tzinfo is None:
        raise InputError("time without an offset", field=where, expected="RFC 3339 with Z", found=text)
    return ts.astimezone(UTC)


def alert_rows(
    payload: dict[str, Any], *, service_labels: tuple[str, ...] = DEFAULT_SERVICE_LABELS
) -> list[dict[str, Any]]:
    """The ``states`` rows of one webhook payload (as dicts), in payload order."""
    rows = []
    for n, alert in enumerate(payload.get("alerts") or []):
        where = f"alerts[{n}]"
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        service = next((labels[k] for k in service_labels if labels.get(k)), None)
        if service is None:
            raise InputError(
                "alert without a label naming the service",
                field=f"{where}.labels",
                expected="one of " + ", ".join(repr(k) for k in service_labels),
                found=labels,
            )
        firing = alert.get("status") == "firing"
        if alert.get("status") not in ("firing", "resolved"):
            raise InputError(
                "bad status",
                field=f"{where}.status",
                expected="firing or resolved",
                found=alert.get("status"),
            )
        ts = _time(
            alert.get("startsAt") if firing else alert.get("endsAt"),
            f"{where}.{'startsAt' if firing else 'endsAt'}",
        )
        severity = labels.get("severity", "").lower()
        notes = alert.get("annotations") or {}
        message = notes.get("summary") or notes.get("description") or labels.get("alertname")
        rows.append(
            {
                "ts": ts,
                "service": service,
                "check": labels.get("alertname") or "alert",
                "state": ("WARNING" if severity in WARNING_SEVERITIES else "CRITICAL") if firing else "OK",
                "state_type": "HARD",
                "source": "alertmanager",
                "message": str(message)[:500] if message else None,
            }
        )
    return rows


def parse_payload(
    payload: dict[str, Any], *, service_labels: tuple[str, ...] = DEFAULT_SERVICE_LABELS
) -> pa.Table:
    """One webhook payload → ``states`` table."""
    rows = alert_rows(payload, service_labels=service_labels)
    table = pa.Table.from_pylist(rows, schema=STATES) if rows else STATES.empty_table()
    return conform("states", table, source="alertmanager webhook")
