"""Run the app under an ASGI server: uvicorn (httptools + uvloop) or granian."""

from __future__ import annotations

import logging
import os

from chunkd.settings import Settings


def _export(settings: Settings) -> None:
    """Hand resolved settings to worker processes that rebuild them from the environment."""
    for name, value in settings.model_dump().items():
        if isinstance(value, list):
            value = ",".join(value) if value else ("none" if name == "digests" else "")
        os.environ[f"CHUNKD_{name.upper()}"] = str(value)


def run(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if settings.server == "granian":
        run_granian(settings)
    else:
        run_uvicorn(settings)


def run_uvicorn(settings: Settings) -> None:
    import uvicorn

    from chunkd.server.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http="httptools",
        loop="uvloop",
        proxy_headers=False,  # chunkd reads forwarding headers itself, only when told to
        server_header=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )


def run_granian(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    _export(settings)
    Granian(
        "chunkd.server.app:app_from_env",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        log_level=LogLevels(settings.log_level),
    ).serve()
