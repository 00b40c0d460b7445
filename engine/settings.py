"""Settings: one frozen dataclass, built by :func:`load_settings`.

Every field can be set from the environment with the ``WHATCHANGED_`` prefix
(``WHATCHANGED_HOME``, ``WHATCHANGED_TZ`` …) or passed explicitly.  Nothing
in the library reads the environment except this function.

A plain dataclass, not a settings library: a responder's ``explain`` reads it
in a new process, and the validation it needs (a zone name, a few lower
bounds, types from environment strings) is a few lines.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from whatchanged.engine.errors import ConfigError
from whatchanged.engine.timeparse import zone

ENV_PREFIX = "WHATCHANGED_"
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def _doc(description: str, *, ge: int | None = None) -> dict[str, Any]:
    return {"description": description, "ge": ge}


@dataclass(frozen=True)
class Settings:
    """Configuration of one whatchanged process."""

    home: Path = field(
        default=Path("data/warehouse"),
        metadata=_doc("Warehouse folder (Parquet files and commit manifests)."),
    )
    tz: str = field(
        default="UTC",
        metadata=_doc("Time zone assumed for inputs without an offset and used for display."),
    )
    api_tokens: str = field(
        default="",
        metadata=_doc("Comma-separated bearer tokens allowed to write over HTTP; empty refuses writes."),
    )
    read_tokens: str = field(
        default="",
        metadata=_doc(
            "Comma-separated bearer tokens required to read over HTTP (API, dashboards, "
            "/metrics); empty: reads are open. Write tokens are accepted for reads too."
        ),
    )
    max_body_bytes: int = field(
        default=1024 * 1024, metadata=_doc("Largest HTTP request body accepted, in bytes.", ge=1)
    )
    deploy_lookback_s: int = field(
        default=7200,
        metadata=_doc("How far before an onset a deploy can still be a cause, in seconds.", ge=0),
    )
    allow_future: bool = field(
        default=False,
        metadata=_doc(
            "Accept observed times more than a day ahead of this machine's clock "
            "(HTTP writes; `whatchanged ingest --allow-future` for one run)."
        ),
    )
    max_line_bytes: int = field(
        default=1 << 20,
        metadata=_doc(
            "Longest line a line-based reader (CSV, logs, JSON Lines) accepts, in bytes; "
            "a longer one fails the file at once.",
            ge=1024,
        ),
    )
    max_field_chars: int = field(
        default=128 * 1024, metadata=_doc("Longest CSV field accepted, in characters.", ge=64)
    )
    ingest_batch_rows: int = field(
        default=1_000_000,
        metadata=_doc(
            "Rows per batch when ingest streams a metrics CSV or Parquet file; about eight "
            "batches of metrics or check states are held before a day is written.",
            ge=1,
        ),
    )
    aliases_file: Path | None = field(
        default=None,
        metadata=_doc(
            "YAML file mapping provider names to inventory names (see docs/changes.md, 'Aliases file')."
        ),
    )

    #: name → description, for the docs and ``--help`` texts
    descriptions: ClassVar[dict[str, str]]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            fixed = _coerce(f.name, f.type, value)
            ge = f.metadata.get("ge")
            if ge is not None and fixed < ge:
                raise ConfigError(
                    f"setting '{f.name}': expected an integer of at least {ge}, found {value!r}"
                )
            if fixed is not value:
                object.__setattr__(self, f.name, fixed)
        zone(self.tz, option="setting 'tz'")

    @property
    def token_list(self) -> list[str]:
        return [t.strip() for t in self.api_tokens.split(",") if t.strip()]

    @property
    def read_token_list(self) -> list[str]:
        return [t.strip() for t in self.read_tokens.split(",") if t.strip()]

    def model_copy(self, *, update: Mapping[str, Any]) -> Settings:
        """These settings with ``update`` applied (validated again)."""
        return dataclasses.replace(self, **update)


Settings.descriptions = {f.name: f.metadata["description"] for f in dataclasses.fields(Settings)}


def _coerce(name: str, kind: object, value: Any) -> Any:
    """``value`` (given, or a string from the environment) as the field's type."""
    kind = str(kind)
    bad = ConfigError(f"setting '{name}': expected {_expected(kind)}, found {value!r}")
    if value is None:
        if "None" in kind:
            return None
        raise bad
    if kind.startswith("Path"):
        if isinstance(value, Path):
            return value
        if isinstance(value, str) and value and "\x00" not in value:
            return Path(value)
        raise bad
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if kind == "int":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if not isinstance(value, str):
        raise bad
    return value


def _expected(kind: str) -> str:
    return {"bool": "true or false", "int": "an integer", "str": "a text"}.get(kind, "a path")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, then ``overrides`` (None values ignored)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    given: dict[str, Any] = {}
    env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
    for name in names:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            given[name] = raw
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in names:
            raise ConfigError(
                f"setting '{key}': unknown setting (expected one of {', '.join(sorted(names))})"
            )
        given[key] = value
    return Settings(**given)
