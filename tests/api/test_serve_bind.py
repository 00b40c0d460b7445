"""``serve`` bound beyond loopback refuses to start without API tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from whatchanged.api.cli_serve import is_loopback, run_server
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.settings import load_settings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("whatchanged.internal", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_refuses_a_public_bind_without_tokens(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "wh", api_tokens="")
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0: .*WHATCHANGED_API_TOKENS"):
        run_server(settings, host="0.0.0.0", port=0)
