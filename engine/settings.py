"""Settings: one pydantic-settings class, built by :func:`load_settings`.

Every field can be set from the environment with the ``WHATCHANGED_`` prefix
(``WHATCHANGED_HOME``, ``WHATCHANGED_TZ`` …) or passed explicitly.  Nothing
in the library reads the environment except this function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from whatchanged.engine.errors import ConfigError


class Settings(BaseSettings):
    """Configuration of one whatchanged process."""

    model_config = SettingsConfigDict(env_prefix="WHATCHANGED_", extra="forbid")

    home: Path = Field(
        default=Path("data/warehouse"),
        description="Warehouse folder (Parquet files and commit manifests).",
    )
    tz: str = Field(
        default="UTC",
        description="Time zone assumed for inputs without an offset and used for display.",
    )
    api_tokens: str = Field(
        default="",
        description="Comma-separated bearer tokens allowed to write over HTTP; empty refuses writes.",
    )
    read_tokens: str = Field(
        default="",
        description="Comma-separated bearer tokens required to read over HTTP (API, dashboards, "
        "/metrics); empty: reads are open. Write tokens are accepted for reads too.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, description="Largest HTTP request body accepted, in bytes."
    )
    deploy_lookback_s: int = Field(
        default=7200, description="How far before an onset a deploy can still be a cause, in seconds."
    )
    allow_future: bool = Field(
        default=False,
        description="Accept observed times more than a day ahead of this machine's clock "
        "(HTTP writes; `whatchanged ingest --allow-future` for one run).",
    )
    max_line_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Longest line a line-based reader (CSV, logs, JSON Lines) accepts, in bytes; "
        "a longer one fails the file at once.",
    )
    max_field_chars: int = Field(
        default=128 * 1024,
        ge=64,
        description="Longest CSV field accepted, in characters.",
    )
    aliases_file: Path | None = Field(
        default=None,
        description="YAML file mapping provider names to inventory names (see docs/changes.md, 'Aliases file').",
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"expected an IANA time zone such as Europe/Paris, found {value!r}") from exc
        return value

    @property
    def token_list(self) -> list[str]:
        return [t.strip() for t in self.api_tokens.split(",") if t.strip()]

    @property
    def read_token_list(self) -> list[str]:
        return [t.strip() for t in self.read_tokens.split(",") if t.strip()]


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, then ``overrides`` (None values ignored)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"setting '{key}': {err['msg']}") from None
