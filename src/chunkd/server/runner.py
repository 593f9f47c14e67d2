"""Run the app under an ASGI server: uvicorn (httptools + uvloop) or granian."""

from __future__ import annotations

import logging

from chunkd.settings import Settings


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
    """Granian's embedded server: one process (its HTTP core in Rust, the app on our loop)."""
    import asyncio
    import signal

    import uvloop
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    from chunkd.server.app import create_app

    async def serve() -> None:
        server = Server(
            create_app(settings),
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            log_level=LogLevels(settings.log_level),
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()

    uvloop.run(serve())
