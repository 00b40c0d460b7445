"""Every setting is documented, and a bad one is refused with its name and value."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.settings import Settings, load_settings


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "warehouse.md").read_text()
    for name, description in Settings.descriptions.items():
        assert f"| {name} | WHATCHANGED_{name.upper()} |" in doc, name
        assert description, name


def test_bad_zone_names_setting_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(tz="Mars/Olympus")
    assert "tz" in str(err.value)
    assert "Mars/Olympus" in str(err.value)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATCHANGED_DEPLOY_LOOKBACK_S", "600")
    assert load_settings().deploy_lookback_s == 600
