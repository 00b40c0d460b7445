"""``serve``: run the HTTP API (uvicorn) over the warehouse."""

from __future__ import annotations

from typing import Annotated

import typer

from whatchanged.api.cli_common import HomeOpt, settings_from
from whatchanged.api.output import console
from whatchanged.engine.errors import ConfigError
from whatchanged.engine.settings import Settings


def cmd_serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")
    ] = 8080,
    home: HomeOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Worker processes (each with its own views).")
    ] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /docs) until interrupted."""
    run_server(settings_from(home), host=host, port=port, workers=workers, log_level=log_level)


def run_server(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve the API and dashboards over ``settings.home`` until interrupted.

    Bound to anything but loopback it refuses to start without API tokens: the Alertmanager
    receiver and the webhooks must not be open to whoever reaches the port."""
    import uvicorn  # loaded on use

    if not is_loopback(host) and not settings.token_list:
        raise ConfigError(
            f"refusing to serve on {host}: beyond loopback the server needs tokens "
            "(set WHATCHANGED_API_TOKENS), or bind 127.0.0.1"
        )

    from whatchanged.api.app import create_app

    writes = "enabled" if settings.token_list else "disabled (no WHATCHANGED_API_TOKENS)"
    console.print(
        f"serving warehouse {settings.home.resolve()} on http://{host}:{port}/api/v1 "
        f"and http://{host}:{port}/dashboards/ — writes {writes}"
    )
    if workers > 1:
        # each worker process builds its own app from the same environment
        import os

        os.environ["WHATCHANGED_HOME"] = str(settings.home)
        uvicorn.run(
            "whatchanged.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            proxy_headers=False,
        )
    else:
        from whatchanged.api.cli_collect import start_in_background

        stop = start_in_background(settings, public_url=f"http://{host}:{port}")  # sources.toml
        try:
            uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, proxy_headers=False)
        finally:
            if stop is not None:
                stop.set()


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can connect."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to may be reachable


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("serve")(cmd_serve)
