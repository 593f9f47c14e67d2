"""``chunkd serve --workers N``: N processes accepting connections on one port.

One event loop receives request bodies at about one core's worth (the kernel's copy out of the
socket runs on it), so a machine with more cores serves more concurrent uploads with more
processes. This supervisor holds the port, brings the catalog's schema up to date once, and
forks the workers; each builds its own app and listens on its own socket of the port's
``SO_REUSEPORT`` group, the kernel spreading new connections over them. A request for an
upload may reach any worker: they lock uploads and relay events between themselves
(:mod:`chunkd.uploads.locking_files`, :mod:`chunkd.uploads.events_peers`).

A worker that dies (``kill -9``, a crash) is replaced; its requests' clients resume from what
was acknowledged, as after any crash. SIGTERM or SIGINT to the supervisor is passed on once to
every worker, which stops as one server does (bodies save what arrived), and the supervisor
waits for them. Workers run in their own process group, so a terminal's Ctrl-C reaches only
the supervisor, and they are sent SIGTERM should the supervisor itself die.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

from chunkd.settings import Settings

log = logging.getLogger("chunkd.server")

_PR_SET_PDEATHSIG = 1
_RESTART_PAUSE = 1.0  # a worker that dies this soon after starting is not restarted faster


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` in the port's ``SO_REUSEPORT`` group (not listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listen(host: str, port: int) -> socket.socket:
    """A worker's own listening socket. Each worker listens on its own socket of the port's
    ``SO_REUSEPORT`` group and the kernel spreads new connections over them; with one socket
    shared, the first worker to wake accepted every connection waiting (libuv accepts until
    none is left), and 32 uploads arriving together went to one worker."""
    sock = bind(host, port)
    sock.listen(2048)
    return sock


def prepare(settings: Settings) -> None:
    """Migrate the catalog once, before any worker opens it: in a child process, so the
    supervisor, which only waits, never loads the app (tens of MiB it would keep)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is its own process's
        code = 1
        try:
            from chunkd.server.app import build_catalog

            async def migrate() -> None:
                async with build_catalog(settings):
                    pass

            asyncio.run(migrate())
            code = 0
        except BaseException:
            log.exception("could not open the catalog")
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("chunkd: the catalog could not be opened (see the log above)")


def supervise(settings: Settings, serve: Callable[[socket.socket], None]) -> None:
    """Run ``serve(sock)`` in ``settings.workers`` processes until told to stop."""
    metrics = settings.run_dir / "metrics"  # before prometheus-client is first imported
    shutil.rmtree(metrics, ignore_errors=True)  # a previous run's counts
    metrics.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    # holds the port from start to stop (and picks one for port 0); never accepts
    reserved = bind(settings.host, settings.port)
    host, port = settings.host, reserved.getsockname()[1]
    prepare(settings)
    from prometheus_client.multiprocess import mark_process_dead

    peers = settings.peers_dir
    supervisor = os.getpid()
    children: dict[int, float] = {}  # pid -> when it started
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker; its coverage is its own process's
            reserved.close()
            _work(host, port, serve, supervisor)
        children[pid] = time.monotonic()

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving on %s:%d with %d workers", host, port, settings.workers)
    for _ in range(settings.workers):
        spawn()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if started is None:
            continue
        with contextlib.suppress(FileNotFoundError):  # a killed worker could not remove it
            (peers / str(pid)).unlink()
        # its live gauges go; what its counters counted still counts
        mark_process_dead(pid, str(metrics))  # type: ignore[no-untyped-call]
        if stopping:
            continue
        log.warning("worker %d ended (%s); starting another", pid, _describe(status))
        if time.monotonic() - started < _RESTART_PAUSE:
            time.sleep(_RESTART_PAUSE)
        if not stopping:
            spawn()
    reserved.close()


def _work(host: str, port: int, serve: Callable[[socket.socket], None], parent: int) -> None:
    """In the forked worker: serve, then leave without running the supervisor's clean-up."""
    code = 0
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        if os.getppid() != parent:  # it died before we asked to be told
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        serve(listen(host, port))
    except BaseException:
        log.exception("worker failed")
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    libc = ctypes.util.find_library("c")
    if libc is not None:
        ctypes.CDLL(libc, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
