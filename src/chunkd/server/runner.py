"""Run the app under an ASGI server: uvicorn (httptools + uvloop) or granian."""

from __future__ import annotations

import socket

from chunkd.server import logs
from chunkd.server.memory import keep_freed_memory
from chunkd.settings import Settings


def run(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)
    keep_freed_memory()
    if settings.asgi_server == "granian":
        run_granian(settings)
    else:
        run_uvicorn(settings)


def run_uvicorn(settings: Settings) -> None:
    if settings.workers == 1:
        serve_uvicorn(settings)
        return
    from chunkd.server.workers import supervise

    supervise(settings, lambda sock: serve_uvicorn(settings, sock))


def serve_uvicorn(settings: Settings, sock: socket.socket | None = None) -> None:
    """One uvicorn server: on its own socket, or (a worker) on ``sock``."""
    from typing import Any

    import uvicorn

    from chunkd.server.app import create_app
    from chunkd.server.uvicorn_reading import ReadingProtocol

    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # let requests reading a body save what they received before uvicorn waits
            app.state.service.begin_shutdown()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=ReadingProtocol,
        loop="uvloop",
        proxy_headers=False,  # chunkd reads forwarding headers itself, only when told to
        server_header=False,
        log_level=settings.log_level,
        log_config=None,  # chunkd's own JSON logging, set up above
        access_log=False,  # chunkd.server.logs.AccessLog writes one line per request
        timeout_graceful_shutdown=30,
    )
    Server(config).run(sockets=None if sock is None else [sock])


def run_granian(settings: Settings) -> None:
    """Granian's embedded server: one process (its HTTP core in Rust, the app on our loop)."""
    import asyncio
    import signal

    import uvloop
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    from chunkd.server.app import create_app

    async def serve() -> None:
        app = create_app(settings)
        server = Server(
            app,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            http1_settings=HTTP1Settings(max_buffer_size=int(settings.read_buffer)),
            log_enabled=False,  # chunkd's own JSON logging
            log_level=LogLevels(settings.log_level),
        )
        loop = asyncio.get_running_loop()

        def stop() -> None:
            app.state.service.begin_shutdown()
            server.stop()  # type: ignore[no-untyped-call]

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop)
        await server.serve()

    uvloop.run(serve())
