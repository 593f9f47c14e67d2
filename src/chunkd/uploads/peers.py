"""The worker processes of one server on one machine, and the short messages they send each other.

``chunkd serve --workers N`` runs N processes on one listening socket; a request for an
upload may land in any of them. What PostgreSQL and Redis do between server *instances* —
asking a lock's holder to let go, relaying events — workers sharing a data directory do with
datagrams between themselves: each worker binds a Unix datagram socket in Linux's abstract
namespace (no file to leave behind; gone with the process, ``kill -9`` included), named after
the data directory and its process id, and records its id as a file under ``<data>/run/peers``
so the others can find it.

A message is a small JSON object with a ``kind`` (and the sender's ``from``, added on sending);
handlers run on the event loop. Abstract names carry no file permissions, so each message comes
with its sender's credentials (``SO_PASSCRED``) and only this server's user is listened to.
Sending never blocks: a full socket drops the message (events are best effort, release requests
are repeated by their sender), and a peer that is gone has its file removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("chunkd.peers")

Handler = Callable[[dict[str, Any]], None]
_MAX_MESSAGE = 64 * 1024
_REFRESH = 1.0  # seconds between re-reads of who the peers are


_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
_CREDENTIALS = socket.CMSG_SPACE(_UCRED.size)


def _sender_uid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return int(_UCRED.unpack(data[: _UCRED.size])[1])
    return None


class Peers:
    """This worker's socket, and how to reach the others in the same ``run`` directory."""

    def __init__(self, directory: Path, *, ident: int | None = None) -> None:
        """``ident`` names this worker among its peers: its process id unless given (tests)."""
        self.directory = directory.resolve()
        self._ident = ident
        self._tag = hashlib.sha256(str(self.directory).encode()).hexdigest()[:16]
        self._handlers: dict[str, Handler] = {}
        self._socket: socket.socket | None = None
        self._known: list[int] = []
        self._known_at = -_REFRESH
        self._users = 0  # the locker and the event bus share one socket
        self.pid = 0

    def address(self, pid: int) -> bytes:
        return f"\0chunkd-{self._tag}-{pid}".encode()

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    async def open(self) -> None:
        self._users += 1
        if self._socket is not None:
            return
        self.pid = self._ident or os.getpid()
        self.directory.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # abstract names have no file permissions: the kernel tells each sender's user
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(self.address(self.pid))
        sock.setblocking(False)
        self._socket = sock
        (self.directory / str(self.pid)).touch()
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    async def close(self) -> None:
        self._users -= 1
        if self._socket is None or self._users > 0:
            return
        asyncio.get_running_loop().remove_reader(self._socket.fileno())
        self._socket.close()
        self._socket = None
        with contextlib.suppress(FileNotFoundError):
            (self.directory / str(self.pid)).unlink()

    def send(self, pid: int, message: dict[str, Any]) -> bool:
        """Send ``message`` to worker ``pid``; whether it was handed to that worker's socket."""
        if self._socket is None or pid == self.pid:
            return False
        try:
            payload = json.dumps({**message, "from": self.pid}).encode()
            self._socket.sendto(payload, self.address(pid))
            return True
        except ConnectionRefusedError:  # no such worker (any more)
            self._forget(pid)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ENOENT):
                log.warning("could not message worker %d: %s", pid, error)
        return False

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every other worker."""
        for pid in self.others():
            self.send(pid, message)

    def others(self) -> list[int]:
        now = time.monotonic()
        if now - self._known_at >= _REFRESH:
            self._known_at = now
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                names = []
            self._known = [int(name) for name in names if name.isdigit()]
        return [pid for pid in self._known if pid != self.pid]

    def _forget(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / str(pid)).unlink()
        with contextlib.suppress(ValueError):
            self._known.remove(pid)

    def _readable(self) -> None:
        assert self._socket is not None
        while True:
            try:
                data, ancillary, _, _ = self._socket.recvmsg(_MAX_MESSAGE, _CREDENTIALS)
            except BlockingIOError:
                return
            if _sender_uid(ancillary) != os.getuid():
                continue  # only processes of this server's user may speak to it
            try:
                message = json.loads(data)
                handler = self._handlers.get(message["kind"])
                if message["from"] not in self._known:
                    self._known_at = -_REFRESH  # a worker that started since: list them again
            except (ValueError, KeyError, TypeError):
                continue
            if handler is not None:
                try:
                    handler(message)
                except Exception:
                    log.exception("a message from another worker could not be handled")
